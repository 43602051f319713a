"""Running the service: in a background thread (tests), as a child process, or detached (notebooks).

A running service records itself in ``<data_dir>/service.json`` (pid, base URL, id, engine, model, engine
options without secrets; never a key), written atomically. One service per data dir: the backend holds
``service.lock`` while it runs.

Admin routes (``PUT /admin/faults``) exist only with ``enable_admin`` or with faults given at start; a
thread service's :meth:`~LocalService.set_faults` needs none (it does not go over HTTP).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from .app import create_app
from .backend import MAX_BODY_BYTES, Backend
from .errors import ServiceError
from .faults import Faults
from .identity import split_options
from .ids import service_id

SERVICE_FILE = "service.json"
#: Environment variable through which ``spawn(api_key=...)`` hands the required key to the child.
API_KEY_ENV = "BATCHFRAME_SERVICE_API_KEY"
#: Environment variable through which ``spawn`` / ``ensure_running`` hand secret engine options (JSON) to
#: the child, so that they never appear on its command line.
ENGINE_SECRETS_ENV = "BATCHFRAME_SERVICE_ENGINE_SECRETS"


def default_data_dir() -> Path:
    """``$BATCHFRAME_DATA_DIR``, else a per-user folder (``$XDG_DATA_HOME/batchframe/service``).

    Examples
    --------
    >>> default_data_dir()  # doctest: +SKIP
    PosixPath('/home/me/.local/share/batchframe/service')
    """
    env = os.environ.get("BATCHFRAME_DATA_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "batchframe" / "service"


class LocalService:
    """A running local service: ``base_url``, ``data_dir``, ``pid`` (None in-thread), ``stop()``.

    Examples
    --------
    >>> with serve_in_thread(data_dir=tmp_path) as service:  # doctest: +SKIP
    ...     client = anthropic.Anthropic(base_url=service.base_url, api_key="local")
    """

    def __init__(self, base_url: str, data_dir: Path, engine: str, pid: int | None = None):
        self.base_url = base_url
        self.data_dir = data_dir
        self.engine = engine
        self.pid = pid

    def stop(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def set_faults(self, faults: Faults) -> None:
        """Change fault injection while the service runs."""
        raise NotImplementedError

    def __enter__(self) -> LocalService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"<{name} {self.base_url} data_dir={str(self.data_dir)!r} engine={self.engine!r}>"


class ThreadService(LocalService):
    """uvicorn serving in a daemon thread of this process."""

    def __init__(self, backend: Backend, server: uvicorn.Server, thread: threading.Thread,
                 sock: socket.socket):
        host, port = sock.getsockname()[:2]
        super().__init__(f"http://{host}:{port}", backend.data_dir, backend.engine.name)
        self.backend, self._server, self._thread, self._sock = backend, server, thread, sock

    def set_faults(self, faults: Faults) -> None:
        """Change fault injection while the service runs (in-process: works without the admin routes)."""
        self.backend.faults.set(faults)

    def stop(self) -> None:
        if self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(30)
        self._thread = None  # type: ignore[assignment]  # stopped: start() makes a new one
        self._sock.close()
        _forget(self.data_dir, os.getpid(), self.base_url)
        self.backend.close()


def serve_in_thread(*, data_dir: str | Path, engine: str = "echo",
                    engine_options: dict[str, Any] | None = None, port: int = 0,
                    api_key: str | None = None, faults: Faults | None = None, ttl_seconds: float = 86400,
                    workers: int | None = None, max_body_bytes: int = MAX_BODY_BYTES,
                    host: str = "127.0.0.1", enable_admin: bool = False) -> LocalService:
    """Start the service in a background thread on a free 127.0.0.1 port.

    Parameters
    ----------
    data_dir : path
        Where the SQLite state lives; batches survive restarts on the same folder.
    engine, engine_options
        Engine name and its options, e.g. ``engine_options={"latency": 0.05}`` for echo.
    api_key : str, optional
        If given, calls need exactly this key (else 401). Without it any non-empty key is accepted; a key
        header is always required, as with the real API.
    faults : Faults, optional
        Fault injection; change it later with ``service.set_faults(...)`` (in-process, no admin needed).
        Faults other than ``Faults()`` also enable the admin routes, as ``--fault-*`` options do.
    enable_admin : bool
        Serve the admin routes (``PUT /admin/faults``) over HTTP; off by default, every ``/admin`` path is
        then 404. With ``api_key`` they need that key too.
    ttl_seconds : float
        Time from creation to expiry of a batch (24 h like the API).
    workers : int, optional
        Requests processed at once (default: the engine's ``max_concurrency``).
    max_body_bytes : int
        Bodies over this get 413 (256 MB like the API).

    Examples
    --------
    >>> with serve_in_thread(data_dir=tmp_path) as service:  # doctest: +SKIP
    ...     print(service.base_url)
    http://127.0.0.1:38211
    """
    backend = Backend(data_dir=data_dir, engine=engine, engine_options=engine_options, faults=faults,
                      ttl_seconds=ttl_seconds, workers=workers, max_body_bytes=max_body_bytes)
    sock = None
    try:
        sock = _bind(host, port)
        server = uvicorn.Server(_config(backend, api_key, admin_enabled(enable_admin, faults)))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                                  name=f"batchframe-service-{sock.getsockname()[1]}")
        thread.start()
        _wait_started(server, thread)
    except BaseException:
        if sock is not None:
            sock.close()
        backend.close()
        raise
    service = ThreadService(backend, server, thread, sock)
    record(service.data_dir, os.getpid(), service.base_url, service.engine,
           engine_options=backend.engine_options, model=backend.engine.model_name)
    return service


def admin_enabled(enable_admin: bool, faults: Faults | None) -> bool:
    """Whether the admin routes are served: asked for, or faults other than the defaults were given.

    Examples
    --------
    >>> admin_enabled(False, None), admin_enabled(False, Faults()), admin_enabled(False, Faults(seed=1))
    (False, False, True)
    """
    return enable_admin or (faults is not None and faults != Faults())


def _bind(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP named, not left 0: asyncio sets TCP_NODELAY only on a connection whose socket says TCP, and
    # without it a response written in two pieces (head, body) waits for the client's delayed ACK, 40 ms.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServiceError(f"cannot listen on {host}:{port}: {exc.strerror}; choose another --port") from None
    return sock


def _config(backend: Backend, api_key: str | None, enable_admin: bool) -> uvicorn.Config:
    return uvicorn.Config(create_app(backend, api_key=api_key, enable_admin=enable_admin), log_level="warning",
                          access_log=False, lifespan="on", timeout_graceful_shutdown=5)


def _wait_started(server: uvicorn.Server, thread: threading.Thread, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            raise ServiceError("the local service failed to start (see the log above)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise ServiceError(f"the local service did not start within {timeout:.0f} s")
        time.sleep(0.01)


def run_forever(backend: Backend, *, host: str, port: int, api_key: str | None,
                on_ready: Any = None, idle_exit_seconds: float | None = None, enable_admin: bool = False) -> None:
    """Serve in this thread until SIGINT/SIGTERM (the ``batchframe serve`` command).

    With ``idle_exit_seconds``, also stop once no API call came for that long and no batch is unfinished,
    or as soon as the data dir is gone: a detached service then never outlives its use.
    """
    sock = _bind(host, port)
    address = sock.getsockname()
    base_url = f"http://{address[0]}:{address[1]}"
    server = uvicorn.Server(_config(backend, api_key, enable_admin))
    # uvicorn re-raises the SIGTERM it handled once it has shut down; with the default action that would
    # kill the process before the clean-up below. Shutting down is already under way, so ignore it.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        ready = threading.Thread(target=_announce, args=(server, backend, base_url, on_ready), daemon=True)
        ready.start()
        if idle_exit_seconds is not None:
            threading.Thread(target=_exit_when_idle, args=(server, backend, idle_exit_seconds),
                             daemon=True).start()
        server.run(sockets=[sock])
    finally:
        sock.close()
        _forget(backend.data_dir, os.getpid(), base_url)
        backend.close()


def _announce(server: uvicorn.Server, backend: Backend, base_url: str, on_ready: Any) -> None:
    deadline = time.monotonic() + 600
    while not server.started and not server.should_exit and time.monotonic() < deadline:
        time.sleep(0.01)
    if server.started:
        record(backend.data_dir, os.getpid(), base_url, backend.engine.name,
               engine_options=backend.engine_options, model=backend.engine.model_name)
        if on_ready is not None:
            on_ready(base_url)


def _exit_when_idle(server: uvicorn.Server, backend: Backend, idle_seconds: float) -> None:
    while not server.should_exit:  # ends with the server
        time.sleep(min(5.0, max(0.05, idle_seconds / 4)))
        idle = time.monotonic() - backend.last_activity
        if not backend.data_dir.exists() or (idle > idle_seconds and not backend.store.has_pending()):
            server.should_exit = True


# -- service.json --------------------------------------------------------------------------------------------
def record(data_dir: Path, pid: int, base_url: str, engine: str, *,
           engine_options: dict[str, Any] | None = None, model: str | None = None) -> None:
    """Write ``service.json`` atomically (temp file, then rename); secret engine options only by name."""
    public, secret = split_options(engine_options)
    info = {"pid": pid, "base_url": base_url, "id": service_id(data_dir), "engine": engine,
            "model": model if model is not None else engine, "engine_options": public,
            "secret_options": secret, "data_dir": str(data_dir), "started_at": time.time()}
    tmp = data_dir / f".{SERVICE_FILE}.{pid}.tmp"
    tmp.write_text(json.dumps(info))
    os.replace(tmp, data_dir / SERVICE_FILE)


def recorded(data_dir: Path) -> dict[str, Any] | None:
    try:
        info = json.loads((Path(data_dir) / SERVICE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _forget(data_dir: Path, pid: int, base_url: str) -> None:
    info = recorded(data_dir)
    if info and info.get("pid") == pid and info.get("base_url") == base_url:
        (Path(data_dir) / SERVICE_FILE).unlink(missing_ok=True)


def pid_alive(pid: Any) -> bool:
    """Whether a process of this pid exists (it may belong to another user)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_DESCRIPTION = ("type", "id", "engine", "model", "engine_options", "secret_options")


def healthy(base_url: str, data_dir: Path | None = None, timeout: float = 2.0, *,
            api_key: str | None = None) -> dict[str, Any] | None:
    """The service at ``base_url`` if it is up (and is the one of ``data_dir``), else None.

    Returns its ``/health`` answer (``status``, ``version``) merged with its ``GET /v1/service`` description
    (``id``, ``engine``, ``model``, ``engine_options``, ``secret_options``) when that answers. With
    ``data_dir``, the service must be that folder's: ``/v1/service`` answers ``service_id(data_dir)``; or,
    when the service requires a key this process lacks (401), ``data_dir/service.json`` names ``base_url``
    and that id, and its pid is alive (the description then comes from ``service.json``). The key tried is
    ``api_key``, else ``$BATCHFRAME_SERVICE_API_KEY``, else any.
    """
    base_url = base_url.rstrip("/")
    key = api_key or os.environ.get(API_KEY_ENV) or "local"
    try:
        with httpx.Client(timeout=timeout) as client:
            answer = client.get(f"{base_url}/health")
            health = answer.json() if answer.status_code == 200 else None
            if not isinstance(health, dict) or health.get("status") != "ok":
                return None
            described = client.get(f"{base_url}/v1/service", headers={"x-api-key": key})
            description = described.json() if described.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None
    if isinstance(description, dict) and description.get("type") == "service":
        if data_dir is not None and description.get("id") != service_id(data_dir):
            return None  # another folder's service now listens there
        return {**health, **{k: description.get(k) for k in _DESCRIPTION}}
    if data_dir is None:
        return health
    if described.status_code != 401:
        return None  # not a batchframe service that can say whose it is
    info = recorded(data_dir)
    if (not info or str(info.get("base_url", "")).rstrip("/") != base_url
            or info.get("id") != service_id(data_dir) or not pid_alive(info.get("pid"))):
        return None
    return {**health, "type": "service", **{k: info.get(k) for k in _DESCRIPTION[1:]}}
