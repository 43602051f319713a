"""The service as a separate process: ``spawn`` (a child this process stops) and ``ensure_running``
(a detached service that outlives the caller, e.g. a notebook kernel, reused while healthy).

Secret engine options (names with key, token, secret, password) never go on a command line, where any
local user could read them: they travel to the child in ``$BATCHFRAME_SERVICE_ENGINE_SECRETS`` (JSON), as
the required key travels in ``$BATCHFRAME_SERVICE_API_KEY``. Errors about a missing or mismatched service
carry the ``batchframe serve`` command that starts the right one (:func:`serve_command`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
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
from .identity import is_secret, split_options
from .runner import (
    API_KEY_ENV,
    ENGINE_SECRETS_ENV,
    LocalService,
    admin_enabled,
    default_data_dir,
    healthy,
    pid_alive,
    recorded,
)

LOG_FILE = "serve.log"
#: A detached service exits after this long without API calls once no batch is unfinished (or when its
#: data dir is deleted); ``ensure_running`` starts a new one when needed.
#: Override with $BATCHFRAME_SERVICE_IDLE_SECONDS.
IDLE_ENV = "BATCHFRAME_SERVICE_IDLE_SECONDS"
DEFAULT_IDLE_SECONDS = 3600.0


class ProcessService(LocalService):
    """``batchframe serve`` in a child process (``pid``); :meth:`stop` ends it (SIGTERM, then SIGKILL)."""

    def __init__(self, base_url: str, data_dir: Path, engine: str, proc: subprocess.Popen,
                 api_key: str | None = None, enable_admin: bool = False):
        super().__init__(base_url, data_dir, engine, pid=proc.pid)
        self._proc = proc
        self._api_key = api_key  # only in memory, to authorise set_faults
        self.enable_admin = enable_admin

    def set_faults(self, faults: Faults) -> None:
        """Change fault injection of the running child (``PUT /admin/faults``: needs the admin routes).

        Raises
        ------
        ServiceError
            If the child was started without admin (``spawn(..., enable_admin=True)`` or with ``faults=``).
        """
        if not self.enable_admin:
            raise ServiceError(f"cannot set faults on {self.base_url}: its admin routes are off; start it with "
                               "spawn(..., enable_admin=True) (or faults=...), i.e. batchframe serve --enable-admin")
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
               max_body_bytes: int | None = None, idle_exit_seconds: float | None = None,
               enable_admin: bool = False) -> list[str]:
    """The ``batchframe serve`` command line for these options.

    The key and the secret engine options are left out: they travel in the environment (:func:`_env`).

    Examples
    --------
    >>> serve_args(data_dir=Path("/tmp/d"), engine_options={"latency": 0.1, "api_key": "sk-x"})[-2:]
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
    if enable_admin:
        args += ["--enable-admin"]
    if faults is not None:
        args += _fault_args(faults)
    for key, value in (engine_options or {}).items():
        if not is_secret(key):
            args += ["--engine-option", f"{key}={json.dumps(value)}"]
    return args


def serve_command(*, data_dir: str | Path, engine: str, engine_options: dict[str, Any] | None = None) -> str:
    """The ``batchframe serve`` command to paste to start the service of ``data_dir`` with this engine and
    these options; a secret option is shown as ``NAME=...`` (the user fills it in).

    Examples
    --------
    >>> print(serve_command(data_dir="/srv/d", engine="openai-compatible",
    ...                     engine_options={"model": "m", "api_key": "sk-x"}))
    batchframe serve --data-dir /srv/d --engine openai-compatible --engine-option model=m --engine-option api_key=...
    >>> print(serve_command(data_dir="/my data", engine="echo", engine_options={"latency": 0.5, "tag": "7"}))
    batchframe serve --data-dir '/my data' --engine echo --engine-option latency=0.5 --engine-option 'tag="7"'
    """
    parts = ["batchframe", "serve", "--data-dir", str(Path(data_dir).resolve()), "--engine", engine]
    for name, value in (engine_options or {}).items():
        parts += ["--engine-option", f"{name}=..." if is_secret(name) else f"{name}={_option_text(value)}"]
    return " ".join(shlex.quote(part) for part in parts)


def _option_text(value: Any) -> str:
    """VALUE as ``--engine-option`` parses it back (JSON when it parses, else the plain string)."""
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            return value  # reads back as this very string
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return str(value)


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


def _env(api_key: str | None, engine_options: dict[str, Any] | None = None) -> dict[str, str]:
    """The child's environment: the required key and the secret engine options, nothing inherited of them."""
    env = dict(os.environ)
    env.pop(API_KEY_ENV, None)
    env.pop(ENGINE_SECRETS_ENV, None)
    if api_key is not None:
        env[API_KEY_ENV] = api_key
    secrets = {k: v for k, v in (engine_options or {}).items() if is_secret(k)}
    if secrets:
        env[ENGINE_SECRETS_ENV] = json.dumps(secrets)
    return env


