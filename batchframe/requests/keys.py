"""Row keys: the custom_id of every request, and the way back from a custom_id to a row.

A custom_id must match ``^[a-zA-Z0-9_-]{1,64}$`` and be unique within a batch, while index labels can
be anything (unicode, spaces, timestamps, tuples, duplicates). So batchframe never puts a label in a
custom_id: it keys rows **by position** in the submitted frame.

* Attempt 1 sends row ``p`` (0-based position) as ``r{p}``, e.g. ``r0``, ``r41``.
* A later attempt ``a`` (a retry) sends it as ``r{p}-a{a}``.

The mapping custom_id -> position -> index label is also persisted with the requests (``requests.parquet``
in the job store), and results are matched through that persisted table, never by result order. Because
keys are positions, duplicate index labels cannot mis-map a row.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

#: The API's custom_id rule.
CUSTOM_ID_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def custom_id(position: int, attempt: int = 1) -> str:
    """The custom_id of the row at ``position`` in ``attempt``.

    Examples
    --------
    >>> custom_id(7)
    'r7'
    >>> custom_id(7, attempt=2)
    'r7-a2'
    """
    if position < 0 or attempt < 1:
        raise ValueError(f"bad position {position} / attempt {attempt}")
    return f"r{position}" if attempt == 1 else f"r{position}-a{attempt}"


def custom_ids(positions: np.ndarray, attempt: int = 1) -> list[str]:
    """custom_ids of many positions at once.

    Examples
    --------
    >>> custom_ids(np.array([0, 2]))
    ['r0', 'r2']
    """
    suffix = "" if attempt == 1 else f"-a{attempt}"
    return [f"r{p}{suffix}" for p in positions.tolist()]


def named_positions(ids: pa.Array | pa.ChunkedArray, attempt: int = 1) -> np.ndarray | None:
    """The position each custom_id of ``attempt`` names (the inverse of :func:`custom_id`, vectorised), or None
    when one of them is not of that form.

    This only says where to look: a caller still checks the id found there against the persisted mapping
    (see :func:`positions_of`), so an id never lands on a row by its text alone.

    Examples
    --------
    >>> named_positions(pa.array(["r7", "r0"])).tolist(), named_positions(pa.array(["r7-a2"]), attempt=2).tolist()
    ([7, 0], [7])
    >>> named_positions(pa.array(["r7-a2"])) is None
    True
    """
    suffix = "" if attempt == 1 else f"-a{attempt}"
    if not pc.all(pc.starts_with(ids, "r")).as_py() or not pc.all(pc.ends_with(ids, suffix)).as_py():
        return None
    digits = pc.utf8_slice_codeunits(ids, 1, -len(suffix) if suffix else None)
    try:
        return pc.cast(digits, pa.int64()).to_numpy()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def first_occurrences(values: Sequence[bytes]) -> np.ndarray:
    """For each value, the index of its first occurrence: identical requests are sent once.

    Examples
    --------
    >>> first_occurrences([b"a", b"b", b"a", b"a"]).tolist()
    [0, 1, 0, 0]
    """
    seen: dict[bytes, int] = {}
    return np.fromiter((seen.setdefault(v, i) for i, v in enumerate(values)), dtype=np.int64, count=len(values))


def digest_keys(digests: Sequence[bytes]) -> np.ndarray:
    """16-byte request digests as an ``(n, 2)`` uint64 array (what :func:`first_by_key` takes).

    Examples
    --------
    >>> digest_keys([bytes(16), bytes(range(16))]).shape
    (2, 2)
    """
    joined = b"".join(digests)
    if len(joined) != 16 * len(digests):
        raise ValueError("request digests are 16 bytes each")
    return np.frombuffer(joined, np.uint64).reshape(len(digests), 2)


def first_by_key(keys: np.ndarray) -> np.ndarray:
    """For each ``(n, 2)`` key (a request digest), the index of its first occurrence: identical requests
    are sent once (what :func:`first_occurrences` gives for the keys' bytes).

    Examples
    --------
    >>> first_by_key(np.array([[1, 2], [3, 4], [1, 2], [1, 5]], np.uint64)).tolist()
    [0, 1, 0, 3]
    """
    if len(keys) == 0:
        return np.zeros(0, np.int64)
    # Group by the first half alone (one hash pass, in order of first appearance), then prove every key equal
    # in full to its group's first; keys that share a first half but differ fall back to an exact sort.
    codes, _ = pd.factorize(keys[:, 0])
    seen = np.maximum.accumulate(codes)
    starts = np.flatnonzero(np.r_[True, codes[1:] > seen[:-1]])  # code c first appears at starts[c]
    first = starts[codes].astype(np.int64)
    if (keys[first] == keys).all():
        return first
    order = np.lexsort((keys[:, 1], keys[:, 0]))  # stable: equal keys keep their order, the first one leads
    ordered = keys[order]
    runs = np.r_[True, (ordered[1:] != ordered[:-1]).any(axis=1)]  # where a run of equal keys begins
    out = np.empty(len(keys), np.int64)
    out[order] = order[np.flatnonzero(runs)[np.cumsum(runs) - 1]]
    return out


def positions_of(ids: pa.Array | list[str], known: pa.Array, known_positions: np.ndarray) -> np.ndarray:
    """Row positions of ``ids`` looked up in the persisted mapping; -1 where an id is unknown.

    The lookup goes through the mapping that was sent (``known`` -> ``known_positions``), so an id the
    job never sent can never land on a row.

    Examples
    --------
    >>> positions_of(["r2", "zz", "r0"], pa.array(["r0", "r2"]), np.array([0, 2]))
    array([ 2, -1,  0])
    """
    idx = pc.index_in(pa.array(ids, type=pa.string()), value_set=known.cast(pa.string()))
    idx_np = idx.to_numpy(zero_copy_only=False)
    out = np.full(len(idx), -1, dtype=np.int64)
    valid = ~_isnull(idx_np)
    out[valid] = known_positions[idx_np[valid].astype(np.int64)]
    return out


def _isnull(values: np.ndarray) -> np.ndarray:
    # index_in returns a nullable int array; to_numpy makes nulls NaN (float).
    return np.isnan(values) if values.dtype.kind == "f" else np.zeros(len(values), dtype=bool)
