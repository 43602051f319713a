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
    """Stop a service a kernel started itself (recorded in ``service.json``), so no test leaves one behind."""
    try:
        pid = int(json.loads((data_dir / "service.json").read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
