"""The service's state in SQLite: batches, their requests and their finished result lines.

A Message Batch is stored whole at create (its body in a file, then one ``batches`` row and one
``batch_inputs`` row naming it, in one transaction, so it survives a restart), expanded into per-request
rows by the worker before anything else touches its requests, and its result stream is sealed into one
file before the transaction that ends it commits (``sealed.py``): results exist only once a batch has
ended, and never change after.

Only SQL lives here; the rules (validation, lifecycle, wire shapes) live in ``backend.py``. Connections
come from a small pool so that the event loop's thread pool, the worker thread and result streams each
use their own; WAL mode lets readers run while the worker writes. Every write is one transaction, so a
killed process loses at most the chunk it was processing, which then simply runs again.
"""

from __future__ import annotations

import logging
import os
import queue
import random
import sqlite3
import tempfile  # noqa: F401  (the doctests use it)
import threading
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import orjson

from .ids import now_us
from .intake import raw_items
from .migrations import migrate
from .sealed import SealedResults
from .validation import BETA_KEY, UNSTORABLE_KEY

log = logging.getLogger("batchframe.server")
COUNT_COLUMNS = ("succeeded", "errored", "canceled", "expired")
# A canceled / expired line built in SQL (custom_ids are [a-zA-Z0-9_-], so no escaping is needed).
_CANCELED_LINE = ("CAST('{\"custom_id\":\"' || custom_id || '\",\"result\":{\"type\":\"%s\"}}' || char(10)"
                  " AS BLOB)")


# A staged batch's requests, expanded in SQL. The body's item k gets id first + perm[k] (``perm``: a random
# permutation, 6 digits per entry in a BLOB, where substr is O(1)), inserted in id order, so the stored
# order is shuffled and the results stream by id in that random order. A beta call's params carry BETA_KEY,
# set last as the create always did. CAST AS TEXT: SQLite >= 3.45 reads a BLOB argument as binary JSONB.
# (json_extract, not ->: the operators need SQLite 3.38.)
_EXPAND = ("INSERT INTO requests (id, batch, custom_id, params, shuffle)"
           " SELECT :first + CAST(substr(:perm, e.key * 6 + 1, 6) AS INTEGER), :seq,"
           " json_extract(e.value, '$.custom_id'),"
           " CAST(CASE WHEN :beta"
           f" THEN json_set(json_extract(e.value, '$.params'), '$.{BETA_KEY}', json('true'))"
           " ELSE json_extract(e.value, '$.params') END AS BLOB), 0"
           " FROM json_each(CAST(:body AS TEXT), '$.requests') e ORDER BY 1")
# The lines of an id range, joined in id order (the subquery's order is the order group_concat sees them in).
_RESULT_PAGE = ("SELECT CAST(group_concat(line, '') AS BLOB) FROM"
                " (SELECT line FROM requests WHERE id BETWEEN ? AND ? ORDER BY id)")


#: The params stored for a request whose own params cannot be written back as JSON (see ``Store._expand_each``).
UNSTORABLE = orjson.dumps({UNSTORABLE_KEY: True})


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _ExpandMismatch(Exception):
    pass


def _staged_items(body: bytes, beta: bool) -> list[tuple[str, bytes]]:
    """``(custom_id, params to store)`` of a staged body, in order. Read by orjson; a body only the create's
    typed read takes (``intake`` notes: ``1e999``, deep nesting) keeps each params as its raw JSON, which
    the worker then refuses as that request's own error, so one request never holds up the batch."""
    try:
        return [(item["custom_id"], _stored_params(item["params"], beta)) for item in orjson.loads(body)["requests"]]
    except orjson.JSONDecodeError:
        return [(cid, _with_beta_mark(params) if beta else params) for cid, params in raw_items(body)]


def _with_beta_mark(params: bytes) -> bytes:
    """Raw params JSON (an object) with BETA_KEY set last, as :func:`_stored_params` sets it."""
    inner = params.strip()[1:-1].strip()
    return b"{" + inner + (b"," if inner else b"") + orjson.dumps(BETA_KEY) + b":true}"


