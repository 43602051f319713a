"""The two ends of a Message Batch as blobs: a create stored whole (``batch_inputs``, expanded by the worker)
and the results sealed into one file when the batch ends (``sealed.py``); none of it timed."""

from __future__ import annotations

import sqlite3
import sys
import time

import httpx
import orjson
import pytest
from server_helpers import HEADERS, create, request, wait_ended_http

from batchframe.server import serve_in_thread
from batchframe.server.intake import _all_valid, accept_create, parse_create, stored_body
from batchframe.server.migrations import MIGRATIONS
from batchframe.server.store import Store
from batchframe.server.validation import BETA_KEY, params_keys


def _results(http: httpx.Client, batch_id: str) -> httpx.Response:
    response = http.get(f"/v1/messages/batches/{batch_id}/results")
    assert response.status_code == 200, response.text
    return response


def _joined_lines(data_dir, batch_id: str) -> bytes:
    """The batch's lines joined from ``requests.line``: the stream as served before results were sealed."""
    store = Store(data_dir)
    try:
        return b"".join(store.result_pages(store.get_batch(batch_id)))
    finally:
        store.close()


def test_sealed_results_are_the_joined_lines_and_survive_a_restart_byte_for_byte(tmp_path):
    items = [request(f"r{i:02d}", f"text {i}") for i in range(30)]
    items.append(request("bad", model="no-such-model"))  # an errored line among the succeeded ones
    with serve_in_thread(data_dir=tmp_path) as svc, httpx.Client(base_url=svc.base_url, headers=HEADERS) as http:
        batch_id = create(http, items)["id"]
        assert wait_ended_http(http, batch_id)["request_counts"]["errored"] == 1
        first = _results(http, batch_id)
    assert first.headers["content-length"] == str(len(first.content))
    assert (tmp_path / "results" / f"{batch_id}.jsonl").read_bytes() == first.content
    assert _joined_lines(tmp_path, batch_id) == first.content
    lines = [orjson.loads(line) for line in first.content.splitlines()]
    assert sorted(line["custom_id"] for line in lines) == sorted(item["custom_id"] for item in items)
    with serve_in_thread(data_dir=tmp_path) as svc, httpx.Client(base_url=svc.base_url, headers=HEADERS) as http:
        assert _results(http, batch_id).content == first.content


def test_a_canceled_batch_has_complete_sealed_results(tmp_path):
    items = [request(f"r{i:02d}") for i in range(40)]
    with serve_in_thread(data_dir=tmp_path, engine_options={"latency": 0.05}, workers=2) as svc, \
            httpx.Client(base_url=svc.base_url, headers=HEADERS) as http:
        batch_id = create(http, items)["id"]
        deadline = time.monotonic() + 20
        while http.get(f"/v1/messages/batches/{batch_id}").json()["request_counts"]["succeeded"] < 4:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert http.post(f"/v1/messages/batches/{batch_id}/cancel").status_code == 200
        counts = wait_ended_http(http, batch_id)["request_counts"]
        data = _results(http, batch_id).content
    kinds = [orjson.loads(line)["result"]["type"] for line in data.splitlines()]
    assert len(kinds) == 40 and counts["canceled"] > 0
    assert kinds.count("canceled") == counts["canceled"] and kinds.count("succeeded") == counts["succeeded"]
    assert _joined_lines(tmp_path, batch_id) == data


def test_a_batch_ended_before_0005_streams_its_lines_from_the_requests(tmp_path):
    db = sqlite3.connect(tmp_path / "batches.sqlite3", isolation_level=None)
    db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for name, sql in MIGRATIONS[:4]:
        for statement in filter(str.strip, sql.split(";")):
            db.execute(statement)
        db.execute("INSERT INTO _migrations VALUES (?, datetime('now'))", (name,))
    now_us = time.time_ns() // 1000
    db.execute("INSERT INTO batches (seq, id, processing_status, n_requests, succeeded, created_us, expires_us,"
               " ended_us, first_request, last_request) VALUES (1, 'msgbatch_old', 'ended', 2, 2, ?, ?, ?, 1, 2)",
               (now_us, now_us + 1, now_us))
    db.executemany("INSERT INTO requests (id, batch, custom_id, params, shuffle, result_type, line)"
                   " VALUES (?, 1, ?, x'7b7d', 0, 'succeeded', ?)",
                   [(1, "a", b'{"custom_id":"a"}\n'), (2, "b", b'{"custom_id":"b"}\n')])
    db.close()
    with serve_in_thread(data_dir=tmp_path) as svc, httpx.Client(base_url=svc.base_url, headers=HEADERS) as http:
        old = _results(http, "msgbatch_old")
    assert old.content == b'{"custom_id":"a"}\n{"custom_id":"b"}\n'
    assert "content-length" not in old.headers  # joined page by page: its size is not known up front
    assert not (tmp_path / "results").exists()


