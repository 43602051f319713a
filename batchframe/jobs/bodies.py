"""The request lines a job's shards send, kept beside its requests file as raw bytes.

A new job's lines (hundreds of MB for a large frame) are written, before anything is sent, to a file of
their own plan, ``lines-<token>.bin``: every line that a row carries, back to back, in position order. The
requests file, written after it, names that file (its metadata's ``lines``) and says where each row's line
is (``line_start``, ``line_size``; -1 for a row that sends nothing of its own), so a plan never reads
another plan's lines (a job replanned, or a replan that failed half way). Writing them raw costs a
fraction of a Parquet column's time (no Arrow array to assemble, nothing to encode), and a read takes
only the slices it needs: a shard of a later wave, a retry's rows.

Jobs stored before this file existed, a retry's attempts and Dask jobs keep the lines in the requests
file's ``body`` column; :func:`read_bodies` reads either, as the requests file says.
"""

from __future__ import annotations

import mmap
import tempfile  # noqa: F401  (the doctests use it)
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from batchframe.errors import JobError
from batchframe.jobs.store import Store
from batchframe.results.export import replacing, table_metadata

#: The requests file's metadata key naming its lines file.
LINES_KEY = "lines"
#: The requests file's columns locating each row's line in its lines file (start -1: no line).
START, SIZE = "line_start", "line_size"
#: Lines written per call (joined in a buffer that is reused, not one of hundreds of MB).
_CHUNK = 4096


def lines_path(store: Store, name: str) -> Path:
    """A new file for the attempt-1 lines of a plan of job ``name``.

    Examples
    --------
    >>> lines_path(Store(tempfile.mkdtemp()), "reviews").name  # doctest: +ELLIPSIS
    'lines-....bin'
    """
    return store.job_dir(name) / f"lines-{uuid.uuid4().hex[:12]}.bin"


def drop_other_lines(store: Store, name: str, *, keep: str) -> None:
    """Remove the lines files of job ``name``'s earlier plans (the requests file names ``keep``).

    Examples
    --------
    >>> drop_other_lines(job.store, job.name, keep="lines-0123456789ab.bin")  # doctest: +SKIP
    """
    for path in store.job_dir(name).glob("lines-*.bin"):
        if path.name != keep:
            path.unlink(missing_ok=True)


def write_lines(path: Path, n_rows: int, rows: np.ndarray, lines: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Write ``lines`` (``lines[k]`` is the line of row ``rows[k]``, rows ascending) to ``path``, atomically;
    return each of the ``n_rows`` rows' start and size in it (-1 and 0 where a row has none).

    Examples
    --------
    >>> path = Path(tempfile.mkdtemp()) / "lines-x.bin"
    >>> start, size = write_lines(path, 3, np.array([0, 2]), [b"ab", b"c"])
    >>> start.tolist(), size.tolist(), path.read_bytes()
    ([0, -1, 2], [2, 0, 1], b'abc')
    """
    sizes = np.fromiter(map(len, lines), np.int64, len(lines))
    start = np.full(n_rows, -1, np.int64)
    size = np.zeros(n_rows, np.int32)
    start[rows] = np.cumsum(sizes) - sizes
    size[rows] = sizes
    with replacing(path) as tmp, open(tmp, "wb") as out:
        for at in range(0, len(lines), _CHUNK):
            out.write(b"".join(lines[at : at + _CHUNK]))
    return start, size


def read_bodies(store: Store, name: str, attempt: int = 1, *, shard: int | None = None) -> list[bytes | None]:
    """The stored line of each row of an attempt (``shard``: only that shard's rows), in position order; None
    where a row sends nothing of its own. From the lines file the requests file names, else from its
    ``body`` column.

    Examples
    --------
    >>> read_bodies(job.store, job.name, shard=0)[:1]  # doctest: +SKIP
    [b'{"custom_id":"r0","params":{...}}']
    """
    path = store.requests_path(name, attempt)
    try:
        kept = START in pq.read_schema(path).names
        # Filtered while reading: row groups wholly of other shards are skipped, so a shard of a large job
        # (a Dask job writes one row group per partition) never brings every line into memory.
        filters = [("shard", "=", shard)] if shard is not None else None
        table = pq.read_table(path, columns=[START, SIZE] if kept else ["body"], filters=filters)
    except FileNotFoundError as exc:
        raise JobError(f"missing file {str(path)!r} in the job store") from exc
    if not kept:
        return table.column("body").to_pylist()
    starts, sizes = table.column(START).to_numpy(), table.column(SIZE).to_numpy()
    return _slices(path.parent / table_metadata(path)[LINES_KEY], starts, sizes)


def _slices(path: Path, starts: np.ndarray, sizes: np.ndarray) -> list[bytes | None]:
    if not (starts >= 0).any():
        return [None] * len(starts)
    try:
        source = open(path, "rb")
    except FileNotFoundError as exc:
        raise JobError(f"missing file {str(path)!r} in the job store") from exc
    with source, mmap.mmap(source.fileno(), 0, access=mmap.ACCESS_READ) as view:
        if int((starts + sizes).max()) > len(view):
            raise JobError(f"file {str(path)!r} of the job store is shorter than its requests say (damaged)")
        return [view[a : a + s] if a >= 0 else None for a, s in zip(starts.tolist(), sizes.tolist(), strict=True)]