def _stored_params(params: Any, beta: bool) -> bytes:
    try:
        return orjson.dumps({**params, BETA_KEY: True} if beta else params)
    except orjson.JSONEncodeError:
        return UNSTORABLE


class Store:
    """SQLite state of one data directory (file ``batches.sqlite3``)."""

    def __init__(self, data_dir: str | Path):
        self.path = Path(data_dir) / "batches.sqlite3"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.sealed = SealedResults(self.path.parent)
        self.inputs = self.path.parent / "inputs"  # create bodies staged until expanded (write_input)
        with self.conn() as db:
            migrate(db)

    # -- connections -------------------------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=60)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives a killed process, just not power loss
        db.execute("PRAGMA cache_size=-32000")
        with self._lock:
            self._all.append(db)
        return db

    @contextmanager
    def conn(self) -> Iterator[sqlite3.Connection]:
        try:
            db = self._idle.get_nowait()
        except queue.Empty:
            db = self._open()
        try:
            yield db
        finally:
            self._idle.put(db)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction."""
        with self.conn() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            for db in self._all:
                db.close()
            self._all.clear()

    # -- batches -----------------------------------------------------------------------------------------
    def insert_batch(self, batch_id: str, created_us: int, expires_us: int,
                     requests: list[tuple[str, bytes]]) -> dict[str, Any]:
        """Store a new batch and its requests (custom_id, params JSON) in one transaction; return its row.

        The requests get consecutive ids in the order given (this process is the only writer, and the
        transaction holds the write lock), recorded as ``first_request..last_request``.
        """
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO batches (id, processing_status, n_requests, created_us, expires_us)"
                " VALUES (?, 'in_progress', ?, ?, ?)", (batch_id, len(requests), created_us, expires_us))
            seq = cur.lastrowid
            (first,) = db.execute("SELECT coalesce(max(id), 0) + 1 FROM requests").fetchone()
            db.executemany("INSERT INTO requests (id, batch, custom_id, params, shuffle) VALUES (?, ?, ?, ?, 0)",
                           ((first + i, seq, cid, params) for i, (cid, params) in enumerate(requests)))
            last = first + len(requests) - 1
            db.execute("UPDATE batches SET first_request = ?, last_request = ? WHERE seq = ?", (first, last, seq))
        return {"seq": seq, "id": batch_id, "processing_status": "in_progress", "n_requests": len(requests),
                **dict.fromkeys(COUNT_COLUMNS, 0), "created_us": created_us, "expires_us": expires_us,
                "ended_us": None, "cancel_us": None, "first_request": first, "last_request": last}

    def stage_batch(self, batch_id: str, created_us: int, expires_us: int, n_requests: int,
                    body: bytes, *, beta: bool = False) -> dict[str, Any]:
        """Store a new batch from a validated create body (``{"requests": [...]}``) in one call; return its row:
        :meth:`write_input`, then :meth:`commit_batch` (what ``Backend.create`` does, with the write beside the
        validation). The worker expands it into ``requests`` rows (:meth:`expand`).

        Examples
        --------
        >>> store = Store(tempfile.mkdtemp())
        >>> body = b'{"requests":[{"custom_id":"a","params":{}}]}'
        >>> store.stage_batch("msgbatch_x", 0, 10**15, 1, body)["n_requests"]
        1
        >>> store.close()
        """
        pending = self.write_input(body)
        try:
            return self.commit_batch(batch_id, created_us, expires_us, n_requests, pending, beta=beta)
        except BaseException:
            pending.unlink(missing_ok=True)
            raise

    def write_input(self, body: bytes, *, dropped: threading.Event | None = None) -> Path:
        """Write a create body to a new file of ``inputs/`` and fsync it (unless ``dropped`` is set by then: the
        create was refused, or its body is stored re-serialised, while it was written); return its path, for
        :meth:`commit_batch`.

        The body is what SQLite's JSON functions will expand (the caller gives it as ``intake.stored_body``
        says). A file, not a blob in ``batch_inputs``: a third of the time SQLite takes to page tens of MB into
        its log (older stores' blobs still expand). Writing and fsync release the GIL: the service writes a
        large body while it validates it. A crash before the commit leaves only a file no row names (swept at
        the next start, :meth:`sweep_inputs`).

        Examples
        --------
        >>> store = Store(tempfile.mkdtemp())
        >>> store.write_input(b'{"requests":[]}').name.startswith("pending-")
        True
        >>> store.close()
        """
        self.inputs.mkdir(exist_ok=True)
        path = self.inputs / f"pending-{uuid.uuid4().hex}.json"
        try:
            with open(path, "wb") as out:
                out.write(body)
                out.flush()
                if dropped is None or not dropped.is_set():
                    os.fsync(out.fileno())  # on disk before the row that names it can be
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    def commit_batch(self, batch_id: str, created_us: int, expires_us: int, n_requests: int, pending: Path, *,
                     beta: bool = False) -> dict[str, Any]:
        """Name the body :meth:`write_input` wrote after the batch (``inputs/<batch id>.json``, the rename made
        durable), then add the batch and its ``batch_inputs`` row (an empty ``requests`` says the body is in its
        file) in one transaction; return its row.

        Examples
        --------
        >>> store = Store(tempfile.mkdtemp())
        >>> row = store.commit_batch("msgbatch_y", 0, 10**15, 0, store.write_input(b'{"requests":[]}'))
        >>> row["id"], (store.inputs / "msgbatch_y.json").is_file()
        ('msgbatch_y', True)
        >>> store.close()
        """
        path = self._input_path(batch_id)
        os.replace(pending, path)
        try:
            _fsync_dir(self.inputs)  # the name on disk before the row that uses it
            with self.transaction() as db:
                seq = db.execute("INSERT INTO batches (id, processing_status, n_requests, created_us, expires_us)"
                                 " VALUES (?, 'in_progress', ?, ?, ?)",
                                 (batch_id, n_requests, created_us, expires_us)).lastrowid
                db.execute("INSERT INTO batch_inputs (batch, beta, requests) VALUES (?, ?, x'')", (seq, beta))
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return {"seq": seq, "id": batch_id, "processing_status": "in_progress", "n_requests": n_requests,
                **dict.fromkeys(COUNT_COLUMNS, 0), "created_us": created_us, "expires_us": expires_us,
                "ended_us": None, "cancel_us": None, "first_request": None, "last_request": None}

    def _input_path(self, batch_id: str) -> Path:
        return self.inputs / f"{batch_id}.json"

    def sweep_inputs(self) -> int:
        """Remove the create bodies no staged batch names (a create killed between writing its body and
        committing its row, the file still pending or already named); return how many. Only the service holding
        the data dir's lock calls this, before it takes any create, so no body is between its write and its
        commit.

        Examples
        --------
        >>> Store(tempfile.mkdtemp()).sweep_inputs()
        0
        """
        if not self.inputs.is_dir():
            return 0
        with self.conn() as db:
            staged = {batch_id for (batch_id,) in db.execute(
                "SELECT b.id FROM batch_inputs i JOIN batches b ON b.seq = i.batch")}
        stray = [path for path in self.inputs.glob("*.json") if path.stem not in staged]
        for path in stray:
            path.unlink(missing_ok=True)
        return len(stray)

    def _staged(self, db: sqlite3.Connection, seq: int) -> tuple[bool, bytes, str]:
        """A staged batch's beta mark, body and id (the body from its file, or from an older store's blob)."""
        beta, body, batch_id = db.execute("SELECT i.beta, i.requests, b.id FROM batch_inputs i JOIN batches b"
                                          " ON b.seq = i.batch WHERE i.batch = ?", (seq,)).fetchone()
        return bool(beta), (body or self._input_path(batch_id).read_bytes()), batch_id

    def expand(self, limit: int | None = None) -> int:
        """Turn every staged batch (the ``limit`` oldest) into ``requests`` rows (consecutive ids, in a random
        order), oldest first, one transaction each; return how many were expanded. Only the worker calls this,
        before it settles or claims, so a batch's requests have rows before anything reads them."""
        with self.conn() as db:
            staged = db.execute("SELECT seq, n_requests FROM batches WHERE seq IN (SELECT batch FROM batch_inputs)"
                                " ORDER BY seq LIMIT ?", (-1 if limit is None else limit,)).fetchall()
        done = 0
        for seq, n in staged:
            try:
                self._expand(seq, n)
            except Exception:
                # SQLite read the body otherwise than orjson did, or not at all (its JSON nesting limit is
                # lower than orjson's): expand it request by request in Python, which gets through any body
                # the create accepted.
                log.exception("expanding batch %d in SQL failed; expanding it request by request", seq)
                try:
                    self._expand_each(seq, n)
                except (FileNotFoundError, ValueError, msgspec.DecodeError, _ExpandMismatch) as exc:
                    self._lose(seq, n, exc)  # its body is gone or damaged for good: the queue must go on
            done += 1
        return done

    def _lose(self, seq: int, n: int, why: Exception) -> None:
        """End a staged batch whose body is gone or cannot be read at all (its folder damaged): its requests
        count as expired, with no result lines, so that it never holds up the others. (Any other error, such
        as a read that may pass, is raised: the worker's next step tries again.)"""
        log.error("batch %d: its %d stored requests cannot be read (%s); the batch ends, all expired", seq, n, why)
        with self.transaction() as db:
            batch_id = db.execute("UPDATE batches SET first_request = 1, last_request = 0, expired = n_requests"
                                  " WHERE seq = ? RETURNING id", (seq,)).fetchone()[0]
            db.execute("DELETE FROM batch_inputs WHERE batch = ?", (seq,))
            self._end_finished(db, {seq}, now_us())
        self._input_path(batch_id).unlink(missing_ok=True)

    def _expand_each(self, seq: int, n: int) -> None:
        """:meth:`_expand` in Python: the same rows, in a random order; a request whose params cannot be
        written back as JSON (nested deeper than the encoder goes) is stored as :data:`UNSTORABLE`, which the
        worker answers as that request's own error, so that it never holds up the others."""
        with self.transaction() as db:
            beta, body, batch_id = self._staged(db, seq)
            items = _staged_items(body, beta)
            if len(items) != n:
                raise _ExpandMismatch(f"batch {seq}: the stored body holds {len(items)} requests, not {n}")
            (first,) = db.execute("SELECT coalesce(max(id), 0) + 1 FROM requests").fetchone()
            order = random.sample(range(n), n)
            db.executemany("INSERT INTO requests (id, batch, custom_id, params, shuffle) VALUES (?, ?, ?, ?, 0)",
                           ((first + order[k], seq, cid, params) for k, (cid, params) in enumerate(items)))
            db.execute("UPDATE batches SET first_request = ?, last_request = ? WHERE seq = ?",
                       (first, first + n - 1, seq))
            db.execute("DELETE FROM batch_inputs WHERE batch = ?", (seq,))
        self._input_path(batch_id).unlink(missing_ok=True)  # after the commit: a crash before it keeps the body

    def _expand(self, seq: int, n: int) -> None:
        perm = "".join(map("{:06d}".format, random.sample(range(n), n))).encode()  # n <= MAX_REQUESTS < 10**6
        with self.transaction() as db:
            beta, body, batch_id = self._staged(db, seq)
            (first,) = db.execute("SELECT coalesce(max(id), 0) + 1 FROM requests").fetchone()
            values = {"first": first, "perm": perm, "seq": seq, "beta": beta, "body": body}
            if db.execute(_EXPAND, values).rowcount != n:
                raise _ExpandMismatch(f"batch {seq}: the stored body does not hold {n} requests")
            db.execute("UPDATE batches SET first_request = ?, last_request = ? WHERE seq = ?",
                       (first, first + n - 1, seq))
            db.execute("DELETE FROM batch_inputs WHERE batch = ?", (seq,))
        self._input_path(batch_id).unlink(missing_ok=True)

    def get_batch(self, batch_id: str) -> dict[str, Any] | None:
        with self.conn() as db:
            db.row_factory = sqlite3.Row
            try:
                row = db.execute("SELECT * FROM batches WHERE id = ?", (batch_id,)).fetchone()
            finally:
                db.row_factory = None
        return dict(row) if row else None

    def list_batches(self, *, before_id: str | None, after_id: str | None,
                     limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Batches newest first between the cursors; (page, has_more in the paging direction)."""
        where, args = ["id GLOB 'msgbatch_*'"], []  # Message Batches only: OpenAI batches have rows here too
        if after_id is not None:
            where.append("id < ?")
            args.append(after_id)
        if before_id is not None:
            where.append("id > ?")
            args.append(before_id)
        clause = f"WHERE {' AND '.join(where)}"
        # Paging backwards (before_id alone) walks up from the cursor, then the page is flipped.
        order = "ASC" if before_id is not None and after_id is None else "DESC"
        with self.conn() as db:
            db.row_factory = sqlite3.Row
            try:
                rows = db.execute(f"SELECT * FROM batches {clause} ORDER BY id {order} LIMIT ?",
                                  (*args, limit + 1)).fetchall()
            finally:
                db.row_factory = None
        page = [dict(r) for r in rows[:limit]]
        if order == "ASC":
            page.reverse()
        return page, len(rows) > limit

    def set_canceling(self, batch_id: str, now_us: int) -> dict[str, Any] | None:
        """Mark an in-progress batch canceling and return its row as updated; None if not in progress."""
        with self.transaction() as db:
            db.row_factory = sqlite3.Row
            try:
                rows = db.execute("UPDATE batches SET processing_status = 'canceling', cancel_us = ?"
                                  " WHERE id = ? AND processing_status = 'in_progress' RETURNING *",
                                  (now_us, batch_id)).fetchall()  # all: the statement must finish first
            finally:
                db.row_factory = None
        return dict(rows[0]) if rows else None

    def delete_batch(self, row: dict[str, Any]) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM requests WHERE id BETWEEN ? AND ?", (row["first_request"], row["last_request"]))
            db.execute("DELETE FROM batch_inputs WHERE batch = ?", (row["seq"],))
            db.execute("DELETE FROM batches WHERE seq = ?", (row["seq"],))
        self.sealed.delete(row["id"])  # after the commit: a stream already open keeps reading its file
        self._input_path(row["id"]).unlink(missing_ok=True)

    def result_pages(self, row: dict[str, Any], *, page_rows: int = 2000) -> Iterator[bytes]:
        """The result lines of a batch (stored shuffled: read by id), ``page_rows`` lines per chunk.

        Each page is its own short query on an id range (:meth:`result_page`), so no cursor or connection is
        held between chunks, whichever thread pulls the next one.
        """
        return (self.result_page(page) for page in self.result_ranges(row, page_rows=page_rows))

    @staticmethod
    def result_ranges(row: dict[str, Any], *, page_rows: int = 2000) -> Iterator[tuple[int, int]]:
        """The id ranges of a batch's result pages, in order (see :meth:`result_page`)."""
        start, end = row["first_request"], row["last_request"]
        while start <= end:
            stop = min(end, start + page_rows - 1)
            yield start, stop
            start = stop + 1

    def result_page(self, ids: tuple[int, int]) -> bytes:
        """The result lines of an id range, in id order. SQLite joins them itself: one bytes object per page,
        not one per line, which is what the stream's speed depends on."""
        with self.conn() as db:
            (page,) = db.execute(_RESULT_PAGE, ids).fetchone()
        return page or b""

    # -- the worker's side -------------------------------------------------------------------------------
    def claim(self, limit: int) -> list[tuple[int, int, str, bytes]]:
        """The oldest pending requests of in-progress batches: (id, batch seq, custom_id, params)."""
        with self.conn() as db:
            return db.execute(
                # The pending partial index walks only unfinished rows, already in FIFO order (the
                # planner may otherwise pick another plan and sort on every claim).
                "SELECT id, batch, custom_id, params FROM requests INDEXED BY requests_pending"
                " WHERE line IS NULL"
                " AND batch IN (SELECT seq FROM batches WHERE processing_status = 'in_progress')"
                " ORDER BY id LIMIT ?", (limit,)).fetchall()

    def write_results(self, results: Iterable[tuple[int, int, str, bytes]], now_us: int) -> None:
        """Store finished lines (id, batch seq, result type, line), bump counters, end finished batches."""
        results = list(results)
        counts = Counter((seq, kind) for _, seq, kind, _ in results)
        with self.transaction() as db:
            db.executemany("UPDATE requests SET result_type = ?, line = ? WHERE id = ? AND line IS NULL",
                           ((kind, line, rid) for rid, _, kind, line in results))
            for (seq, kind), n in counts.items():
                db.execute(f"UPDATE batches SET {kind} = {kind} + ? WHERE seq = ?", (n, seq))
            self._end_finished(db, {seq for seq, _ in counts}, now_us)

    def _end_finished(self, db: sqlite3.Connection, seqs: set[int], now_us: int) -> None:
        """End the batches of ``seqs`` whose requests have all finished; seal a Message Batch's results
        before the caller commits (``sealed.py``)."""
        for seq in seqs:
            ended = db.execute(
                "UPDATE batches SET processing_status = 'ended', ended_us = ? WHERE seq = ?"
                " AND processing_status != 'ended' AND succeeded + errored + canceled + expired = n_requests"
                " RETURNING id, first_request, last_request", (now_us, seq)).fetchall()
            # An OpenAI batch's rows live here too; its results become files of its own (openai_work.py).
            if ended and ended[0][0].startswith("msgbatch_"):
                batch_id, first, last = ended[0]
                ranges = self.result_ranges({"first_request": first, "last_request": last}, page_rows=8000)
                self.sealed.write(batch_id, (db.execute(_RESULT_PAGE, ids).fetchone()[0] or b""
                                             for ids in ranges))

    def settle(self, now_us: int) -> int:
        """End canceling batches (pending -> canceled) and expired ones (pending -> expired).

        Only the worker calls this, between chunks, so no request of these batches is in flight.
        Returns the number of batches ended.
        """
        with self.conn() as db:
            due = db.execute(
                "SELECT seq, processing_status, first_request, last_request FROM batches"
                " WHERE processing_status = 'canceling'"
                " OR (processing_status = 'in_progress' AND expires_us <= ?)", (now_us,)).fetchall()
        for seq, status, first, last in due:
            kind = "canceled" if status == "canceling" else "expired"
            with self.transaction() as db:
                n = db.execute(f"UPDATE requests SET result_type = '{kind}', line = {_CANCELED_LINE % kind}"
                               " WHERE id BETWEEN ? AND ? AND line IS NULL", (first, last)).rowcount
                db.execute(f"UPDATE batches SET {kind} = {kind} + ? WHERE seq = ?", (n, seq))
                self._end_finished(db, {seq}, now_us)
        return len(due)

    def next_expiry(self) -> int | None:
        """Earliest expires_us of a batch still in progress."""
        with self.conn() as db:
            (us,) = db.execute("SELECT min(expires_us) FROM batches WHERE processing_status = 'in_progress'"
                               ).fetchone()
        return us

    def has_pending(self) -> bool:
        with self.conn() as db:
            return db.execute("SELECT 1 FROM batches WHERE processing_status != 'ended' LIMIT 1").fetchone() \
                is not None