def test_a_created_batch_not_yet_expanded_survives_a_restart(tmp_path):
    body = orjson.dumps({"requests": [request(f"r{i}") for i in range(5)]})
    store = Store(tmp_path)  # what a create commits, before the worker (killed here) expands it
    store.stage_batch("msgbatch_staged", time.time_ns() // 1000, time.time_ns() // 1000 + 10**9, 5,
                      stored_body(body, parse_create(body)))
    store.close()
    stray = tmp_path / "inputs" / "msgbatch_killed.json"  # a create killed before its row committed
    stray.write_bytes(body)
    pending = tmp_path / "inputs" / "pending-0123abcd.json"  # ... or before its body was named
    pending.write_bytes(body)
    with serve_in_thread(data_dir=tmp_path) as svc, httpx.Client(base_url=svc.base_url, headers=HEADERS) as http:
        assert not stray.exists() and not pending.exists()
        assert wait_ended_http(http, "msgbatch_staged")["request_counts"]["succeeded"] == 5
        lines = [orjson.loads(line) for line in _results(http, "msgbatch_staged").content.splitlines()]
        assert "msgbatch_killed" not in str(http.get("/v1/messages/batches").json())
    assert sorted(line["custom_id"] for line in lines) == [f"r{i}" for i in range(5)]
    assert list((tmp_path / "inputs").iterdir()) == []  # the staged body went once expanded


def test_a_created_body_waits_in_a_file_until_expanded_and_an_older_stores_blob_still_expands(tmp_path):
    store = Store(tmp_path)
    body = orjson.dumps({"requests": [request(f"f{i}") for i in range(3)]})
    store.stage_batch("msgbatch_file", 0, 10**15, 3, body, beta=True)
    assert (tmp_path / "inputs" / "msgbatch_file.json").read_bytes() == body
    # A row an earlier version staged: the body as a blob in batch_inputs itself.
    old = orjson.dumps({"requests": [request(f"b{i}") for i in range(2)]})
    with store.transaction() as db:
        seq = db.execute("INSERT INTO batches (id, processing_status, n_requests, created_us, expires_us)"
                         " VALUES ('msgbatch_blob', 'in_progress', 2, 0, ?)", (10**15,)).lastrowid
        db.execute("INSERT INTO batch_inputs (batch, beta, requests) VALUES (?, 0, ?)", (seq, old))
    assert store.expand() == 2
    assert not (tmp_path / "inputs" / "msgbatch_file.json").exists()  # expanded: the file goes
    with store.conn() as db:
        rows = db.execute("SELECT b.id, r.custom_id, r.params FROM requests r JOIN batches b ON b.seq = r.batch"
                          " ORDER BY r.custom_id").fetchall()
        assert db.execute("SELECT count(*) FROM batch_inputs").fetchone() == (0,)
    assert [(batch, cid) for batch, cid, _ in rows] == [("msgbatch_blob", "b0"), ("msgbatch_blob", "b1"),
                                                        ("msgbatch_file", "f0"), ("msgbatch_file", "f1"),
                                                        ("msgbatch_file", "f2")]
    marks = [orjson.loads(params).get(BETA_KEY) for _, _, params in rows]
    assert marks == [None, None, True, True, True]  # the beta call's requests carry the mark
    store.close()


