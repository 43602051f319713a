"""The request lines a job's shards send, kept beside its requests file.

A new job's lines (hundreds of MB for a large frame) are stored in ``bodies.parquet``, one row per source
row, aligned by position with the requests file: a row that carries its own request has its line, others
null. The requests file itself (labels, custom_ids, shards, digests, input hashes: what the ledger, harvest
and merge read) is written before anything is sent; the lines are written *while* the batches are created
(:class:`BodyWriter`), since only a later send (a shard of a later wave, a retry) reads them back, and the
submit waits for them before it returns.

A process killed before the lines were stored leaves a job without them: its created batches are still
found, harvested and merged, and running the same submit again stores them (:func:`restore_bodies`; the job
fingerprint covers every line, so they are the same lines). Jobs stored before this file existed, a retry's
attempts and Dask jobs keep the lines in the requests file's ``body`` column; :func:`read_bodies` reads
either.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from batchframe.errors import JobError
from batchframe.jobs.store import Store

#: Attempt 1's lines, beside its ``requests.parquet``.
BODIES_FILE = "bodies.parquet"


def bodies_path(store: Store, name: str) -> Path:
    """Where a job's attempt-1 lines are stored."""
    return store.job_dir(name) / BODIES_FILE


def bodies_table(n_rows: int, rows: np.ndarray, lines: Sequence[bytes], shard_of: np.ndarray) -> pa.Table:
    """``shard`` (each row's, as in the requests file) and ``body``: ``lines[k]`` at row ``rows[k]``, null at
    rows that send nothing of their own.

    Examples
    --------
    >>> t = bodies_table(3, np.array([0, 2]), [b"a", b"c"], np.array([0, -1, 0], np.int32))
    >>> t.column("body").to_pylist(), t.column("shard").to_pylist()
    ([b'a', None, b'c'], [0, -1, 0])
    """
    body = binary_array(lines)
    if len(rows) < n_rows or not np.array_equal(rows, np.arange(n_rows)):
        which = np.full(n_rows, -1, dtype=np.int64)
        which[rows] = np.arange(len(rows))
        body = body.take(pa.array(which, mask=which < 0))
    return pa.table({"shard": pa.array(shard_of, pa.int32()), "body": body})


def binary_array(values: Sequence[bytes]) -> pa.Array | pa.ChunkedArray:
    """``values`` as an Arrow binary array, built from one joined buffer (a third of the time of converting
    the list item by item; the lines of a large job are hundreds of MB). Past 2 GB in all, Arrow's own
    conversion, which splits them into chunks.

    Examples
    --------
    >>> binary_array([b"ab", b"", b"c"]).to_pylist()
    [b'ab', b'', b'c']
    """
    sizes = np.fromiter(map(len, values), np.int64, len(values))
    total = int(sizes.sum())
    if total >= 2**31:  # past 32-bit offsets
        return pa.array(values, pa.binary())
    offsets = np.zeros(len(values) + 1, np.int32)
    np.cumsum(sizes, out=offsets[1:])
    data = pa.py_buffer(b"".join(values))
    return pa.BinaryArray.from_buffers(pa.binary(), len(values), [None, pa.py_buffer(offsets), data])


