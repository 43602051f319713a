"""The request lines a job's shards send, kept beside its requests file in LZ4 frames.

A new job's lines (hundreds of MB for a large frame) are written, before anything is sent, to a file of
their own plan, ``lines-<token>.bin``: every line that a row carries, back to back, in position order. The
requests file, written at the same time, names that file (its metadata's ``lines``) and says where each
row's line is in the lines joined (``line_start``, ``line_size``; -1 for a row that sends nothing of its
own), so a plan never reads another plan's lines (a job replanned, or a replan that failed half way); the
manifest, which makes the job, is written once both are. The file is a run of LZ4 frames of up to 16,384
lines or 8 MB (their raw sizes in the metadata's ``lines_frames``, known before compressing; at the file's
end, each frame's packed size and the CRC-32 of its lines, then a closing mark): no Arrow array to
assemble, a quarter of the bytes to write, and a read decompresses only the frames it needs (a shard of a
later wave, a retry's rows), and proves what it read. (The first files of this kind, written on
2026-11-30 and 2026-12-01, kept the packed sizes in the metadata and no checksum; they still read, each
frame checked for its length only.)

Jobs stored before this file existed, a retry's attempts and Dask jobs keep the lines in the requests
file's ``body`` column; :func:`read_bodies` reads either, as the requests file says.
"""

from __future__ import annotations

import os
import struct
import tempfile  # noqa: F401  (the doctests use it)
import uuid
import zlib
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from batchframe.errors import JobError
from batchframe.jobs.store import Store
from batchframe.results.export import replacing, schema_metadata

#: The requests file's metadata keys naming its lines file and listing that file's frames.
LINES_KEY, FRAMES_KEY = "lines", "lines_frames"
#: The requests file's columns locating each row's line in its lines file (start -1: no line).
START, SIZE = "line_start", "line_size"
#: Lines per compressed frame, at most; and the raw bytes a frame stops at (a shard read back decompresses
#: only the frames it spans).
_CHUNK, _FRAME_BYTES = 16384, 8 << 20
#: Frames compressed at once (LZ4 releases the GIL: the second core is free while a submit is persisted).
_PACKERS = 2
_CODEC = "lz4"
#: What closes a lines file, after its frames' index (packed size and CRC-32 of the raw lines, int64 each):
#: the number of frames and a mark. A file of this layout without it was cut short.
_TAIL, _MARK = struct.Struct("<q8s"), b"bflines1"


def lines_path(store: Store, name: str) -> Path:
    """A new file for the attempt-1 lines of a plan of job ``name``.

    Examples
    --------
    >>> lines_path(Store(tempfile.mkdtemp()), "reviews").name  # doctest: +ELLIPSIS
    'lines-....bin'
    """
    return store.job_dir(name) / f"lines-{uuid.uuid4().hex[:12]}.bin"


def drop_other_lines(store: Store, name: str, *, keep: str | None) -> None:
    """Remove the lines files of job ``name`` but ``keep`` (the one its requests file names; None: all), and
    what a write killed half way left (of a lines file, or of the requests file written beside it).

    Examples
    --------
    >>> drop_other_lines(job.store, job.name, keep="lines-0123456789ab.bin")  # doctest: +SKIP
    """
    folder = store.job_dir(name)
    staged = f"*{store.requests_path(name, 1).name}.*.tmp"  # the temporary files of a requests file's writes
    for path in [*folder.glob("lines-*.bin"), *folder.glob(".lines-*.tmp"), *folder.glob(staged)]:
        if path.name != keep:
            path.unlink(missing_ok=True)


def frame_bounds(sizes: np.ndarray) -> list[tuple[int, int]]:
    """The ``(start, stop)`` line ranges of the frames: :data:`_CHUNK` lines, fewer when they pass
    :data:`_FRAME_BYTES` (lines carrying documents or images are MBs each), never none.

    Examples
    --------
    >>> frame_bounds(np.array([10, 10, 10]))
    [(0, 3)]
    >>> frame_bounds(np.array([_FRAME_BYTES, 1, 1]))
    [(0, 1), (1, 3)]
    """
    ends = np.cumsum(sizes)
    bounds, at = [], 0
    while at < len(sizes):
        base = int(ends[at - 1]) if at else 0
        stop = min(at + _CHUNK, int(np.searchsorted(ends, base + _FRAME_BYTES, side="left")) + 1, len(sizes))
        bounds.append((at, max(stop, at + 1)))
        at = bounds[-1][1]
    return bounds


@dataclass(frozen=True, eq=False)
class Layout:
    """Where the lines of a plan go in its lines file, known before a byte is written: each of the rows' start
    and size in the lines joined (-1 and 0 where a row has none), and the frames' line ranges and raw sizes.

    Examples
    --------
    >>> layout(2, np.array([1]), [b"abc"]).bounds
    [(0, 1)]
    """

    start: np.ndarray
    size: np.ndarray
    bounds: list[tuple[int, int]]
    raw: list[int]

    @property
    def frames(self) -> dict[str, list[int]]:
        """What the requests file's metadata keeps (:data:`FRAMES_KEY`); the packed sizes are in the file."""
        return {"raw": self.raw}


