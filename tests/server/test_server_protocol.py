"""Wire protocol details over plain HTTP: headers, exact error messages, validation, lifecycle rules."""

from __future__ import annotations

import json

import httpx
import pytest
from server_helpers import HEADERS, MODEL, create, request, result_lines, wait_ended_http


def _error(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    assert body["type"] == "error" and body["request_id"] == response.headers["request-id"]
    return response.status_code, body["error"]["type"], body["error"]["message"]


def test_headers_are_required_and_every_response_has_a_request_id(service):
    with httpx.Client(base_url=service.base_url) as http:
        assert _error(http.get("/v1/messages/batches")) == (
            401, "authentication_error", "x-api-key header is required")
        assert _error(http.get("/v1/messages/batches", headers={"x-api-key": "k"})) == (
            400, "invalid_request_error", "anthropic-version: header is required")
        bearer = http.get("/v1/messages/batches",
                          headers={"authorization": "Bearer tok", "anthropic-version": "2023-06-01"})
        assert bearer.status_code == 200
        health = http.get("/health")
        unknown = http.get("/v1/nothing-here", headers=HEADERS)
        assert _error(unknown)[:2] == (404, "not_found_error")
        ids = {r.headers["request-id"] for r in (bearer, health, unknown)}
        assert len(ids) == 3 and all(i.startswith("req_") for i in ids)


def test_a_required_key_refuses_any_other(service_factory):
    service = service_factory(api_key="sekret")
    with httpx.Client(base_url=service.base_url) as http:
        wrong = http.get("/v1/messages/batches", headers=HEADERS)
        assert _error(wrong) == (401, "authentication_error", "API key is invalid.")
        right = http.get("/v1/messages/batches", headers={**HEADERS, "x-api-key": "sekret"})
        assert right.status_code == 200
    assert "sekret" not in repr(service)


BAD_CREATES = [
    ({"requests": [request("x" * 65)]}, "requests.0.custom_id: String should have at most 64 characters"),
    ({"requests": [request("a b")]},
     "requests.0.custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'"),
    ({"requests": [{"params": request("a")["params"]}]}, "requests.0.custom_id: Field required"),
    ({"requests": [request("ok"), {"custom_id": "b"}]}, "requests.1.params: Field required"),
    ({"requests": [request("dup"), request("dup")]},
     "requests: custom_id's must be unique within a batch. Duplicate custom_id found: dup"),
    ({"requests": []}, "requests: List should have at least 1 item after validation, not 0"),
    ({"requests": [request("a")], "extra": 1}, "extra: Extra inputs are not permitted"),
    ({"requests": [{**request("a"), "note": 1}]}, "requests.0.note: Extra inputs are not permitted"),
    ({"requests": [request("a", betas=["x"])]}, "requests.0.params.betas: Extra inputs are not permitted"),
    ({}, "requests: Field required"),
]


@pytest.mark.parametrize("body,message", BAD_CREATES)
def test_whole_batch_refusals(http, body, message):
    assert _error(http.post("/v1/messages/batches", json=body)) == (400, "invalid_request_error", message)


def test_over_100000_requests_and_bad_json_are_refused(http):
    items = [{"custom_id": f"r{i}", "params": {}} for i in range(100_001)]
    assert _error(http.post("/v1/messages/batches", json={"requests": items}))[2] == (
        "requests: List should have at most 100000 items after validation, not 100001")
    status, kind, message = _error(http.post("/v1/messages/batches", content=b"{nope"))
    assert (status, kind) == (400, "invalid_request_error")
    assert message.startswith("The request body is not valid JSON: ")
    assert http.get("/v1/messages/batches").json()["data"] == []  # nothing was created


def test_body_over_the_limit_gets_413(service_factory):
    service = service_factory(max_body_bytes=2_000)
    with httpx.Client(base_url=service.base_url, headers=HEADERS) as http:
        big = {"requests": [request(f"r{i}", "word " * 50) for i in range(20)]}
        assert _error(http.post("/v1/messages/batches", json=big)) == (
            413, "request_too_large", "Request exceeds the maximum size")
        assert http.post("/v1/messages/batches", json={"requests": [request("small")]}).status_code == 200


ERRORED = {
    "unknown-model": ({"model": "claude-does-not-exist-9"}, "not_found_error",
                      "model: claude-does-not-exist-9"),
    "zero-tokens": ({"max_tokens": 0}, "invalid_request_error",
                    "max_tokens: must be greater than or equal to 1"),
    "streaming": ({"stream": True}, "invalid_request_error",
                  "stream: Streaming is not supported in Message Batches."),
    "no-messages": ({"messages": None}, "invalid_request_error", "messages: Field required"),
}


def test_bad_params_become_errored_lines_not_a_failed_batch(http):
    items = [request("fine")]
    for cid, (override, _, _) in ERRORED.items():
        item = request(cid, **override)
        if override.get("messages", 1) is None:
            del item["params"]["messages"]
        items.append(item)
    created = http.post("/v1/messages/batches", json={"requests": items})
    assert created.status_code == 200
    ended = wait_ended_http(http, created.json()["id"])
    assert ended["request_counts"] == {"processing": 0, "succeeded": 1, "errored": 4, "canceled": 0,
                                       "expired": 0}
    lines = {x["custom_id"]: x["result"] for x in result_lines(http, ended["id"])}
    for cid, (_, kind, message) in ERRORED.items():
        assert lines[cid]["type"] == "errored"
        assert lines[cid]["error"]["error"] == {"type": kind, "message": message}
        assert lines[cid]["error"]["request_id"] is None


def test_results_404_while_processing_then_shuffled_jsonl(service_factory):
    service = service_factory(engine_options={"latency": 0.05}, workers=50)
    with httpx.Client(base_url=service.base_url, headers=HEADERS) as http:
        ids = [f"r{i:03d}" for i in range(200)]
        batch = http.post("/v1/messages/batches", json={"requests": [request(i, i) for i in ids]}).json()
        early = http.get(f"/v1/messages/batches/{batch['id']}/results")
        message = f"Message Batch {batch['id']} has no available results."
        assert _error(early) == (404, "not_found_error", message)
        ended = wait_ended_http(http, batch["id"])
        results = http.get(ended["results_url"])
    assert results.headers["content-type"] == "application/x-jsonl"
    assert results.content.endswith(b"\n") and b"\r" not in results.content
    got = [json.loads(line)["custom_id"] for line in results.content.split(b"\n")[:-1]]
    assert sorted(got) == ids and got != ids  # every request once, not in request order
    texts = {json.loads(line)["custom_id"]: json.loads(line)["result"]["message"]["content"][0]["text"]
             for line in results.content.splitlines()}
    assert all(texts[i] == i for i in ids)  # each answer on its own custom_id


def test_counts_always_sum_and_batches_run_fifo(service_factory):
    service = service_factory(engine_options={"latency": 0.03}, workers=2)
    with httpx.Client(base_url=service.base_url, headers=HEADERS) as http:
        first = create(http, [request(f"a{i}") for i in range(6)])
        second = create(http, [request(f"b{i}") for i in range(6)])
        for _ in range(200):
            batch = http.get(f"/v1/messages/batches/{second['id']}").json()
            assert sum(batch["request_counts"].values()) == 6
            if batch["processing_status"] == "ended":
                break
        a, b = (wait_ended_http(http, x["id"]) for x in (first, second))
    assert a["ended_at"] < b["ended_at"]


def test_legacy_beta_paths(http):
    created = http.post("/v1/messages/batches?beta=true", json={"requests": [request("b")]},
                        headers={"anthropic-beta": "message-batches-2024-09-24"})
    assert created.status_code == 200
    batch_id = created.json()["id"]
    wait_ended_http(http, batch_id)
    assert http.get(f"/v1/messages/batches/{batch_id}?beta=true").json()["id"] == batch_id
    assert http.get("/v1/messages/batches?beta=true").json()["first_id"] == batch_id
    lines = http.get(f"/v1/messages/batches/{batch_id}/results?beta=true").content.splitlines()
    assert [json.loads(x)["custom_id"] for x in lines] == ["b"]
    counted = http.post("/v1/messages/count_tokens?beta=true",
                        json={"model": MODEL, "messages": [{"role": "user", "content": "a b"}]})
    assert counted.json() == {"input_tokens": 2}
    assert http.delete(f"/v1/messages/batches/{batch_id}?beta=true").json()["type"] == "message_batch_deleted"


def test_list_cursors_and_limits(http):
    ids = [create(http, [request("x")])["id"] for _ in range(5)]
    newest_first = ids[::-1]
    page = http.get("/v1/messages/batches", params={"limit": 2, "after_id": newest_first[1]}).json()
    assert [b["id"] for b in page["data"]] == newest_first[2:4] and page["has_more"] is True
    back = http.get("/v1/messages/batches", params={"limit": 2, "before_id": newest_first[3]}).json()
    assert [b["id"] for b in back["data"]] == newest_first[1:3] and back["has_more"] is True
    assert _error(http.get("/v1/messages/batches", params={"limit": 0}))[2] == (
        "limit: Input should be greater than or equal to 1")
    assert _error(http.get("/v1/messages/batches", params={"limit": 1001}))[2] == (
        "limit: Input should be less than or equal to 1000")
    assert len(http.get("/v1/messages/batches", params={"limit": 1000}).json()["data"]) == 5


def test_cancel_of_an_ended_batch_returns_it_unchanged_and_deleted_is_gone(http):
    batch_id = http.post("/v1/messages/batches", json={"requests": [request("x")]}).json()["id"]
    ended = wait_ended_http(http, batch_id)
    again = http.post(f"/v1/messages/batches/{batch_id}/cancel").json()
    assert again == ended
    http.delete(f"/v1/messages/batches/{batch_id}")
    path = f"/v1/messages/batches/{batch_id}"
    gone = (http.get(path), http.get(f"{path}/results"), http.post(f"{path}/cancel"), http.delete(path))
    for response in gone:
        assert _error(response) == (404, "not_found_error", f"Message Batch {batch_id} not found.")


def test_sync_message_errors(http):
    base = {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    assert _error(http.post("/v1/messages", json={**base, "model": "gpt-4"})) == (
        404, "not_found_error", "model: gpt-4")
    assert _error(http.post("/v1/messages", json={**base, "max_tokens": 100_000}))[:2] == (
        400, "invalid_request_error")
    assert http.post("/v1/messages", json={**base, "model": "echo"}).json()["model"] == "echo"


def test_every_connection_the_service_accepts_sends_without_waiting_for_acks(tmp_path):
    # TCP_NODELAY: without it, a response written as a head and then a body waited for the client's delayed
    # ACK (40 ms) before the body went, on every call (creates, polls, lists). asyncio sets it on a connection
    # whose socket says IPPROTO_TCP (a plain socket.socket() says 0).
    import socket

    from batchframe.server import serve_in_thread
    from batchframe.server.runner import _bind

    listener = _bind("127.0.0.1", 0)
    assert listener.proto == socket.IPPROTO_TCP
    listener.close()
    with serve_in_thread(data_dir=tmp_path) as svc, httpx.Client(base_url=svc.base_url, headers=HEADERS) as http:
        assert http.get("/v1/messages/batches").status_code == 200  # the connection stays open (keep-alive)
        connections = list(svc._server.server_state.connections)  # uvicorn's open connections
        assert connections
        for protocol in connections:
            sock = protocol.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
