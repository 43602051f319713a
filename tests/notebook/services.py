"""The local service a notebook kernel talks to: started by the test (so the test also stops it)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path


def spawn_service(data_dir: Path, **options):
    """``batchframe serve`` in a child process for ``data_dir``; the kernel's ``ensure_running`` reuses it."""
    from batchframe.server import spawn

    data_dir.mkdir(parents=True, exist_ok=True)
    return spawn(data_dir=data_dir, engine="echo", **options)


def stop_recorded_service(data_dir: Path, *, timeout: float = 15.0) -> None:
    """Stop a service a kernel started itself (recorded in ``service.json``), so no test leaves one behind.

    Only a live process whose command line names this test's data folder is signalled: a stale
    ``service.json`` must never make a test kill an unrelated process that reuses the pid.
    """
    try:
        pid = int(json.loads((data_dir / "service.json").read_text())["pid"])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError, KeyError):
        return
    if b"serve" not in cmdline or str(data_dir).encode() not in cmdline:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or _zombie(pid):
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True
