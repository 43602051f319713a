"""Sealed results: an ended Message Batch's result stream, written once as one file, served as is.

A batch's results exist only once it has ended, and never change after; so the transaction that ends a
batch first writes its result lines, in the order the results route sends them, to
``<data_dir>/results/<batch id>.jsonl`` (a temporary file, fsynced, then renamed), and only then commits
the ``ended`` status. A file that exists is therefore complete, and an ended batch has one unless it ended
before this store sealed batches (then its lines are joined from ``requests.line``). A crash between the
rename and the commit leaves the batch unfinished; it ends again later and rewrites the same file.

Serving a file is reading large chunks from the page cache: no per-line work and no SQLite page walk,
which is what lets the stream run at the speed of the connection.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

#: Bytes per chunk of a sealed stream (read from the page cache, sent as one body event).
CHUNK_BYTES = 4 << 20


class SealedResults:
    """The sealed result files of one data directory.

    Examples
    --------
    >>> sealed = SealedResults(tmp_path)  # doctest: +SKIP
    >>> sealed.write("msgbatch_1", [b'{"custom_id":"a"}\\n'])  # doctest: +SKIP
    18
    >>> b"".join(sealed.chunks("msgbatch_1"))  # doctest: +SKIP
    b'{"custom_id":"a"}\\n'
    """

    def __init__(self, data_dir: str | Path):
        self.root = Path(data_dir) / "results"

    def path(self, batch_id: str) -> Path:
        return self.root / f"{batch_id}.jsonl"

    def write(self, batch_id: str, pages: Iterable[bytes]) -> int:
        """Write a batch's result stream atomically (temporary file, fsync, rename); return its size."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{batch_id}.tmp"  # one writer per data dir (the service lock): a fixed name
        size = 0
        with open(tmp, "wb") as out:
            for page in pages:
                out.write(page)
                size += len(page)
            out.flush()
            os.fsync(out.fileno())  # the rename must never expose a file whose bytes are not on disk
        os.replace(tmp, self.path(batch_id))
        return size

    def size(self, batch_id: str) -> int | None:
        """The size of a batch's sealed stream; None when it has none."""
        try:
            return self.path(batch_id).stat().st_size
        except FileNotFoundError:
            return None

    def chunks(self, batch_id: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
        """The sealed stream in chunks; a generator, so the file is opened when the first chunk is pulled
        and closed when the stream ends or is dropped. Nothing if the batch was deleted meanwhile."""
        try:
            src = open(self.path(batch_id), "rb")
        except FileNotFoundError:
            return
        with src:
            while chunk := src.read(chunk_bytes):
                yield chunk

    def delete(self, batch_id: str) -> None:
        self.path(batch_id).unlink(missing_ok=True)