def test_a_staged_body_lost_ends_its_batch_as_expired_and_the_next_one_still_expands(tmp_path, caplog):
    store = Store(tmp_path)
    for k in range(2):
        body = orjson.dumps({"requests": [request(f"b{k}-{i}") for i in range(3)]})
        store.stage_batch(f"msgbatch_{k}", 0, 10**15, 3, body)
    (tmp_path / "inputs" / "msgbatch_0.json").unlink()  # as a damaged or half-copied data folder may be
    assert store.expand() == 2
    lost, kept = store.get_batch("msgbatch_0"), store.get_batch("msgbatch_1")
    assert (lost["processing_status"], lost["expired"], lost["n_requests"]) == ("ended", 3, 3)
    assert b"".join(store.sealed.chunks("msgbatch_0")) == b""  # no line claims a request it cannot name
    assert kept["processing_status"] == "in_progress" and kept["last_request"] - kept["first_request"] == 2
    assert "cannot be read" in caplog.text
    store.close()


def test_a_refused_create_leaves_no_body_behind_and_the_next_one_is_stored(tmp_path):
    # A create body is written to its file while it is validated: refused, the file goes with it.
    good = [request(f"r{i:05d}", "x" * 200) for i in range(6_000)]  # over 1 MB: the large-create path
    bad = [*good[:-1], request("bad id", "x")]
    with serve_in_thread(data_dir=tmp_path) as svc, httpx.Client(base_url=svc.base_url, headers=HEADERS,
                                                                  timeout=60) as http:
        for items in (bad, bad[-3:]):
            response = http.post("/v1/messages/batches", content=orjson.dumps({"requests": items}),
                                 headers={"content-type": "application/json"})
            assert response.status_code == 400 and "custom_id" in response.text
        assert list((tmp_path / "inputs").glob("*")) == []
        assert http.get("/v1/messages/batches").json()["data"] == []
        batch_id = create(http, good)["id"]
        assert wait_ended_http(http, batch_id)["request_counts"]["succeeded"] == 6_000
        lines = [orjson.loads(line) for line in _results(http, batch_id).content.splitlines()]
    assert sorted(line["custom_id"] for line in lines) == [item["custom_id"] for item in good]
    assert list((tmp_path / "inputs").glob("*")) == []  # expanded: its body went


