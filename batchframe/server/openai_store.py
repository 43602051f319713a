"""SQL of the OpenAI batches (table ``openai_batches``); the rules live in ``openai_backend.py`` and
``openai_work.py``.

An OpenAI batch is one ``openai_batches`` row plus, once its input file is validated, one ``batches`` row
of the same id and its ``requests`` (``Store.insert_batch``), so the worker runs, settles, expires and
resumes it exactly like an Anthropic batch. Every status move is one statement guarded by the status it
leaves, so a move made twice (a restart mid-step) or raced (cancel vs. validation) happens once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import orjson

from .store import Store

_JOINED = ("SELECT o.*, b.n_requests, b.succeeded, b.errored, b.canceled, b.expired, b.processing_status,"
           " b.first_request, b.last_request, b.cancel_us FROM openai_batches o LEFT JOIN batches b ON b.seq = o.batch")
#: Statuses in which the worker still has something to do for the batch.
OPEN = ("validating", "in_progress", "cancelling", "finalizing")


class OpenAIBatchStore:
    """Reads and moves ``openai_batches`` rows (each returned joined with its ``batches`` counters).

    Examples
    --------
    >>> batches = OpenAIBatchStore(Store(tmp_path))  # doctest: +SKIP
    >>> batches.get("batch_...")["status"]  # doctest: +SKIP
    'in_progress'
    """

    def __init__(self, store: Store):
        self.store = store

    def insert(self, row: dict[str, Any]) -> None:
        """A new batch, ``validating``; ``row`` holds the columns set at creation."""
        columns = ", ".join(row)
        with self.store.transaction() as db:
            db.execute(f"INSERT INTO openai_batches ({columns}) VALUES ({', '.join(':' + c for c in row)})", row)

    def get(self, batch: str) -> dict[str, Any] | None:
        rows = self._select(f"{_JOINED} WHERE o.id = ?", (batch,))
        return rows[0] if rows else None

    def page(self, *, after: str | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Newest first (ids are time-ordered, so ``id < after`` pages without looking the cursor up)."""
        where, args = ("WHERE o.id < ?", (after,)) if after is not None else ("", ())
        rows = self._select(f"{_JOINED} {where} ORDER BY o.id DESC LIMIT ?", (*args, limit + 1))
        return rows[:limit], len(rows) > limit

    def due(self) -> list[dict[str, Any]]:
        """Batches the worker must move: validating ones, and those whose requests have all ended."""
        return self._select(f"{_JOINED} WHERE o.status IN {OPEN} AND (o.status = 'validating'"
                            " OR b.processing_status = 'ended' OR o.batch IS NULL) ORDER BY o.id", ())

    def move(self, batch: str, to: str, *, leaving: tuple[str, ...], **columns: Any) -> bool:
        """Set ``status`` = ``to`` and ``columns`` if the status is one of ``leaving``; whether it moved."""
        sets = ", ".join(["status = :to", *(f"{c} = :{c}" for c in columns)])
        with self.store.transaction() as db:
            return self.move_in(db, batch, sets, to, leaving, columns)

    @staticmethod
    def move_in(db: sqlite3.Connection, batch: str, sets: str, to: str, leaving: tuple[str, ...],
                columns: dict[str, Any]) -> bool:
        marks = ", ".join(f":s{i}" for i in range(len(leaving)))
        args = {**columns, "to": to, "id": batch, **{f"s{i}": s for i, s in enumerate(leaving)}}
        return db.execute(f"UPDATE openai_batches SET {sets} WHERE id = :id AND status IN ({marks})",
                          args).rowcount > 0

    def link(self, batch: str, seq: int, model: str | None, now: int) -> str:
        """Attach the validated requests (``batches.seq``); validating -> in_progress. Return the status."""
        with self.store.transaction() as db:
            db.execute("UPDATE openai_batches SET batch = ?, model = ?, in_progress_at = ?,"
                       " status = CASE status WHEN 'validating' THEN 'in_progress' ELSE status END"
                       " WHERE id = ? AND batch IS NULL", (seq, model, now, batch))
            (status,) = db.execute("SELECT status FROM openai_batches WHERE id = ?", (batch,)).fetchone()
        return status

    def lines(self, row: dict[str, Any], *, page_rows: int = 4000) -> Iterator[tuple[str, str, bytes]]:
        """(custom_id, result type, stored line) of every request of a batch, by id, a page per query."""
        start, end = row["first_request"], row["last_request"]
        while start is not None and start <= end:
            stop = min(end, start + page_rows - 1)
            with self.store.conn() as db:
                page = db.execute("SELECT custom_id, result_type, line FROM requests WHERE id BETWEEN ? AND ?"
                                  " ORDER BY id", (start, stop)).fetchall()
            yield from page
            start = stop + 1

    def _select(self, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        with self.store.conn() as db:
            db.row_factory = sqlite3.Row
            try:
                return [dict(r) for r in db.execute(sql, args).fetchall()]
            finally:
                db.row_factory = None


def dumps_or_none(value: Any) -> bytes | None:
    """JSON bytes of a column value, NULL for None.

    Examples
    --------
    >>> dumps_or_none({"a": "b"}), dumps_or_none(None)
    (b'{"a":"b"}', None)
    """
    return None if value is None else orjson.dumps(value)
