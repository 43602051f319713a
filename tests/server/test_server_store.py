"""The SQLite store: named append-only migrations, and a data dir that only one service may hold."""

from __future__ import annotations

import sqlite3

import pytest

from batchframe.server import serve_in_thread
from batchframe.server.errors import ServiceError
from batchframe.server.migrations import MIGRATIONS, migrate
from batchframe.server.store import Store


def test_migrations_are_named_recorded_and_resume_where_they_stopped(tmp_path):
    path = tmp_path / "batches.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    name, sql = MIGRATIONS[0]
    for statement in filter(str.strip, sql.split(";")):
        db.execute(statement)
    db.execute("INSERT INTO _migrations VALUES (?, datetime('now'))", (name,))  # an older version's database
    assert migrate(db) == [n for n, _ in MIGRATIONS[1:]]
    assert migrate(db) == []
    recorded = [r[0] for r in db.execute("SELECT name FROM _migrations ORDER BY name")]
    assert recorded == [n for n, _ in MIGRATIONS]
    db.close()
    store = Store(tmp_path)  # opening again applies nothing and keeps working
    assert store.get_batch("msgbatch_x") is None
    store.close()


def test_one_service_per_data_dir(tmp_path):
    with serve_in_thread(data_dir=tmp_path):
        with pytest.raises(ServiceError, match="already runs on"):
            serve_in_thread(data_dir=tmp_path)
    with serve_in_thread(data_dir=tmp_path) as again:  # released at stop
        assert again.base_url.startswith("http://127.0.0.1:")


def test_a_batch_stored_before_0003_still_streams_its_results(tmp_path):
    db = sqlite3.connect(tmp_path / "batches.sqlite3", isolation_level=None)
    db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for name, sql in MIGRATIONS[:2]:
        for statement in filter(str.strip, sql.split(";")):
            db.execute(statement)
        db.execute("INSERT INTO _migrations VALUES (?, datetime('now'))", (name,))
    db.execute("INSERT INTO batches (seq, id, processing_status, n_requests, succeeded, created_us, expires_us)"
               " VALUES (1, 'msgbatch_old', 'ended', 2, 2, 0, 1)")
    db.executemany("INSERT INTO requests (batch, custom_id, params, shuffle, result_type, line)"
                   " VALUES (1, ?, x'7b7d', 0, 'succeeded', ?)", [("a", b"line-a\n"), ("b", b"line-b\n")])
    db.close()
    store = Store(tmp_path)
    row = store.get_batch("msgbatch_old")
    assert (row["first_request"], row["last_request"]) == (1, 2)
    assert b"".join(store.result_pages(row)) == b"line-a\nline-b\n"
    store.close()
