"""The shard plan: request sizes in, ``[start, stop)`` ranges out, under a request-count and a byte limit.

A shard's body is its serialized lines joined by a one-byte separator inside an envelope whose size the
provider's codec knows (``ENVELOPE_BYTES``), so the split is computed on sizes alone (vectorised with a
cumulative sum) before anything is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from batchframe.errors import InputError, LimitError


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


def plan_shards(
    sizes: Sequence[int] | np.ndarray, limits: ShardLimits = ShardLimits(), *, envelope: int = 0
) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges over the requests, greedily filled up to both limits.

    Parameters
    ----------
    sizes : array of int
        Serialized size in bytes of each request line, in sending order.
    limits : ShardLimits
    envelope : int
        A shard body's size minus the sum of (line size + 1) over its lines: the provider codec's
        ``ENVELOPE_BYTES`` (e.g. ``{"requests":[`` and ``]}``, less the separator the last line lacks).

    Examples
    --------
    >>> plan_shards([10] * 5, ShardLimits(max_requests=2))
    [(0, 2), (2, 4), (4, 5)]
    >>> plan_shards([40, 40, 40], ShardLimits(max_bytes=100), envelope=14)
    [(0, 2), (2, 3)]
    """
    lengths = np.asarray(sizes, dtype=np.int64)
    cum = np.cumsum(lengths + 1)  # +1: the comma that joins a line to the next
    ranges, start, n = [], 0, len(lengths)
    budget = limits.max_bytes - envelope
    while start < n:
        base = cum[start - 1] if start else 0
        stop = min(int(np.searchsorted(cum, base + budget, side="right")), start + limits.max_requests)
        if stop <= start:
            raise LimitError(
                f"request {start} is {int(lengths[start]) + envelope} bytes with its envelope, "
                f"over the shard limit of {limits.max_bytes} bytes"
            )
        ranges.append((start, stop))
        start = stop
    return ranges