def test_a_body_sqlite_would_read_otherwise_is_stored_as_validated(http):
    # Duplicate keys: the last one counts (as the create's checks read it); an escaped key is the same key.
    params = orjson.dumps(request("x", "hi")["params"])
    body = (b'{"requests": [{"custom_id": "first", "custom_id": "b", "params": ' + params + b'},'
            b' {"custom\\u005fid": "c", "params": ' + params + b'}]}')
    assert stored_body(body, parse_create(body)) != body
    response = http.post("/v1/messages/batches", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    batch_id = response.json()["id"]
    assert wait_ended_http(http, batch_id)["request_counts"]["succeeded"] == 2
    lines = [orjson.loads(line) for line in _results(http, batch_id).content.splitlines()]
    assert sorted(line["custom_id"] for line in lines) == ["b", "c"]


@pytest.mark.parametrize("duplicated", [b'"custom_id": "first", "custom_id": "last"', b'"custom_id": "last",'
                                        b' "params": {"model": "other"}, "params": PARAMS'])
def test_a_body_with_duplicate_keys_alone_is_expanded_as_validated(http, duplicated):
    # SQLite's JSON functions take the first of duplicate keys (orjson, and the checks, the last), and read it
    # without complaint: only the body stored re-serialised gives the last.
    params = orjson.dumps(request("x", "hi")["params"])
    body = b'{"requests": [{' + duplicated.replace(b"PARAMS", params) + (b"}" if b"params" in duplicated
                                                                          else b', "params": ' + params + b"}") + b"]}"
    assert stored_body(body, parse_create(body)) != body
    response = http.post("/v1/messages/batches", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    batch_id = response.json()["id"]
    assert wait_ended_http(http, batch_id)["request_counts"]["succeeded"] == 1
    [line] = [orjson.loads(line) for line in _results(http, batch_id).content.splitlines()]
    assert line["custom_id"] == "last" and line["result"]["type"] == "succeeded"  # the first params: no messages


def test_deleting_a_batch_removes_its_sealed_results(tmp_path):
    with serve_in_thread(data_dir=tmp_path) as svc, httpx.Client(base_url=svc.base_url, headers=HEADERS) as http:
        batch_id = create(http, [request("a")])["id"]
        wait_ended_http(http, batch_id)
        sealed = tmp_path / "results" / f"{batch_id}.jsonl"
        assert sealed.exists()
        assert http.delete(f"/v1/messages/batches/{batch_id}").status_code == 200
        assert not sealed.exists()


@pytest.mark.parametrize("items", [
    [{"custom_id": "a", "params": {}}, "not an item"],
    [{"custom_id": "a"}],
    [{"custom_id": "a", "params": {}, "extra": 1}],
    [{"custom_id": 1, "params": {}}],
    [{"custom_id": "", "params": {}}],
    [{"custom_id": "a" * 65, "params": {}}],
    [{"custom_id": "a.b", "params": {}}],
    [{"custom_id": "a", "params": []}],
    [{"custom_id": "a", "params": {"no_such_field": 1}}],
    [{"custom_id": "a", "params": {}}, {"custom_id": "a", "params": {}}],
])
def test_the_column_checks_refuse_what_the_item_walk_refuses(items):
    assert not _all_valid(items, params_keys(beta=False))
    with pytest.raises(Exception, match="requests") as walked:
        parse_create(orjson.dumps({"requests": items}))
    with pytest.raises(Exception, match="requests") as typed:  # the typed read refuses it, worded alike
        accept_create(orjson.dumps({"requests": items}))
    assert str(typed.value) == str(walked.value)
    good = [{"custom_id": "a-B_9", "params": {"model": "m"}}, {"custom_id": "b" * 64, "params": {}}]
    assert _all_valid(good, params_keys(beta=False))


def test_openai_file_downloads_say_their_size(service):
    from openai_helpers import chat_line, make_client, submit, wait_done

    client = make_client(service.base_url)
    try:
        batch = wait_done(client, submit(client, [chat_line("a"), chat_line("b")]).id)
    finally:
        client.close()
    with httpx.Client(base_url=service.base_url, headers={"authorization": "Bearer test-key"}) as http:
        output = http.get(f"/v1/files/{batch.output_file_id}/content")
    assert output.status_code == 200 and output.content.count(b"\n") == 2
    assert output.headers["content-length"] == str(len(output.content))


def test_expansion_stores_each_params_as_the_create_used_to(tmp_path):
    # Before staging, the create stored orjson.dumps(params) per request (BETA_KEY last on a beta call).
    tricky = {"model": "m", "max_tokens": 7, "temperature": 1.5e300, "stop_sequences": ["é\u0001\"\\/"],
              "messages": [{"role": "user", "content": [{"type": "text", "text": "x", "cache_control": None}]}]}
    items = [{"custom_id": f"r{i}", "params": {**tricky, "metadata": {"user_id": str(i)}}} for i in range(50)]
    store = Store(tmp_path)
    try:
        for batch_id, beta in (("msgbatch_plain", False), ("msgbatch_beta", True)):
            body = orjson.dumps({"requests": items})
            store.stage_batch(batch_id, 0, 10**15, len(items), stored_body(body, parse_create(body)), beta=beta)
        assert store.expand() == 2 and store.expand() == 0
        with store.conn() as db:
            rows = db.execute("SELECT b.id, r.id, r.custom_id, r.params FROM requests r"
                              " JOIN batches b ON b.seq = r.batch ORDER BY r.id").fetchall()
    finally:
        store.close()
    assert [r[1] for r in rows] == list(range(1, 101))  # consecutive ids, batch after batch
    by_id = {(batch, cid): params for batch, _, cid, params in rows}
    for item in items:
        assert by_id["msgbatch_plain", item["custom_id"]] == orjson.dumps(item["params"])
        beta_params = {**item["params"], "__batchframe_beta__": True}
        assert by_id["msgbatch_beta", item["custom_id"]] == orjson.dumps(beta_params)
    order = [cid for batch, _, cid, _ in rows if batch == "msgbatch_plain"]
    assert sorted(order) == sorted(item["custom_id"] for item in items) and order != sorted(order)  # shuffled


def test_a_body_sqlite_cannot_expand_is_expanded_request_by_request_and_a_too_deep_one_errs_alone(tmp_path,
                                                                                                 monkeypatch):
    # SQLite >= 3.42 reads JSON nested at most 1000 deep, orjson up to 1024: a body the create accepted can fail
    # the SQL expansion. Here the SQL always fails; the Python expansion stores every request, and the one
    # nested deeper than orjson writes back errs on its own while the others succeed.
    import batchframe.server.store as store_module

    monkeypatch.setattr(store_module, "_EXPAND", "SELECT no_such_function()")
    deep: object = "bottom"
    for _ in range(300):
        deep = {"d": deep}
    items = [request(f"r{i}", f"text {i}") for i in range(5)]
    items.append(request("deep", metadata={"user_id": "u"}, temperature=0.5))
    items[-1]["params"]["tools"] = [{"name": "t", "input_schema": {"type": "object", "properties": deep}}]
    with serve_in_thread(data_dir=tmp_path) as svc, httpx.Client(base_url=svc.base_url, headers=HEADERS) as http:
        batch_id = create(http, items)["id"]
        counts = wait_ended_http(http, batch_id)["request_counts"]
        lines = {line["custom_id"]: line for line in map(orjson.loads, _results(http, batch_id).content.splitlines())}
    assert counts["succeeded"] == 5 and counts["errored"] == 1
    assert {cid for cid, line in lines.items() if line["result"]["type"] == "succeeded"} == {f"r{i}" for i in range(5)}
    error = lines["deep"]["result"]["error"]["error"]
    assert error["type"] == "invalid_request_error" and "nested too deeply" in error["message"]


def test_intake_first_never_stops_the_worker_for_long(tmp_path):
    # A large create holds the worker back while it is parsed and shortly after; a refused one releases it at once;
    # and however long a hold is asked for, the worker still steps within _MAX_HELD seconds.
    from batchframe.server.worker import _MAX_HELD

    with serve_in_thread(data_dir=tmp_path) as svc, httpx.Client(base_url=svc.base_url, headers=HEADERS) as http:
        worker = svc.backend.worker
        refused = orjson.dumps({"requests": [request("x", "y" * (2 << 20)), {"custom_id": "bad"}]})
        assert http.post("/v1/messages/batches", content=refused,
                         headers={"content-type": "application/json"}).status_code == 400
        assert worker.held_for() == 0
        worker.hold(3600)  # as if large creates kept arriving for an hour
        batch_id = create(http, [request("a"), request("b")])["id"]  # small: leaves the hold as it is
        assert worker.held_for() > 3000
        ended = wait_ended_http(http, batch_id, timeout=_MAX_HELD + 10)
    assert ended["request_counts"]["succeeded"] == 2


def test_holds_renewed_while_work_waits_never_push_the_bound_back(tmp_path):
    # Only an idle worker's bound restarts with a hold: once work waits, refused and new large creates (a hold
    # released, then taken again, over and over) still let it step within _MAX_HELD seconds.
    from batchframe.server.worker import _MAX_HELD

    with serve_in_thread(data_dir=tmp_path) as svc, httpx.Client(base_url=svc.base_url, headers=HEADERS) as http:
        worker = svc.backend.worker
        worker.hold(3600)
        batch_id = create(http, [request("a")])["id"]
        deadline = time.monotonic() + _MAX_HELD + 10
        while http.get(f"/v1/messages/batches/{batch_id}").json()["processing_status"] != "ended":
            assert time.monotonic() < deadline, "the worker was held past its bound"
            worker.hold(0)
            worker.hold(3600)
            time.sleep(0.1)


def test_the_typed_read_stores_what_the_full_parse_stores():
    items = [request(f"r{i}", f"text é {i}") for i in range(20)]
    body = orjson.dumps({"requests": items})
    assert accept_create(body) == (20, stored_body(body, parse_create(body))) and accept_create(body)[1] is body
    dupes = body.replace(b'{"custom_id":"r3"', b'{"custom_id":"x","custom_id":"r3"', 1)
    assert accept_create(dupes) == (20, stored_body(dupes, parse_create(dupes))) and accept_create(dupes)[1] != dupes
    for bad in (body.replace("é".encode(), b"\xed\xa0\x80", 1),  # a surrogate encoded: not UTF-8
                body.replace(b'"text', b'"\\ud800', 1), body[:-1]):
        with pytest.raises(Exception) as walked:
            parse_create(bad)
        with pytest.raises(Exception) as typed:
            accept_create(bad)
        assert str(typed.value) == str(walked.value) and getattr(typed.value, "status", None) == 400


def test_a_number_out_of_float_range_errs_its_own_request_only(http):
    odd = orjson.dumps(request("odd", "hi")).replace(b'"max_tokens":', b'"temperature":1e999,"max_tokens":')
    body = b'{"requests":[' + orjson.dumps(request("good", "hi")) + b"," + odd + b"]}"
    response = http.post("/v1/messages/batches", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    batch_id = response.json()["id"]
    counts = wait_ended_http(http, batch_id)["request_counts"]
    assert (counts["succeeded"], counts["errored"]) == (1, 1)
    results = map(orjson.loads, _results(http, batch_id).content.splitlines())
    lines = {line["custom_id"]: line["result"] for line in results}
    assert lines["good"]["type"] == "succeeded"
    assert lines["odd"]["error"]["error"]["type"] == "invalid_request_error"
    assert "not valid JSON" in lines["odd"]["error"]["error"]["message"]


def test_a_body_only_the_typed_read_takes_is_expanded_and_errs_alone(tmp_path):
    # Nesting past orjson's limit (and SQLite's), which the typed read takes once Python's recursion limit is
    # raised: the worker must expand the batch anyway and answer that request alone with an error.
    deep = b"[" * 2100 + b"]" * 2100
    odd = b'{"custom_id":"odd","params":{"model":"m","max_tokens":5,"metadata":' + deep + b"}}"
    body = b'{"requests":[' + orjson.dumps(request("good", "hi")) + b"," + odd + b"]}"
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(10_000)
    try:
        with pytest.raises(Exception, match="depth"):
            parse_create(body)  # the full parse refuses the whole batch
        with serve_in_thread(data_dir=tmp_path) as svc, httpx.Client(base_url=svc.base_url, headers=HEADERS) as http:
            response = http.post("/v1/messages/batches?beta=true", content=body,
                                 headers={"content-type": "application/json"})
            assert response.status_code == 200, response.text
            batch_id = response.json()["id"]
            counts = wait_ended_http(http, batch_id)["request_counts"]
            results = {line["custom_id"]: line["result"]
                       for line in map(orjson.loads, _results(http, batch_id).content.splitlines())}
    finally:
        sys.setrecursionlimit(limit)
    assert (counts["succeeded"], counts["errored"]) == (1, 1)
    assert results["good"]["type"] == "succeeded"
    assert results["odd"]["error"]["error"]["type"] == "invalid_request_error"


def test_expansion_can_take_the_oldest_staged_batches_only(tmp_path):
    # What a step the hold cap forces does (Worker.step): one staged batch, oldest first, so intake is not stalled.
    store = Store(tmp_path)
    try:
        for k in range(3):
            body = orjson.dumps({"requests": [request(f"r{i}") for i in range(4)]})
            store.stage_batch(f"msgbatch_{k}", 0, 10**15, 4, body)
        counts = [store.expand(1)]
        with store.conn() as db:
            first = db.execute("SELECT DISTINCT b.id FROM requests r JOIN batches b ON b.seq = r.batch").fetchall()
        counts += [store.expand(), store.expand()]
        with store.conn() as db:
            expanded = db.execute("SELECT b.id, count(*) FROM requests r JOIN batches b ON b.seq = r.batch"
                                  " GROUP BY b.id ORDER BY b.id").fetchall()
    finally:
        store.close()
    assert counts == [1, 2, 0] and first == [("msgbatch_0",)]
    assert expanded == [("msgbatch_0", 4), ("msgbatch_1", 4), ("msgbatch_2", 4)]