def spawn(*, data_dir: str | Path, engine: str = "echo", engine_options: dict[str, Any] | None = None,
          port: int = 0, api_key: str | None = None, faults: Faults | None = None, ttl_seconds: float = 86400,
          workers: int | None = None, max_body_bytes: int | None = None,
          idle_exit_seconds: float | None = None, timeout: float = 120.0,
          enable_admin: bool = False) -> LocalService:
    """Run ``batchframe serve`` in a child process and wait until it answers ``/health``.

    Options are those of :func:`serve_in_thread`, plus ``idle_exit_seconds`` (exit after that long without
    API calls once no batch is unfinished). Its output goes to ``<data_dir>/serve.log``. The returned
    service's ``set_faults`` goes over HTTP (``PUT /admin/faults``), so it needs ``enable_admin=True`` or
    ``faults=`` other than ``Faults()``.

    Examples
    --------
    >>> service = spawn(data_dir=tmp_path, engine_options={"latency": 0.05})  # doctest: +SKIP
    >>> service.pid, service.base_url  # doctest: +SKIP
    (41234, 'http://127.0.0.1:40155')
    >>> service.stop()  # doctest: +SKIP
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    admin = admin_enabled(enable_admin, faults)
    args = serve_args(data_dir=data_dir, engine=engine, engine_options=engine_options, port=port,
                      api_key=api_key, faults=faults, ttl_seconds=ttl_seconds, workers=workers,
                      max_body_bytes=max_body_bytes, idle_exit_seconds=idle_exit_seconds, enable_admin=admin)
    with open(data_dir / LOG_FILE, "ab") as log:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=_env(api_key, engine_options))
    try:
        info = wait_ready(data_dir, proc.pid, timeout=timeout, alive=lambda: proc.poll() is None,
                          api_key=api_key)
    except BaseException:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        raise
    return ProcessService(info["base_url"], data_dir, engine, proc, api_key=api_key, enable_admin=admin)


def wait_ready(data_dir: Path, pid: int, *, timeout: float, alive: Any,
               api_key: str | None = None) -> dict[str, Any]:
    """Wait until the service of ``pid`` has recorded itself and answers as the service of ``data_dir``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = recorded(data_dir)
        if info and info.get("pid") == pid and healthy(info["base_url"], data_dir, api_key=api_key):
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

    With ``engine``, a running service is reused only if it has that engine and, when ``engine_options`` is
    given (``{}`` included), the same engine options (secret options, which a service never shows, are not
    compared); a new one is started with exactly ``engine`` and ``engine_options``. Without ``engine``, any
    running service is reused, and a new one gets the echo engine.

    The new service outlives this process (a notebook kernel can restart and find it again). It exits by
    itself after ``$BATCHFRAME_SERVICE_IDLE_SECONDS`` (default 1 h) without API calls once no batch is
    unfinished, or when its data dir is deleted; state stays in the data dir for the next one.

    Raises
    ------
    ServiceError
        If the running service has another engine or other options than asked (stop it first), or none
        starts. The message holds the ``batchframe serve`` command that starts the right service.

    Examples
    --------
    >>> ensure_running(engine="echo")  # doctest: +SKIP
    'http://127.0.0.1:40155'
    """
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    data_dir.mkdir(parents=True, exist_ok=True)
    command = serve_command(data_dir=data_dir, engine=engine or "echo", engine_options=engine_options)
    with FileLock(data_dir / "ensure.lock", timeout=timeout):
        info = recorded(data_dir)
        status = healthy(info["base_url"], data_dir) if info else None
        if info and status:
            if engine is not None:
                _check_same(status, info, data_dir, engine, engine_options, command)
            return info["base_url"]
        args = serve_args(data_dir=data_dir, engine=engine or "echo", engine_options=engine_options,
                          idle_exit_seconds=float(os.environ.get(IDLE_ENV, DEFAULT_IDLE_SECONDS)))
        launched = subprocess.run([sys.executable, "-c", _LAUNCHER, str(data_dir / LOG_FILE), *args],
                                  capture_output=True, text=True, env=_env(None, engine_options), timeout=60,
                                  check=True)
        pid = int(launched.stdout.strip())
        try:
            return wait_ready(data_dir, pid, timeout=timeout, alive=lambda: pid_alive(pid))["base_url"]
        except ServiceError as exc:
            raise ServiceError(f"{exc}\nOnce the cause is fixed, start it with:\n    {command}") from None


def _check_same(status: dict[str, Any], info: dict[str, Any], data_dir: Path, engine: str,
                engine_options: dict[str, Any] | None, command: str) -> None:
    """Raise if the running service's engine or public options are not the ones asked."""
    wanted, _ = split_options(engine_options)
    running = status.get("engine_options") or {}
    if status.get("engine") == engine and (engine_options is None or running == wanted):
        return
    pid = info.get("pid")
    raise ServiceError(
        f"the batchframe service on {data_dir} (pid {pid}, {info.get('base_url')}) runs engine "
        f"{status.get('engine')!r} with options {json.dumps(running)}, not engine {engine!r} with options "
        f"{json.dumps(wanted)}; stop it (kill {pid}), then start the right one with:\n    {command}")