def layout(n_rows: int, rows: np.ndarray, lines: Sequence[bytes]) -> Layout:
    """The :class:`Layout` of ``lines`` (``lines[k]`` is the line of row ``rows[k]``, rows ascending) among
    ``n_rows`` rows.

    Examples
    --------
    >>> place = layout(3, np.array([0, 2]), [b"ab", b"c"])
    >>> place.start.tolist(), place.size.tolist(), place.frames
    ([0, -1, 2], [2, 0, 1], {'raw': [3]})
    """
    sizes = np.fromiter(map(len, lines), np.int64, len(lines))
    start = np.full(n_rows, -1, np.int64)
    size = np.zeros(n_rows, np.int32)
    start[rows] = np.cumsum(sizes) - sizes
    size[rows] = sizes
    bounds = frame_bounds(sizes)
    return Layout(start, size, bounds, [int(sizes[a:b].sum()) for a, b in bounds])


def write_lines(path: Path, lines: Sequence[bytes], place: Layout) -> None:
    """Write ``lines`` to ``path``, atomically, as LZ4 frames cut as ``place`` says, compressed (and checksummed)
    on threads while the ones before are written (a quarter of the bytes to write, which is what a large
    submit waits on when the disk is busy), then the frames' index and a closing mark (:data:`_TAIL`): the
    requests file, which says where each line is, can then be written at the same time as this one.

    Examples
    --------
    >>> path = Path(tempfile.mkdtemp()) / "lines-x.bin"
    >>> place = layout(3, np.array([0, 2]), [b"ab", b"c"])
    >>> write_lines(path, [b"ab", b"c"], place)
    >>> read_lines(path, place.start, place.size, place.frames)
    [b'ab', None, b'c']
    """
    bounds = place.bounds

    def pack(a: int, b: int) -> tuple[bytes, int]:
        raw = b"".join(lines[a:b])
        return pa.compress(raw, codec=_CODEC, asbytes=True), zlib.crc32(raw)  # both let the GIL go

    index = []
    with replacing(path) as tmp, open(tmp, "wb") as out, ThreadPoolExecutor(_PACKERS) as pool:
        ahead = deque(pool.submit(pack, *b) for b in bounds[:_PACKERS])
        for k in range(len(bounds)):  # a few frames ahead, not all of them: memory stays a few frames
            frame, crc = ahead.popleft().result()
            if k + _PACKERS < len(bounds):
                ahead.append(pool.submit(pack, *bounds[k + _PACKERS]))
            out.write(frame)
            index.append((len(frame), crc))
        out.write(np.array(index, "<i8").reshape(-1, 2).tobytes() + _TAIL.pack(len(index), _MARK))


