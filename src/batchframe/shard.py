"""Split requests into shards (remote batches) under the provider's request-count and byte limits.

A shard's body is ``{"requests":[line,line,...]}``; its size is known exactly from the serialized lines,
so the split is computed on sizes alone (vectorised with a cumulative sum) before anything is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import InputError, LimitError

_HEAD, _TAIL = b'{"requests":[', b"]}"
#: Envelope bytes around the joined lines, plus the comma each line but the first needs.
_OVERHEAD = len(_HEAD) + len(_TAIL) - 1


@dataclass(frozen=True)
class ShardLimits:
    """Most requests and bytes of serialized body in one shard. Values above the provider's are refused.

    Examples
    --------
    >>> ShardLimits(max_requests=1000).max_requests
    1000
    """

    max_requests: int = 100_000
    max_bytes: int = 256_000_000  # 256 MB, read as decimal: the stricter reading of the documented limit

    def __post_init__(self) -> None:
        if self.max_requests < 1 or self.max_bytes < 64:
            raise InputError(f"shard limits must be positive, got {self}")

    def within(self, provider: ShardLimits) -> ShardLimits:
        """These limits checked against a provider's own (which they may only lower).

        Examples
        --------
        >>> ShardLimits(max_requests=10).within(ShardLimits()).max_requests
        10
        """
        if self.max_requests > provider.max_requests or self.max_bytes > provider.max_bytes:
            raise InputError(f"shard limits {self} exceed the provider's {provider}; they can only be lowered")
        return self


def plan_shards(sizes: Sequence[int] | np.ndarray, limits: ShardLimits = ShardLimits()) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges over the requests, greedily filled up to both limits.

    Parameters
    ----------
    sizes : array of int
        Serialized size in bytes of each request line, in sending order.
    limits : ShardLimits

    Examples
    --------
    >>> plan_shards([10] * 5, ShardLimits(max_requests=2))
    [(0, 2), (2, 4), (4, 5)]
    >>> plan_shards([40, 40, 40], ShardLimits(max_bytes=100))
    [(0, 2), (2, 3)]
    """
    lengths = np.asarray(sizes, dtype=np.int64)
    cum = np.cumsum(lengths + 1)  # +1: the comma that joins a line to the next
    ranges, start, n = [], 0, len(lengths)
    budget = limits.max_bytes - _OVERHEAD
    while start < n:
        base = cum[start - 1] if start else 0
        stop = min(int(np.searchsorted(cum, base + budget, side="right")), start + limits.max_requests)
        if stop <= start:
            raise LimitError(
                f"request {start} is {int(lengths[start]) + _OVERHEAD} bytes with its envelope, "
                f"over the shard limit of {limits.max_bytes} bytes"
            )
        ranges.append((start, stop))
        start = stop
    return ranges


def shard_body(lines: Sequence[bytes]) -> bytes:
    """The create-batch body for a shard's serialized request lines.

    Examples
    --------
    >>> shard_body([b'{"custom_id":"r0"}'])
    b'{"requests":[{"custom_id":"r0"}]}'
    """
    return _HEAD + b",".join(lines) + _TAIL


def body_size(sizes: Sequence[int] | np.ndarray) -> int:
    """Exact size of :func:`shard_body` for lines of these sizes.

    Examples
    --------
    >>> body_size([17]) == len(shard_body([b"x" * 17]))
    True
    """
    return int(np.sum(sizes)) + len(sizes) + _OVERHEAD
