"""The Message Batches wire format: request lines, the create body, and batch objects as :class:`RemoteBatch`.

A request line is ``{"custom_id": ..., "params": {...}}``; the create body is ``{"requests": [line, ...]}``.
Both are assembled from pre-serialized bytes (never re-parsed), so a shard's size is known exactly from
its lines' sizes before anything is sent. Nothing outside this folder knows these keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import orjson

from batchframe.providers.base import RemoteBatch
from batchframe.types import COUNT_KEYS

_LINE_HEAD, _LINE_MID, _LINE_TAIL = b'{"custom_id":"', b'","params":', b"}"
_BODY_HEAD, _BODY_TAIL = b'{"requests":[', b"]}"
#: A create body's size minus the sum of (line size + 1) over its lines (see ``plan_shards(envelope=)``).
ENVELOPE_BYTES = len(_BODY_HEAD) + len(_BODY_TAIL) - 1


def encode_lines(custom_ids: Sequence[str], params: Sequence[bytes]) -> list[bytes]:
    """The request line of each (custom_id, serialized params) pair.

    Examples
    --------
    >>> encode_lines(["r0"], [b'{"model":"m"}'])
    [b'{"custom_id":"r0","params":{"model":"m"}}']
    """
    line = _LINE_HEAD + b"%b" + _LINE_MID + b"%b" + _LINE_TAIL  # one formatting per line: the fastest build
    return [line % (cid.encode(), p) for cid, p in zip(custom_ids, params, strict=True)]


def rekey(line: bytes, custom_id: str) -> bytes:
    """The same request line under another custom_id (a retry resends a row under a new one).

    Examples
    --------
    >>> rekey(b'{"custom_id":"r3","params":{}}', "r3-a2")
    b'{"custom_id":"r3-a2","params":{}}'
    """
    end = line.index(b'"', len(_LINE_HEAD))
    return _LINE_HEAD + custom_id.encode() + line[end:]


def set_max_tokens(line: bytes, max_tokens: int) -> bytes:
    """The same request line asking for at most ``max_tokens`` (a retry may allow longer answers).

    Examples
    --------
    >>> set_max_tokens(b'{"custom_id":"r0","params":{"model":"m","max_tokens":4}}', 64)
    b'{"custom_id":"r0","params":{"model":"m","max_tokens":64}}'
    """
    record = orjson.loads(line)
    params = {**record["params"], "max_tokens": int(max_tokens)}
    return b"".join((_LINE_HEAD, record["custom_id"].encode(), _LINE_MID, orjson.dumps(params), _LINE_TAIL))


def params_of(line: bytes) -> bytes:
    """The serialized params of a request line, byte for byte as :func:`encode_lines` was given them (what
    token counting reads).

    Examples
    --------
    >>> params_of(encode_lines(["r0"], [b'{"model":"m","max_tokens":4}'])[0])
    b'{"model":"m","max_tokens":4}'
    """
    return line[line.index(_LINE_MID, len(_LINE_HEAD)) + len(_LINE_MID) : -len(_LINE_TAIL)]


def frame_shard(lines: Sequence[bytes]) -> bytes:
    """The create-batch body for a shard's request lines.

    Examples
    --------
    >>> frame_shard([b'{"custom_id":"r0"}'])
    b'{"requests":[{"custom_id":"r0"}]}'
    """
    if not lines:
        return _BODY_HEAD + _BODY_TAIL
    # Head and tail joined onto the first and last lines: the body is built in one copy (it is up to 256 MB).
    parts = [_BODY_HEAD + lines[0], *lines[1:]]
    parts[-1] += _BODY_TAIL
    return b",".join(parts)


def body_size(sizes: Sequence[int] | np.ndarray) -> int:
    """Exact size of :func:`frame_shard` for lines of these sizes.

    Examples
    --------
    >>> body_size([17]) == len(frame_shard([b"x" * 17]))
    True
    """
    return int(np.sum(sizes)) + len(sizes) + ENVELOPE_BYTES


def decode_batch(obj: dict[str, Any]) -> RemoteBatch:
    """A MessageBatch object as the neutral :class:`RemoteBatch`.

    Examples
    --------
    >>> b = decode_batch({"id": "msgbatch_1", "processing_status": "ended",
    ...                   "request_counts": {"succeeded": 2, "errored": 1}, "created_at": "2026-01-01T10:00:00Z"})
    >>> b.state, b.counts["succeeded"], b.n_requests, b.created_at.year
    ('ended', 2, 3, 2026)
    """
    counts = obj.get("request_counts") or {}
    return RemoteBatch(
        id=obj["id"],
        state=obj.get("processing_status") or "in_progress",
        counts={k: _int(counts.get(k)) for k in COUNT_KEYS},
        created_at=_time(obj.get("created_at")),
        ended_at=_time(obj.get("ended_at")),
        expires_at=_time(obj.get("expires_at")),
    )


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