class BodyWriter:
    """Writes a new job's ``bodies.parquet`` on a thread of its own (Parquet and the disk mostly release the
    GIL, and the main thread meanwhile waits on the provider's create calls); :meth:`finish` waits for it.

    Examples
    --------
    >>> writer = BodyWriter(store, "reviews", n_rows, rows, lines, shard_of)  # doctest: +SKIP
    >>> writer.finish()  # doctest: +SKIP
    """

    def __init__(self, store: Store, name: str, n_rows: int, rows: np.ndarray, lines: Sequence[bytes],
                 shard_of: np.ndarray, metadata: dict[str, Any] | None = None):
        self._error: BaseException | None = None
        # The thread drops its arguments (the lines: hundreds of MB) when it ends.
        self._thread = threading.Thread(target=self._run, args=(store, name, n_rows, rows, lines, shard_of, metadata),
                                        name="batchframe-bodies", daemon=True)
        self._thread.start()

    def _run(self, store: Store, name: str, n_rows: int, rows: np.ndarray, lines: Sequence[bytes],
             shard_of: np.ndarray, metadata: dict[str, Any] | None) -> None:
        try:
            store.write_table(bodies_path(store, name), bodies_table(n_rows, rows, lines, shard_of), metadata)
        except BaseException as exc:  # handed to the submit by finish()
            self._error = exc

    def finish(self, *, raising: bool = True) -> None:
        """Wait until the lines are stored; raise :class:`JobError` if they could not be (unless not
        ``raising``: the caller is already raising something else)."""
        self._thread.join()
        if self._error is not None and raising:
            raise JobError(f"the request lines of this job could not be stored ({self._error}); its batches "
                           "are created and will be harvested, but a later send (a shard of a later wave, "
                           "a retry) needs them: run the same submit again to store them (nothing is sent "
                           "twice)") from self._error


def read_bodies(store: Store, name: str, attempt: int = 1, *, shard: int | None = None) -> pa.ChunkedArray:
    """The stored lines of an attempt (``shard``: only that shard's, in order), one per row: null where a
    row sends nothing of its own; from ``bodies.parquet``, else the requests file's ``body`` column.

    Examples
    --------
    >>> read_bodies(job.store, job.name, shard=0).to_pylist()[:1]  # doctest: +SKIP
    [b'{"custom_id":"r0","params":{...}}']
    """
    own = bodies_path(store, name) if attempt == 1 else None
    path = own if own is not None and own.exists() else store.requests_path(name, attempt)
    try:
        if "body" not in pq.read_schema(path).names:
            raise JobError(
                f"job {name!r}: the lines of its requests were not stored (the submit that made it was "
                "interrupted before they were written); its batches are harvested as usual, but to send its "
                "remaining shards or retry rows, run the same submit again: it stores them, sending nothing twice")
        # Filtered while reading: row groups wholly of other shards are skipped, so a shard of a large job
        # (a Dask job writes one row group per partition) never brings every line into memory.
        filters = [("shard", "=", shard)] if shard is not None else None
        return pq.read_table(path, columns=["body"], filters=filters).column("body")
    except FileNotFoundError as exc:
        raise JobError(f"missing file {str(path)!r} in the job store") from exc


def restore_bodies(store: Store, name: str, lines: Sequence[bytes], positions: np.ndarray) -> bool:
    """Store the lines of a job whose submit was interrupted before they were written, from the same
    submit run again (the same fingerprint: the same lines, ``lines[k]`` the request of row
    ``positions[k]``). Returns whether anything was missing. Each restored line is checked against the
    row's custom_id in the requests file.

    Examples
    --------
    >>> restore_bodies(job.store, job.name, p.all_lines, p.requests.positions)  # doctest: +SKIP
    False
    """
    path = store.requests_path(name, 1)
    if bodies_path(store, name).exists() or not path.exists() or "body" in pq.read_schema(path).names:
        return False
    table = store.read_table(path, columns=["position", "custom_id", "shard", "same_as"])
    rows = table.column("position").to_numpy()
    own = rows[table.column("same_as").to_numpy() == rows]
    at = np.searchsorted(positions, own)
    if (at >= len(positions)).any() or not np.array_equal(positions[np.minimum(at, len(positions) - 1)], own):
        raise JobError(f"job {name!r}: its stored rows are not this submit's; its lines cannot be restored")
    mine = [lines[k] for k in at.tolist()]
    ids = table.column("custom_id").take(pa.array(own)).to_pylist()
    if any(not line.startswith(b'{"custom_id":"%b"' % cid.encode()) for line, cid in zip(mine, ids, strict=True)):
        raise JobError(f"job {name!r}: its stored custom_ids are not this submit's; its lines cannot be restored")
    shard_of = table.column("shard").to_numpy()
    store.write_table(bodies_path(store, name), bodies_table(len(rows), own, mine, shard_of), {"job": name})
    return True
