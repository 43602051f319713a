"""OpenAI batches survive a killed service like Anthropic ones; a data dir from before the OpenAI tables
still opens, keeps its batches, and gains the OpenAI API."""

from __future__ import annotations

import os
import signal
import sqlite3
import time

import httpx
from openai_helpers import chat_line, make_client, read_lines, submit, wait_done, wait_until
from server_helpers import HEADERS, result_lines

from batchframe.server import spawn
from batchframe.server.migrations import MIGRATIONS


def test_sigkill_mid_batch_then_restart_finishes_every_request(tmp_path):
    data_dir = tmp_path / "svc"
    ids = [f"r{i:02d}" for i in range(60)]
    first = spawn(data_dir=data_dir, engine_options={"latency": 0.2}, workers=4)  # 3 s for the batch
    try:
        with make_client(first.base_url) as client:
            batch = submit(client, [chat_line(i, f"text {i}") for i in ids], metadata={"run": "1"})
            mid = wait_until(client, batch.id, lambda b: b.request_counts.completed >= 8)
        os.kill(first.pid, signal.SIGKILL)
    finally:
        first.stop()
    assert mid.status == "in_progress" and mid.request_counts.completed < 60

    second = spawn(data_dir=data_dir, engine_options={"latency": 0.01})
    try:
        with make_client(second.base_url) as client:
            done = wait_done(client, batch.id)
            lines = read_lines(client, done.output_file_id)
    finally:
        second.stop()
    assert done.status == "completed" and done.metadata == {"run": "1"} and done.error_file_id is None
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (60, 60, 0)
    assert sorted(line["custom_id"] for line in lines) == ids  # each once: none lost, none twice
    assert all(line["response"]["body"]["choices"][0]["message"]["content"] == f"text {line['custom_id']}"
               for line in lines)


def _old_data_dir(path) -> str:
    """A data dir as the service left it before 0004: one ended Message Batch with one result line."""
    path.mkdir()
    db = sqlite3.connect(path / "batches.sqlite3", isolation_level=None)
    db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for name, sql in MIGRATIONS[:3]:
        for statement in filter(str.strip, sql.split(";")):
            db.execute(statement)
        db.execute("INSERT INTO _migrations VALUES (?, datetime('now'))", (name,))
    now = time.time_ns() // 1000
    batch = "msgbatch_0000000001aaaaaaaaaaaaaa"
    db.execute("INSERT INTO batches (seq, id, processing_status, n_requests, succeeded, created_us, expires_us,"
               " ended_us, first_request, last_request) VALUES (1, ?, 'ended', 1, 1, ?, ?, ?, 1, 1)",
               (batch, now, now + 86400 * 10**6, now))
    line = b'{"custom_id":"old","result":{"type":"succeeded","message":{"id":"msg_1"}}}\n'
    db.execute("INSERT INTO requests VALUES (1, 1, 'old', X'7B7D', 0, 'succeeded', ?)", (line,))
    db.close()
    return batch


def test_a_data_dir_from_before_the_openai_tables_keeps_its_batches(tmp_path, service_factory):
    data_dir = tmp_path / "old"
    batch = _old_data_dir(data_dir)
    service = service_factory(data_dir=data_dir)
    with httpx.Client(base_url=service.base_url, headers=HEADERS) as http:
        assert http.get(f"/v1/messages/batches/{batch}").json()["request_counts"]["succeeded"] == 1
        assert [line["custom_id"] for line in result_lines(http, batch)] == ["old"]
    with make_client(service.base_url) as client:
        done = wait_done(client, submit(client, [chat_line("new")]).id)
        assert [line["custom_id"] for line in read_lines(client, done.output_file_id)] == ["new"]
    with sqlite3.connect(data_dir / "batches.sqlite3") as db:
        names = [name for (name,) in db.execute("SELECT name FROM _migrations ORDER BY name")]
    assert names == [name for name, _ in MIGRATIONS]
