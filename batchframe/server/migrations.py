"""Schema of the service's SQLite store, as named, append-only steps.

Never edit a step once released: add a new one. :func:`migrate` applies the missing steps in order, each
in its own transaction, and records it in ``_migrations``.

- ``batches``: one row per batch; ``seq`` orders the queue, the request counters move as results land.
- ``requests``: one row per request. ``params`` is the request's JSON; ``line`` is its finished result line,
  ready-to-send JSONL bytes (NULL while pending, which is what the ``requests_pending`` partial index
  covers, in FIFO order across batches).
- Since 0003, a batch's requests are the contiguous id range ``first_request..last_request`` (one insert
  transaction), stored in a random order: results stream by id, sequentially, and still come out
  shuffled, so clients that assume order break in tests rather than in production. (0002's ``shuffle``
  key and its index served the same purpose with random reads; the column stays, unused.)
- Since 0004, the OpenAI Files and Batches API (``openai_store.py``): ``openai_files`` holds each file's
  metadata (its bytes live in ``files/<id>`` beside the database; ``deleted_at`` keeps a deleted file's
  row so a list cursor naming it still works); ``openai_batches`` holds what an OpenAI batch adds to its
  ``batches`` row (``batch``: that row's ``seq``, NULL when the input file failed validation), written
  in the same transaction as the row and its requests.
- Since 0005, a created Message Batch is stored whole: ``batch_inputs`` holds its requests as one JSON
  array (in the stored, shuffled order; ``beta`` marks a beta call) until the worker expands it into
  ``requests`` rows (``Store.expand``) and deletes it, so the create does no per-request SQL. (An ended
  Message Batch's result stream is then sealed into ``results/<id>.jsonl`` beside the database,
  ``sealed.py``; a batch that ended before 0005 has no such file and streams from ``requests.line``.)
  Later, with no new step: a created batch's body is written to ``inputs/<id>.json`` beside the
  database and its ``batch_inputs.requests`` left empty (``Store.write_input``, ``Store.commit_batch``);
  a non-empty one is a blob an earlier version stored, expanded as before.
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: tuple[tuple[str, str], ...] = (
    ("0001_batches", """
        CREATE TABLE batches (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            processing_status TEXT NOT NULL,
            n_requests INTEGER NOT NULL,
            succeeded INTEGER NOT NULL DEFAULT 0,
            errored INTEGER NOT NULL DEFAULT 0,
            canceled INTEGER NOT NULL DEFAULT 0,
            expired INTEGER NOT NULL DEFAULT 0,
            created_us INTEGER NOT NULL,
            expires_us INTEGER NOT NULL,
            ended_us INTEGER,
            cancel_us INTEGER
        );
        CREATE INDEX batches_open ON batches(processing_status) WHERE processing_status != 'ended';
    """),
    ("0002_requests", """
        CREATE TABLE requests (
            id INTEGER PRIMARY KEY,
            batch INTEGER NOT NULL,
            custom_id TEXT NOT NULL,
            params BLOB NOT NULL,
            shuffle INTEGER NOT NULL,
            result_type TEXT,
            line BLOB
        );
        CREATE INDEX requests_by_batch ON requests(batch, shuffle);
        CREATE INDEX requests_pending ON requests(id) WHERE line IS NULL;
    """),
    ("0003_batch_request_range", """
        ALTER TABLE batches ADD COLUMN first_request INTEGER;
        ALTER TABLE batches ADD COLUMN last_request INTEGER;
        UPDATE batches SET
            first_request = (SELECT min(id) FROM requests WHERE requests.batch = batches.seq),
            last_request = (SELECT max(id) FROM requests WHERE requests.batch = batches.seq);
        DROP INDEX requests_by_batch;
    """),
    ("0004_openai_files_batches", """
        CREATE TABLE openai_files (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            filename TEXT NOT NULL,
            purpose TEXT NOT NULL,
            bytes INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            expires_at INTEGER,
            deleted_at INTEGER
        );
        CREATE TABLE openai_batches (
            id TEXT PRIMARY KEY,
            batch INTEGER UNIQUE,
            status TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            input_file_id TEXT NOT NULL,
            completion_window TEXT NOT NULL,
            model TEXT,
            metadata BLOB,
            errors BLOB,
            output_expires_after INTEGER,
            output_file_id TEXT,
            error_file_id TEXT,
            created_at INTEGER NOT NULL,
            in_progress_at INTEGER,
            expires_at INTEGER,
            finalizing_at INTEGER,
            completed_at INTEGER,
            failed_at INTEGER,
            expired_at INTEGER,
            cancelling_at INTEGER,
            cancelled_at INTEGER,
            usage BLOB
        );
        CREATE INDEX openai_batches_open ON openai_batches(status)
            WHERE status IN ('validating', 'in_progress', 'cancelling', 'finalizing');
    """),
    ("0005_batch_inputs", """
        CREATE TABLE batch_inputs (
            batch INTEGER PRIMARY KEY,
            beta INTEGER NOT NULL,
            requests BLOB NOT NULL
        );
    """),
)


def migrate(db: sqlite3.Connection) -> list[str]:
    """Apply the missing steps; return their names.

    Examples
    --------
    >>> import sqlite3
    >>> db = sqlite3.connect(":memory:", isolation_level=None)
    >>> migrate(db)
    ['0001_batches', '0002_requests', '0003_batch_request_range', '0004_openai_files_batches', '0005_batch_inputs']
    >>> migrate(db)
    []
    """
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    done = {name for (name,) in db.execute("SELECT name FROM _migrations")}
    applied = []
    for name, sql in MIGRATIONS:
        if name in done:
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            if db.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone():
                db.execute("ROLLBACK")  # another process applied it meanwhile
                continue
            for statement in filter(str.strip, sql.split(";")):
                db.execute(statement)
            db.execute("INSERT INTO _migrations VALUES (?, datetime('now'))", (name,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied
