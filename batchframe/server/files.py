"""The OpenAI Files of the local service: bytes in ``<data_dir>/files/<id>``, metadata in ``openai_files``.

A file's bytes are written to a temporary file and renamed into place BEFORE its row is inserted, so a
row always has its bytes; a killed process leaves at most an orphan temporary file. Deleting removes the
bytes and marks the row (``deleted_at``): a deleted file is gone for every call, yet a list cursor that
names it still pages (``seq`` orders the list).

Ids: an uploaded file is ``file-`` + the time-ordered suffix of a new batch id (``ids.batch_id``); a
batch's output and error files are derived from the batch id (:func:`derived_file_id`), so finishing a
batch again after a crash rewrites the same files instead of adding new ones.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .ids import batch_id
from .store import Store

_CHUNK = 4 << 20
_COLUMNS = "seq, id, filename, purpose, bytes, created_at, expires_at"


def new_file_id() -> str:
    """A new, time-ordered file id.

    Examples
    --------
    >>> a, b = new_file_id(), new_file_id()
    >>> a.startswith("file-") and a < b
    True
    """
    return "file-" + batch_id()[0].removeprefix("msgbatch_")


def derived_file_id(batch: str, kind: str) -> str:
    """The id of a batch's ``output`` or ``error`` file: ``file-`` + 24 hex digits of SHA-256(batch/kind).

    Examples
    --------
    >>> out = derived_file_id("batch_1", "output")
    >>> out == derived_file_id("batch_1", "output") != derived_file_id("batch_1", "error"), len(out)
    (True, 29)
    """
    return "file-" + hashlib.sha256(f"{batch}/{kind}".encode()).hexdigest()[:24]


class FileStore:
    """Files of one data directory.

    Examples
    --------
    >>> files = FileStore(Store(tmp_path))  # doctest: +SKIP
    >>> row = files.add(filename="in.jsonl", purpose="batch", data=b"{}\\n")  # doctest: +SKIP
    >>> b"".join(files.chunks(row["id"]))  # doctest: +SKIP
    b'{}\\n'
    """

    def __init__(self, store: Store):
        self.store = store
        self.root = store.path.parent / "files"

    def path(self, file_id: str) -> Path:
        return self.root / file_id

    def write(self, file_id: str, chunks: Iterable[bytes]) -> int:
        """Write a file's bytes atomically (temporary file, fsync, rename); return their size."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{file_id}.{os.getpid()}.tmp"
        size = 0
        with open(tmp, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path(file_id))
        return size

    def add(self, *, filename: str, purpose: str, data: bytes, expires_after: int | None = None) -> dict[str, Any]:
        """Store an uploaded file; return its row."""
        file_id, now = new_file_id(), int(time.time())
        size = self.write(file_id, [data])
        row = {"id": file_id, "filename": filename, "purpose": purpose, "bytes": size, "created_at": now,
               "expires_at": now + expires_after if expires_after else None}
        with self.store.transaction() as db:
            self.record(db, row)
        return row

    @staticmethod
    def record(db: sqlite3.Connection, row: dict[str, Any]) -> None:
        """Insert (or replace: a batch finished again) a file's row, inside the caller's transaction."""
        db.execute("INSERT OR REPLACE INTO openai_files (id, filename, purpose, bytes, created_at, expires_at)"
                   " VALUES (:id, :filename, :purpose, :bytes, :created_at, :expires_at)", row)

    def get(self, file_id: str) -> dict[str, Any] | None:
        """The row of a file that exists (not deleted), else None."""
        rows = self._select(f"SELECT {_COLUMNS} FROM openai_files WHERE id = ? AND deleted_at IS NULL", (file_id,))
        return rows[0] if rows else None

    def read(self, file_id: str) -> bytes:
        return self.path(file_id).read_bytes()

    def chunks(self, file_id: str) -> Iterator[bytes]:
        """The file's bytes in 4 MB chunks (a generator: the file is opened when the first chunk is pulled)."""
        with open(self.path(file_id), "rb") as src:
            while chunk := src.read(_CHUNK):
                yield chunk

    def delete(self, file_id: str) -> bool:
        """Delete a file; False if there was none."""
        with self.store.transaction() as db:
            done = db.execute("UPDATE openai_files SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL",
                              (int(time.time()), file_id)).rowcount
        if done:
            self.path(file_id).unlink(missing_ok=True)
        return bool(done)

    def page(self, *, purpose: str | None, limit: int, order: str,
             after: str | None) -> tuple[list[dict[str, Any]], bool]:
        """Files in creation order (``asc`` / ``desc``), after the cursor's file; (page, has_more)."""
        where, args = ["deleted_at IS NULL"], []
        if purpose is not None:
            where.append("purpose = ?")
            args.append(purpose)
        if after is not None:
            where.append(f"seq {'>' if order == 'asc' else '<'} coalesce("
                         "(SELECT seq FROM openai_files WHERE id = ?), -1)")
            args.append(after)
        direction = "ASC" if order == "asc" else "DESC"
        rows = self._select(f"SELECT {_COLUMNS} FROM openai_files WHERE {' AND '.join(where)}"
                            f" ORDER BY seq {direction} LIMIT ?", (*args, limit + 1))
        return rows[:limit], len(rows) > limit

    def _select(self, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        with self.store.conn() as db:
            db.row_factory = sqlite3.Row
            try:
                return [dict(r) for r in db.execute(sql, args).fetchall()]
            finally:
                db.row_factory = None
