"""The Anthropic provider's codec and client, with no socket: an ``httpx.MockTransport`` plays the API."""

from __future__ import annotations

import httpx
import orjson
import pytest

from batchframe.errors import NotFoundError, OverloadedError, TransportError
from batchframe.providers import RetryPolicy, open_endpoint, provider_class
from batchframe.providers.anthropic import codec
from batchframe.requests.build import build_requests

KEY = "sk-ant-secret-0123456789"
BATCH = {
    "id": "msgbatch_01",
    "type": "message_batch",
    "processing_status": "in_progress",
    "request_counts": {"processing": 2, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0},
    "created_at": "2026-11-30T10:00:00.5Z",
    "ended_at": None,
    "expires_at": "2026-12-01T10:00:00.5Z",
    "results_url": None,
}


def provider(handler, *, retries=0):
    client = httpx.Client(transport=httpx.MockTransport(handler))
    endpoint = open_endpoint("anthropic", api_key=KEY, base_url="https://api.example.test")
    return provider_class("anthropic")(endpoint, client=client, retry=RetryPolicy(max_retries=retries, backoff=0.0))


def test_rows_encode_to_lines_and_a_framed_body_the_api_reads():
    import pandas as pd

    rs = build_requests(pd.DataFrame({"q": ["hi", None, "yo"]}), prompt="q", model="claude-haiku-4-5", max_tokens=8)
    lines = codec.encode_lines(rs.custom_ids, rs.params)
    body = orjson.loads(codec.frame_shard(lines))
    assert [r["custom_id"] for r in body["requests"]] == ["r0", "r2"]
    assert body["requests"][1]["params"] == {"model": "claude-haiku-4-5", "max_tokens": 8,
                                             "messages": [{"role": "user", "content": "yo"}]}
    assert len(codec.frame_shard(lines)) == codec.body_size([len(b) for b in lines])
    assert orjson.loads(codec.rekey(lines[1], "r2-a2")) == {**orjson.loads(lines[1]), "custom_id": "r2-a2"}


def test_create_sends_the_body_with_auth_version_and_betas_and_decodes_a_neutral_batch():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=BATCH)

    with provider(handler) as p:
        batch = p.create(b'{"requests":[]}', betas=["a-2025-01-01", "b-2025-02-02"])
    request = seen[0]
    assert (request.method, str(request.url)) == ("POST", "https://api.example.test/v1/messages/batches")
    assert request.headers["x-api-key"] == KEY and request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["anthropic-beta"] == "a-2025-01-01,b-2025-02-02"
    assert request.content == b'{"requests":[]}'
    assert (batch.id, batch.state, batch.n_requests, batch.ended) == ("msgbatch_01", "in_progress", 2, False)
    assert batch.created_at.isoformat() == "2026-11-30T10:00:00.500000+00:00"


def test_list_follows_cursors_across_pages():
    pages = {None: ([{**BATCH, "id": "msgbatch_03"}, {**BATCH, "id": "msgbatch_02"}], True),
             "msgbatch_02": ([{**BATCH, "id": "msgbatch_01"}], False)}
    asked = []

    def handler(request: httpx.Request) -> httpx.Response:
        after = request.url.params.get("after_id")
        asked.append(after)
        data, more = pages[after]
        return httpx.Response(200, json={"data": data, "has_more": more, "first_id": data[0]["id"],
                                         "last_id": data[-1]["id"]})

    with provider(handler) as p:
        ids = [b.id for b in p.iter_batches(page_size=2)]
    assert ids == ["msgbatch_03", "msgbatch_02", "msgbatch_01"] and asked == [None, "msgbatch_02"]


def test_an_error_envelope_maps_to_its_class_with_request_id_and_without_the_key():
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"type": "error", "error": {"type": "not_found_error", "message": f"no batch for key {KEY}"}}
        return httpx.Response(404, json=body, headers={"request-id": "req_42"})

    with provider(handler) as p, pytest.raises(NotFoundError) as info:
        p.retrieve("msgbatch_missing")
    error = info.value
    assert (error.status, error.error_type, error.request_id) == (404, "not_found_error", "req_42")
    assert KEY not in str(error) and "[redacted]" in str(error)


def test_an_overloaded_create_is_not_resent_by_the_http_layer():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(529, json={"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})

    with provider(handler, retries=3) as p, pytest.raises(OverloadedError) as info:
        p.create(b'{"requests":[]}')
    assert len(calls) == 1 and info.value.retryable  # the caller checks the batch list before any resend


def test_a_retrieve_is_retried_on_529_then_succeeds():
    answers = iter([httpx.Response(529, json={"type": "error", "error": {"type": "overloaded_error"}}),
                    httpx.Response(200, json={**BATCH, "processing_status": "ended"})])
    with provider(lambda request: next(answers), retries=2) as p:
        assert p.retrieve("msgbatch_01").ended


def test_results_stream_parses_into_the_shared_schema():
    lines = [
        {"custom_id": "r1", "result": {"type": "succeeded", "message": {
            "id": "msg_1", "model": "claude-haiku-4-5", "stop_reason": "end_turn",
            "content": [{"type": "text", "text": "ok\u2028fine"}], "usage": {"input_tokens": 3, "output_tokens": 2}}}},
        {"custom_id": "r0", "result": {"type": "errored", "error": {"type": "error", "error": {
            "type": "invalid_request_error", "message": "bad"}}}},
    ]
    data = b"\n".join(orjson.dumps(line) for line in lines) + b"\n"

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/messages/batches/msgbatch_01/results"
        return httpx.Response(200, content=data)

    with provider(handler) as p, p.stream_results("msgbatch_01") as chunks:
        parser = p.result_parser()
        for chunk in chunks:
            parser.feed(chunk)
    rows = {r["custom_id"]: r for r in parser.finish().to_pylist()}
    assert rows["r1"]["text"] == "ok\u2028fine" and rows["r1"]["input_tokens"] == 3
    assert (rows["r0"]["status"], rows["r0"]["error_type"]) == ("errored", "invalid_request_error")


def test_a_transport_failure_is_a_transport_error_that_names_no_key():
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"refused for {KEY}", request=request)

    with provider(handler) as p, pytest.raises(TransportError) as info:
        p.retrieve("msgbatch_01")
    assert KEY not in str(info.value) and "was not sent" in str(info.value)


def test_an_injected_client_stays_open_for_its_owner():
    client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, json=BATCH)))
    endpoint = open_endpoint("anthropic", api_key=KEY, base_url="https://api.example.test")
    with provider_class("anthropic")(endpoint, client=client) as p:
        p.retrieve("msgbatch_01")
    assert not client.is_closed
    client.close()


@pytest.mark.parametrize("name", ["anthropic", "openai"])
def test_params_of_a_line_is_the_body_encode_lines_was_given_or_lowered_to(name):
    import pandas as pd

    requests = build_requests(pd.DataFrame({"q": ["hi \"there\"", "x" * 300, "ünï"]}), prompt="Say: {q}",
                              model="claude-haiku-4-5", max_tokens=8, system='a "quoted" system')
    wire = provider_class(name).codec
    ids = [f"r{k}-a2" for k in range(len(requests.params))]
    lines = wire.encode_lines(ids, requests.params)
    got = [wire.params_of(line) for line in lines]
    if name == "anthropic":
        assert got == list(requests.params)  # byte for byte: what the pandas estimate counts
    else:  # the chat-completions body each line sends
        assert [orjson.loads(b) for b in got] == [orjson.loads(line)["body"] for line in lines]
    assert [wire.params_of(wire.rekey(line, "r9")) for line in lines] == got