def _frame_index(path: Path, source: BinaryIO, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` frames' packed sizes and checksums, read from the file's end and checked against its length
    (a file of the first layout has no index: its sizes are in the metadata)."""
    damaged = JobError(f"file {str(path)!r} of the job store is damaged (its frames' index)")
    end = source.seek(0, os.SEEK_END)
    if end < _TAIL.size:
        raise damaged
    source.seek(end - _TAIL.size)
    count, mark = _TAIL.unpack(source.read(_TAIL.size))
    at = end - _TAIL.size - 16 * count
    if mark != _MARK or count != n or at < 0:
        raise damaged
    source.seek(at)
    index = np.frombuffer(source.read(16 * count), "<i8").reshape(count, 2).astype(np.int64)
    packed, crc = index[:, 0], index[:, 1]
    # Each size within the file, and all of them the bytes before the index (Python ints: no sum wraps).
    if (count and (packed.min() < 0 or packed.max() > at)) or sum(packed.tolist()) != at:
        raise damaged
    return packed, crc


def read_lines(path: Path, starts: np.ndarray, sizes: np.ndarray, frames: dict[str, list[int]]) -> list[bytes | None]:
    """The lines at ``starts`` / ``sizes`` of a file :func:`write_lines` wrote (None where start is -1),
    decompressing only the frames that hold them, each checked against its checksum.

    Examples
    --------
    >>> read_lines(path, np.array([2]), np.array([1]), {"raw": [3]})  # doctest: +SKIP
    [b'c']
    """
    raw = np.array(frames["raw"], np.int64)
    raw_end = np.cumsum(raw)
    wanted = np.flatnonzero(starts >= 0)
    which = np.searchsorted(raw_end, starts[wanted], side="right")  # a line never spans two frames
    if len(wanted) and (int(which.max()) >= len(raw) or (sizes[wanted] < 0).any()
                        or ((starts + sizes)[wanted] > raw_end[np.minimum(which, len(raw) - 1)]).any()):
        raise JobError(f"file {str(path)!r} of the job store holds fewer lines than its requests say (damaged)")
    out: list[bytes | None] = [None] * len(starts)
    order = np.argsort(which, kind="stable")
    groups = np.flatnonzero(np.r_[True, which[order][1:] != which[order][:-1]]) if len(order) else order
    try:
        source = open(path, "rb")
    except FileNotFoundError as exc:
        raise JobError(f"missing file {str(path)!r} in the job store") from exc
    with source:
        crc: np.ndarray | None
        if "packed" in frames:  # the first layout
            packed, crc = np.array(frames["packed"], np.int64), None
            if len(packed) != len(raw) or (packed < 0).any():
                raise JobError(f"file {str(path)!r} of the job store is damaged (its frames' sizes)")
        else:
            packed, crc = _frame_index(path, source, len(raw))
        packed_end = np.cumsum(packed)
        for g, first in enumerate(groups.tolist()):  # each frame read and decompressed once
            last = groups[g + 1] if g + 1 < len(groups) else len(order)
            k = int(which[order[first]])
            source.seek(int(packed_end[k] - packed[k]))
            try:
                frame = _unpack(source.read(int(packed[k])), int(raw[k]), checked=crc is not None)
            except (OSError, pa.ArrowException) as exc:  # Arrow raises a decompression failure as OSError
                raise JobError(f"file {str(path)!r} of the job store is damaged (frame {k}: {exc})") from exc
            if (zlib.crc32(frame) != crc[k]) if crc is not None else len(frame) != raw[k]:
                raise JobError(f"file {str(path)!r} of the job store is damaged (frame {k}: its checksum or size)")
            base = int(raw_end[k] - raw[k])
            for i in wanted[order[first:last]].tolist():
                at = int(starts[i]) - base
                out[i] = frame[at : at + int(sizes[i])]
    return out


def _unpack(data: bytes, size: int, *, checked: bool) -> bytes:
    """A frame's lines. Arrow's one-call decompression gives back ``size`` bytes whatever the frame held (a
    short frame padded): right when a checksum proves them; a frame of the first layout (no checksum) is
    decompressed as a stream instead, which says how long it really is."""
    if checked:
        return pa.decompress(data, decompressed_size=size, codec=_CODEC, asbytes=True)
    return pa.CompressedInputStream(pa.BufferReader(data), _CODEC).read()


def sent_lines(store: Store, name: str, attempt: int = 1, *, shard: int | None = None,
               positions: np.ndarray | None = None) -> list[bytes]:
    """:func:`read_bodies` of rows that each send their own request (a shard's, a retry's): a row without a
    stored line is a damaged store, said as such.

    Examples
    --------
    >>> len(sent_lines(job.store, job.name, shard=0))  # doctest: +SKIP
    40
    """
    lines = read_bodies(store, name, attempt, shard=shard, positions=positions)
    if None in lines:
        where = f"shard {shard}" if shard is not None else "the rows asked for"
        raise JobError(f"job {name!r}: rows of {where} (attempt {attempt}) have no stored request line "
                       "(damaged store)")
    return cast(list[bytes], lines)


def read_bodies(store: Store, name: str, attempt: int = 1, *, shard: int | None = None,
                positions: np.ndarray | None = None) -> list[bytes | None]:
    """The stored line of each row of an attempt (``shard``: only that shard's rows, in position order;
    ``positions``: only those rows, in that order); None where a row sends nothing of its own. From the lines
    file the requests file names, else from its ``body`` column.

    Examples
    --------
    >>> read_bodies(job.store, job.name, shard=0)[:1]  # doctest: +SKIP
    [b'{"custom_id":"r0","params":{...}}']
    """
    path = store.requests_path(name, attempt)
    try:
        file = pq.ParquetFile(path)
    except FileNotFoundError as exc:
        raise JobError(f"missing file {str(path)!r} in the job store") from exc
    with file:
        names = file.schema_arrow.names
        kept = START in names
        if not kept and "body" not in names:
            raise JobError(f"file {str(path)!r} of the job store locates no request lines (an unknown format)")
        meta = schema_metadata(file.schema_arrow)
        if kept and not {LINES_KEY, FRAMES_KEY} <= meta.keys():
            raise JobError(f"file {str(path)!r} of the job store does not name its lines file (an unknown format)")
        # Filtered while reading: row groups wholly of other shards are skipped, so a shard of a large job
        # (a Dask job writes one row group per partition) never brings every line into memory.
        filters = [("shard", "=", shard)] if shard is not None else None
        table = pq.read_table(path, columns=[START, SIZE] if kept else ["body"], filters=filters)
    if positions is not None:  # row p is at position p
        table = table.take(pa.array(positions, pa.int64()))
    if not kept:
        return table.column("body").to_pylist()
    return read_lines(path.parent / meta[LINES_KEY], table.column(START).to_numpy(), table.column(SIZE).to_numpy(),
                      meta[FRAMES_KEY])
