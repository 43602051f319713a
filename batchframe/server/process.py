"""The service as a separate process: ``spawn`` (a child this process stops) and ``ensure_running``
(a detached service that outlives the caller, e.g. a notebook kernel, reused while healthy)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from filelock import FileLock

from .errors import ServiceError
from .faults import Faults
from .runner import API_KEY_ENV, LocalService, default_data_dir, healthy, recorded

LOG_FILE = "serve.log"
#: A detached service exits after this long without API calls once no batch is unfinished (or when its
#: data dir is deleted); ``ensure_running`` starts a new one when needed.
#: Override with $BATCHFRAME_SERVICE_IDLE_SECONDS.
IDLE_ENV = "BATCHFRAME_SERVICE_IDLE_SECONDS"
DEFAULT_IDLE_SECONDS = 3600.0


class ProcessService(LocalService):
    """``batchframe serve`` in a child process (``pid``); :meth:`stop` ends it (SIGTERM, then SIGKILL)."""

    def __init__(self, base_url: str, data_dir: Path, engine: str, proc: subprocess.Popen,
                 api_key: str | None = None):
        super().__init__(base_url, data_dir, engine, pid=proc.pid)
        self._proc = proc
        self._api_key = api_key  # only in memory, to authorise set_faults

    def set_faults(self, faults: Faults) -> None:
        """Change fault injection of the running child (``PUT /admin/faults``)."""
        headers = {"x-api-key": self._api_key} if self._api_key else {}
        with httpx.Client(timeout=10) as client:
            answer = client.put(f"{self.base_url}/admin/faults", json=dataclasses.asdict(faults), headers=headers)
        if answer.status_code != 200:
            raise ServiceError(f"could not set faults on {self.base_url}: HTTP {answer.status_code}")

    def stop(self, timeout: float = 15.0) -> None:
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._proc.wait()


def serve_args(*, data_dir: Path, engine: str = "echo", engine_options: dict[str, Any] | None = None,
               port: int = 0, api_key: str | None = None, faults: Faults | None = None,
               ttl_seconds: float = 86400, workers: int | None = None,
               max_body_bytes: int | None = None, idle_exit_seconds: float | None = None) -> list[str]:
    """The ``batchframe serve`` command line for these options (the key travels in the environment).

    Examples
    --------
    >>> serve_args(data_dir=Path("/tmp/d"), engine_options={"latency": 0.1})[-2:]
    ['--engine-option', 'latency=0.1']
    """
    args = [sys.executable, "-m", "batchframe.cli.main", "serve", "--data-dir", str(data_dir), "--port", str(port),
            "--engine", engine, "--ttl-seconds", repr(float(ttl_seconds))]
    if workers is not None:
        args += ["--workers", str(workers)]
    if max_body_bytes is not None:
        args += ["--max-body-bytes", str(max_body_bytes)]
    if idle_exit_seconds is not None:
        args += ["--idle-exit-seconds", repr(float(idle_exit_seconds))]
    if api_key is not None:
        args += ["--require-api-key"]
    if faults is not None:
        args += _fault_args(faults)
    for key, value in (engine_options or {}).items():
        args += ["--engine-option", f"{key}={json.dumps(value)}"]
    return args


def _fault_args(f: Faults) -> list[str]:
    args = ["--fault-http-error-rate", repr(f.http_error_rate),
            "--fault-http-error-statuses", ",".join(map(str, f.http_error_statuses)),
            "--fault-request-error-rate", repr(f.request_error_rate),
            "--fault-request-error-type", f.request_error_type,
            "--fault-slow-seconds", repr(f.slow_seconds),
            "--fault-retry-after-seconds", repr(f.retry_after_seconds)]
    if f.cut_results_after_bytes is not None:
        args += ["--fault-cut-results-after-bytes", str(f.cut_results_after_bytes)]
    if f.seed is not None:
        args += ["--fault-seed", str(f.seed)]
    if f.http_errors_after_processing:
        args += ["--fault-http-errors-after-processing"]
    if f.results_crlf:
        args += ["--fault-results-crlf"]
    if f.results_no_content_type:
        args += ["--fault-results-no-content-type"]
    return args


def _env(api_key: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop(API_KEY_ENV, None)
    if api_key is not None:
        env[API_KEY_ENV] = api_key
    return env


def spawn(*, data_dir: str | Path, engine: str = "echo", engine_options: dict[str, Any] | None = None,
          port: int = 0, api_key: str | None = None, faults: Faults | None = None, ttl_seconds: float = 86400,
          workers: int | None = None, max_body_bytes: int | None = None,
          idle_exit_seconds: float | None = None, timeout: float = 120.0) -> LocalService:
    """Run ``batchframe serve`` in a child process and wait until it answers ``/health``.

    Options are those of :func:`serve_in_thread`, plus ``idle_exit_seconds`` (exit after that long without
    API calls once no batch is unfinished). Its output goes to ``<data_dir>/serve.log``.

    Examples
    --------
    >>> service = spawn(data_dir=tmp_path, engine_options={"latency": 0.05})  # doctest: +SKIP
    >>> service.pid, service.base_url  # doctest: +SKIP
    (41234, 'http://127.0.0.1:40155')
    >>> service.stop()  # doctest: +SKIP
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    args = serve_args(data_dir=data_dir, engine=engine, engine_options=engine_options, port=port,
                      api_key=api_key, faults=faults, ttl_seconds=ttl_seconds, workers=workers,
                      max_body_bytes=max_body_bytes, idle_exit_seconds=idle_exit_seconds)
    with open(data_dir / LOG_FILE, "ab") as log:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=_env(api_key))
    try:
        info = wait_ready(data_dir, proc.pid, timeout=timeout, alive=lambda: proc.poll() is None)
    except BaseException:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        raise
    return ProcessService(info["base_url"], data_dir, engine, proc, api_key=api_key)


