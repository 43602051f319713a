"""Identifiers and timestamps of the local service, in the API's formats; the service's own id.

Batch ids sort by creation time: ``msgbatch_`` + 10 base62 characters of a strictly increasing microsecond
clock + 14 random base62 characters (24 in all, the length of the API's examples). Base62 with the
alphabet ``0-9A-Za-z`` sorts like the numbers it encodes under plain byte comparison, so the list endpoint
pages with ``WHERE id < ?`` and needs no lookup of the cursor (a deleted cursor still works).
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_lock = threading.Lock()
_last_us = 0


def now_us() -> int:
    """Wall-clock time in integer microseconds since the epoch (the store's time unit)."""
    return time.time_ns() // 1000


def rfc3339(us: int | None) -> str | None:
    """Format microseconds as the API does: RFC 3339, microseconds, ``Z``.

    Examples
    --------
    >>> rfc3339(1727203044100435)
    '2024-09-24T18:37:24.100435Z'
    """
    if us is None:
        return None
    return (_EPOCH + timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# Maps each byte to a base62 character (a slight bias toward the first 8 characters is harmless in ids).
_BYTE_TO_BASE62 = bytes(ord(ALPHABET[i % 62]) for i in range(256))


def random_id(prefix: str, length: int = 24) -> str:
    """A random base62 id, e.g. ``random_id("msg_")`` -> ``'msg_01a...'``.

    One per result line, so it is made by translating random bytes rather than by picking characters.

    Examples
    --------
    >>> len(random_id("req_"))
    28
    """
    return prefix + os.urandom(length).translate(_BYTE_TO_BASE62).decode()


def _base62(n: int, width: int) -> str:
    chars = []
    for _ in range(width):
        n, r = divmod(n, 62)
        chars.append(ALPHABET[r])
    return "".join(reversed(chars))


def batch_id() -> tuple[str, int]:
    """A new time-ordered batch id and its creation time in microseconds.

    Examples
    --------
    >>> a, _ = batch_id(); b, _ = batch_id()
    >>> a < b and a.startswith("msgbatch_") and len(a) == 33
    True
    """
    global _last_us
    with _lock:
        us = max(now_us(), _last_us + 1)  # strictly increasing, so ids never tie within a process
        _last_us = us
    return "msgbatch_" + _base62(us, 10) + "".join(random.choices(ALPHABET, k=14)), us


def service_id(data_dir: str | Path) -> str:
    """The id of the service of ``data_dir``: 32 hex characters of the SHA-256 of its resolved path.

    The same folder gives the same id whatever the port or the run, so a client can tell that the service
    at a URL is the one holding its batches (``GET /v1/service``) without the service naming the path.

    Examples
    --------
    >>> a = service_id("/tmp/svc")
    >>> len(a), a == service_id("/tmp/../tmp/svc"), a == service_id("/tmp/other")
    (32, True, False)
    """
    return hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:32]
