"""Every kind of response body the service produces validates against the official OpenAPI schemas."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import httpx
import pytest
from jsonschema import Draft202012Validator
from server_helpers import HEADERS, MODEL, create, request, result_lines, wait_ended_http

from batchframe.server import Faults

SPEC = Path(__file__).resolve().parents[2] / ".." / "shared" / "specs" / "anthropic-openapi.json"
RFC3339_US = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@cache
def _components() -> dict:
    if not SPEC.exists():
        pytest.skip(f"OpenAPI spec not found at {SPEC}")
    return json.loads(SPEC.read_text())["components"]


def validate(instance: dict, name: str) -> None:
    """Validate against ``#/components/schemas/<name>``, resolving every $ref inside the spec."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": _components()}
    Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(instance)


def _check_times(batch: dict) -> None:
    for key in ("created_at", "expires_at", "ended_at", "cancel_initiated_at", "archived_at"):
        assert batch[key] is None or RFC3339_US.match(batch[key]), (key, batch[key])


def test_batch_objects_list_page_deleted_and_all_result_lines(service_factory):
    service = service_factory(engine_options={"latency": 0.02}, workers=2)
    with httpx.Client(base_url=service.base_url, headers=HEADERS) as http:
        created = http.post("/v1/messages/batches", json={"requests": [
            request("ok", "one two"), request("bad", model="claude-nope")]}).json()
        validate(created, "MessageBatch")
        _check_times(created)
        ended = wait_ended_http(http, created["id"])
        validate(ended, "MessageBatch")
        _check_times(ended)
        lines = [json.loads(line) for line in http.get(ended["results_url"]).content.splitlines()]
        assert {line["result"]["type"] for line in lines} == {"succeeded", "errored"}
        for line in lines:
            validate(line, "MessageBatchIndividualResponse")
            if line["result"]["type"] == "succeeded":
                validate(line["result"]["message"], "Message")
            else:
                validate(line["result"]["error"], "ErrorResponse")

        slow = create(http, [request(f"c{i}") for i in range(50)])
        canceling = http.post(f"/v1/messages/batches/{slow['id']}/cancel").json()
        validate(canceling, "MessageBatch")
        assert canceling["cancel_initiated_at"] is not None
        wait_ended_http(http, slow["id"])
        canceled = result_lines(http, slow["id"])
        assert "canceled" in {line["result"]["type"] for line in canceled}
        for line in canceled:
            validate(line, "MessageBatchIndividualResponse")

        page = http.get("/v1/messages/batches", params={"limit": 1}).json()
        validate(page, "ListResponse_MessageBatch_")
        assert page["has_more"] is True
        empty = http.get("/v1/messages/batches", params={"before_id": page["first_id"]}).json()
        validate(empty, "ListResponse_MessageBatch_")
        assert empty == {"data": [], "has_more": False, "first_id": None, "last_id": None}

        deleted = http.delete(f"/v1/messages/batches/{created['id']}").json()
        validate(deleted, "DeleteMessageBatchResponse")


def test_expired_lines(service_factory):
    service = service_factory(engine_options={"latency": 0.2}, workers=1, ttl_seconds=0.3)
    with httpx.Client(base_url=service.base_url, headers=HEADERS) as http:
        created = create(http, [request(f"e{i}") for i in range(6)])
        ended = wait_ended_http(http, created["id"])
        counts = ended["request_counts"]
        assert counts["expired"] >= 3 and counts["succeeded"] + counts["expired"] == 6
        lines = [json.loads(x) for x in http.get(ended["results_url"]).content.splitlines()]
        expired = [line for line in lines if line["result"]["type"] == "expired"]
        assert len(expired) == counts["expired"]
        for line in expired:
            validate(line, "MessageBatchIndividualResponse")


def test_message_count_tokens_and_error_bodies(service, http):
    params = {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "hi there"}]}
    validate(http.post("/v1/messages", json=params).json(), "Message")
    counted = http.post("/v1/messages/count_tokens", json={"model": MODEL, "messages": params["messages"]})
    validate(counted.json(), "CountMessageTokensResponse")
    for response in (
        http.get("/v1/messages/batches/msgbatch_missing"),
        http.post("/v1/messages/batches", json={"requests": []}),
        http.post("/v1/messages", json={**params, "model": "claude-nope"}),
        httpx.get(str(http.base_url.join("/v1/messages/batches"))),  # no key: 401
    ):
        body = response.json()
        validate(body, "ErrorResponse")
        assert body["request_id"] == response.headers["request-id"]
    for status in (429, 500, 529):  # injected faults wear the same envelope
        service.set_faults(Faults(http_error_rate=1.0, http_error_statuses=(status,)))
        response = http.get("/v1/messages/batches")
        assert response.status_code == status
        validate(response.json(), "ErrorResponse")
    # 413 keeps the API's "request_too_large" type, which the spec's ErrorResponse does not list (the real
    # one comes from Cloudflare in front of the API); test_server_protocol checks its envelope.