def wait_ready(data_dir: Path, pid: int, *, timeout: float, alive: Any) -> dict[str, Any]:
    """Wait until the service of ``pid`` has recorded itself and answers /health."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = recorded(data_dir)
        if info and info.get("pid") == pid and healthy(info["base_url"], data_dir):
            return info
        if not alive():
            raise ServiceError(f"the local service exited during start-up; see {data_dir / LOG_FILE}:\n"
                               + _tail(data_dir / LOG_FILE))
        time.sleep(0.05)
    raise ServiceError(f"the local service did not start within {timeout:.0f} s; see {data_dir / LOG_FILE}")


def _tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# The launcher starts the service in its own session and exits at once, so the service is re-parented to
# init: it outlives the caller and never lingers as a zombie or an un-waited Popen in the caller.
_LAUNCHER = (
    "import subprocess, sys\n"
    "log = open(sys.argv[1], 'ab')\n"
    "p = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,"
    " start_new_session=True)\n"
    "print(p.pid)\n"
)


def ensure_running(*, data_dir: str | Path | None = None, engine: str | None = None,
                   engine_options: dict[str, Any] | None = None, timeout: float = 300.0) -> str:
    """Base URL of a live service for ``data_dir``: the recorded one if healthy, else a new detached one.

    The new service outlives this process (a notebook kernel can restart and find it again). It exits by
    itself after ``$BATCHFRAME_SERVICE_IDLE_SECONDS`` (default 1 h) without API calls once no batch is
    unfinished, or when its data dir is deleted; state stays in the data dir for the next one.

    Raises
    ------
    ServiceError
        If the running service uses another engine than ``engine`` (stop it first), or none starts.

    Examples
    --------
    >>> ensure_running(engine="echo")  # doctest: +SKIP
    'http://127.0.0.1:40155'
    """
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    data_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(data_dir / "ensure.lock", timeout=timeout):
        info = recorded(data_dir)
        status = healthy(info["base_url"], data_dir) if info else None
        if info and status:
            if engine is not None and status.get("engine") != engine:
                raise ServiceError(f"a batchframe service with engine {status.get('engine')!r} already runs "
                                   f"on {data_dir} (pid {info.get('pid')}); stop it to use engine {engine!r}")
            return info["base_url"]
        args = serve_args(data_dir=data_dir, engine=engine or "echo", engine_options=engine_options,
                          idle_exit_seconds=float(os.environ.get(IDLE_ENV, DEFAULT_IDLE_SECONDS)))
        launched = subprocess.run([sys.executable, "-c", _LAUNCHER, str(data_dir / LOG_FILE), *args],
                                  capture_output=True, text=True, env=_env(None), timeout=60, check=True)
        pid = int(launched.stdout.strip())
        return wait_ready(data_dir, pid, timeout=timeout, alive=lambda: _pid_alive(pid))["base_url"]
