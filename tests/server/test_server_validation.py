"""One validation layer for batch requests and the synchronous endpoints, derived from the official spec.

Bad input is ``invalid_request_error`` naming the field, as the API words it: an errored line in a batch,
a 400 on ``/v1/messages`` and ``/v1/messages/count_tokens`` (never a 500, and the connection stays open).
Beta calls (``?beta=true`` or an ``anthropic-beta`` header) are checked against the beta schema.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import anthropic
import httpx
import jsonschema
import pytest
from server_helpers import HEADERS, MODEL, create, make_sdk, request, result_lines, wait_ended, wait_ended_http

from batchframe.server.validation import ROOTS, build_subset, validator

SPEC = Path(__file__).resolve().parents[3] / "shared" / "specs" / "anthropic-openapi.json"
BASE = {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": "hello world"}]}
TOOL = {"name": "record", "input_schema": {"type": "object", "properties": {"x": {"type": "string"}}}}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()
PDF = base64.b64encode(b"%PDF-1.4\n%%EOF\n").decode()


def user(*blocks: dict) -> list[dict]:
    return [{"role": "user", "content": list(blocks)}]


def source(kind: str, media_type: str, data: str) -> dict:
    return {"type": kind, "source": {"type": "base64", "media_type": media_type, "data": data}}


#: custom_id -> (params overriding BASE, the start of the error message the API would give).
BAD_INPUTS: dict[str, tuple[dict, str]] = {
    "system-int": ({"system": 5}, "system: Input should be a valid string"),
    "system-list-int": ({"system": [5]}, "system.0: Input should be a valid dictionary"),
    "tools-int": ({"tools": 5}, "tools: Input should be a valid list"),
    "tools-list-int": ({"tools": [5]}, "tools.0: Input should be a valid dictionary"),
    "tool-without-schema": ({"tools": [{"name": "record"}]}, "tools.0.custom.input_schema: Field required"),
    "tool-result-int": (
        {"messages": user({"type": "tool_result", "tool_use_id": "toolu_1", "content": 5})},
        "messages.0.content.0.tool_result.content: Input should be a valid string"),
    "empty-enum": (
        {"tools": [{"name": "record", "input_schema": {"type": "object", "properties": {"x": {"enum": []}}}}]},
        "tools.0.custom.input_schema: JSON schema is invalid (properties.x.enum: must list at least one value"),
    "temperature": ({"temperature": 5}, "temperature: Input should be less than or equal to 1"),
    "top-p": ({"top_p": 2}, "top_p: Input should be less than or equal to 1"),
    "top-k": ({"top_k": -3}, "top_k: Input should be greater than or equal to 0"),
    "choice-missing-tool": ({"tools": [TOOL], "tool_choice": {"type": "tool", "name": "other"}},
                            "tool_choice.tool.name: Tool 'other' not found in tools"),
    "choice-without-tools": ({"tool_choice": {"type": "any"}},
                             "tool_choice may only be specified while providing tools."),
    "unknown-block": ({"messages": user({"type": "video", "url": "https://example.com/v.mp4"})},
                      "messages.0.content.0: Input tag 'video' found using 'type' does not match any of the "
                      "expected tags: "),
    "bad-image-base64": ({"messages": user(source("image", "image/png", "not base64!"))},
                         "messages.0.content.0.image.source.base64: invalid base64 data"),
    "bad-pdf-base64": ({"messages": user(source("document", "application/pdf", "abc"))},
                       "messages.0.content.0.document.source.base64: invalid base64 data"),
    "empty-text-block": ({"messages": user({"type": "text", "text": ""})},
                         "messages: text content blocks must be non-empty"),
    "budget-below-1024": ({"max_tokens": 4000, "thinking": {"type": "enabled", "budget_tokens": 500}},
                          "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"),
    "budget-not-below-max": ({"max_tokens": 2000, "thinking": {"type": "enabled", "budget_tokens": 2000}},
                             "`max_tokens` must be greater than `thinking.budget_tokens`."),
}

#: Valid requests using many fields; none may be refused.
GOOD_INPUTS: dict[str, dict] = {
    "plain": {},
    "system-blocks": {"system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}]},
    "tools": {"tools": [TOOL, {"type": "custom", "name": "other", "input_schema": {"type": "object"}}],
              "tool_choice": {"type": "tool", "name": "record"}},
    "server-tool": {"tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 2}]},
    "tool-turns": {"messages": [
        {"role": "user", "content": "record it"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "record", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                      "content": [{"type": "text", "text": "done"}]}]}], "tools": [TOOL]},
    "media": {"messages": user(source("image", "image/png", PNG), source("document", "application/pdf", PDF),
                               {"type": "text", "text": "describe"})},
    "sampling": {"temperature": 0.5, "top_p": 0.9, "top_k": 5, "stop_sequences": ["END"],
                 "metadata": {"user_id": "u1"}, "service_tier": "auto"},
    "thinking": {"max_tokens": 2048, "thinking": {"type": "enabled", "budget_tokens": 1024}},
    "output-config": {"output_config": {"format": {"type": "json_schema", "schema": {
        "type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}}}},
}

BETA_FIELDS = {
    "output_format": {"type": "json_schema", "schema": {"type": "object", "properties": {"a": {"type": "string"}},
                                                        "required": ["a"], "additionalProperties": False}},
    "mcp_servers": [{"type": "url", "url": "https://mcp.example.com/sse", "name": "example"}],
    "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
}
BETA_HEADERS = {"anthropic-beta": "structured-outputs-2025-11-13,mcp-client-2025-04-04"}


def _error(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    assert body["type"] == "error" and body["request_id"] == response.headers["request-id"]
    return response.status_code, body["error"]["type"], body["error"]["message"]


def _client_port(response: httpx.Response) -> int:
    """The local port of the connection a response came on (the same port: the same connection)."""
    return response.extensions["network_stream"].get_extra_info("client_addr")[1]


# -- the spec is the source ------------------------------------------------------------------------------
@pytest.mark.skipif(not SPEC.exists(), reason="the official spec is not on this machine")
def test_vendored_schemas_are_the_specs():
    spec = json.loads(SPEC.read_text())
    assert build_subset(spec) == json.loads(
        (Path(__file__).resolve().parents[2] / "batchframe/server/schemas/messages.json").read_text())
    assert set(ROOTS) <= set(validator().schemas)


def _spec_validator(root: str) -> jsonschema.Draft202012Validator:
    spec = json.loads(SPEC.read_text())
    return jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{root}",
                                            "components": spec["components"]})


@pytest.mark.skipif(not SPEC.exists(), reason="the official spec is not on this machine")
def test_good_inputs_are_valid_by_the_spec_and_bad_ones_are_not():
    """jsonschema on the spec itself agrees on what the service accepts (an independent checker)."""
    spec_check = _spec_validator("CreateMessageParams")
    for name, override in GOOD_INPUTS.items():
        assert spec_check.is_valid({**BASE, **override}), name
    schema_level = {"system-int", "system-list-int", "tools-int", "tools-list-int", "tool-without-schema",
                    "tool-result-int", "temperature", "top-p", "top-k", "unknown-block", "budget-below-1024"}
    for name in schema_level:
        assert not spec_check.is_valid({**BASE, **BAD_INPUTS[name][0]}), name


# -- synchronous endpoints -------------------------------------------------------------------------------
def test_messages_answers_400_for_each_bad_input_on_one_kept_connection(service):
    with httpx.Client(base_url=service.base_url, headers=HEADERS, timeout=30,
                      limits=httpx.Limits(max_connections=1)) as http:
        ports = set()
        for name, (override, message) in BAD_INPUTS.items():
            response = http.post("/v1/messages", json={**BASE, **override})
            status, kind, got = _error(response)
            assert (status, kind) == (400, "invalid_request_error"), (name, got)
            assert got.startswith(message), (name, got)
            ports.add(_client_port(response))
            assert response.headers.get("connection") != "close"
        for name, override in GOOD_INPUTS.items():
            response = http.post("/v1/messages", json={**BASE, **override})
            assert response.status_code == 200, (name, response.text)
            ports.add(_client_port(response))
    assert len(ports) == 1  # one connection served every request: none was dropped


def test_count_tokens_answers_400_for_each_bad_input(http):
    count_keys = {"model", "messages", "system", "tools", "tool_choice", "thinking", "output_config"}
    for name, (override, message) in BAD_INPUTS.items():
        if name == "budget-not-below-max":
            continue  # count_tokens has no max_tokens to compare the budget with
        body = {**BASE, **override}
        del body["max_tokens"]
        status, kind, got = _error(http.post("/v1/messages/count_tokens", json=body))
        assert (status, kind) == (400, "invalid_request_error"), (name, got)
        if set(override) - {"max_tokens"} <= count_keys:
            assert got.startswith(message), (name, got)
        else:  # sampling parameters are not count_tokens fields at all
            assert got.endswith(": Extra inputs are not permitted"), (name, got)
    counted = http.post("/v1/messages/count_tokens", json={"model": MODEL, "messages": BASE["messages"]})
    assert counted.json() == {"input_tokens": 2}


def test_stream_on_messages_gets_that_endpoints_message(http):
    status, kind, message = _error(http.post("/v1/messages", json={**BASE, "stream": True}))
    assert (status, kind) == (400, "invalid_request_error")
    assert message.startswith("stream: ") and "Message Batches" not in message
    assert http.post("/v1/messages", json={**BASE, "stream": False}).status_code == 200


@pytest.mark.skipif(not SPEC.exists(), reason="the official spec is not on this machine")
@pytest.mark.parametrize("root,beta", [("CreateMessageParams", False), ("BetaCreateMessageParams", True)])
def test_every_field_the_spec_types_is_checked(http, root, beta):
    """For each field of the spec's create schema, a value of a kind the spec refuses gets a 400 naming it."""
    spec_check = _spec_validator(root)
    properties = json.loads(SPEC.read_text())["components"]["schemas"][root]["properties"]
    path, headers = ("/v1/messages?beta=true", BETA_HEADERS) if beta else ("/v1/messages", {})
    for field in properties:
        wrong = next(v for v in (5, "x", [5], {"x": 1}, True, -1, 1.5)
                     if not spec_check.is_valid({**BASE, field: v}))
        status, kind, message = _error(http.post(path, json={**BASE, field: wrong}, headers=headers))
        assert (status, kind) == (400, "invalid_request_error"), (field, wrong, message)
        assert message.startswith(f"{field}") or message.startswith(f"`{field}`"), (field, wrong, message)


def test_the_official_sdk_gets_bad_request_errors_and_keeps_working(service):
    sdk = make_sdk(service.base_url)
    try:
        with pytest.raises(anthropic.BadRequestError) as caught:
            sdk.messages.create(**{**BASE, "system": 5})
        assert caught.value.body["error"]["message"] == "system: Input should be a valid string"
        with pytest.raises(anthropic.BadRequestError) as caught:
            sdk.messages.count_tokens(model=MODEL, messages=BASE["messages"], tools=[5])  # type: ignore[list-item]
        assert caught.value.body["error"]["message"] == "tools.0: Input should be a valid dictionary"
        assert sdk.messages.create(**BASE).content[0].text == "hello world"
    finally:
        sdk.close()


# -- beta -----------------------------------------------------------------------------------------------
def test_beta_fields_are_accepted_only_on_beta_calls(http):
    body = {**BASE, **BETA_FIELDS}
    assert http.post("/v1/messages?beta=true", json=body, headers=BETA_HEADERS).status_code == 200
    assert http.post("/v1/messages", json=body, headers=BETA_HEADERS).status_code == 200  # the header alone
    refused = _error(http.post("/v1/messages", json=body))
    assert refused[:2] == (400, "invalid_request_error")
    assert refused[2].endswith(": Extra inputs are not permitted")
    assert refused[2].split(":")[0] in BETA_FIELDS
    unknown = http.post("/v1/messages?beta=true", json={**body, "bogus": 1}, headers=BETA_HEADERS)
    assert _error(unknown) == (400, "invalid_request_error", "bogus: Extra inputs are not permitted")
    bad_type = http.post("/v1/messages?beta=true", json={**BASE, "mcp_servers": [{"type": "url"}]},
                         headers=BETA_HEADERS)
    assert _error(bad_type) == (400, "invalid_request_error", "mcp_servers.0.name: Field required")
    counted = http.post("/v1/messages/count_tokens?beta=true", headers=BETA_HEADERS,
                        json={"model": MODEL, "messages": BASE["messages"], **BETA_FIELDS})
    assert counted.status_code == 200


def test_beta_batch_with_the_sdk_checks_rows_against_the_beta_schema(sdk, http):
    good = [{"custom_id": f"beta-{name}", "params": {**BASE, name: value}} for name, value in BETA_FIELDS.items()]
    bad = {"custom_id": "beta-bad", "params": {**BASE, "output_format": 5}}
    batch = sdk.beta.messages.batches.create(requests=[*good, bad], betas=["structured-outputs-2025-11-13"])
    wait_ended(sdk, batch.id)
    results = {r.custom_id: r.result for r in sdk.beta.messages.batches.results(batch.id)}
    assert all(results[item["custom_id"]].type == "succeeded" for item in good), results
    assert results["beta-bad"].type == "errored"
    assert results["beta-bad"].error.error.type == "invalid_request_error"
    assert results["beta-bad"].error.error.message == "output_format: Input should be a valid dictionary"
    # Without beta, the same fields are refused at create, as the API refuses them.
    refused = http.post("/v1/messages/batches", json={"requests": good[:1]})
    assert _error(refused) == (400, "invalid_request_error",
                               "requests.0.params.output_format: Extra inputs are not permitted")


def test_a_ga_batch_checks_rows_against_the_ga_schema(http):
    batch = create(http, [request("ok"), request("cfg", output_config={"format": 5})])
    wait_ended_http(http, batch["id"])
    lines = {line["custom_id"]: line["result"] for line in result_lines(http, batch["id"])}
    assert lines["ok"]["type"] == "succeeded"
    assert lines["cfg"]["error"]["error"] == {"type": "invalid_request_error",
                                              "message": "output_config.format: Input should be a valid dictionary"}


# -- list cursors ---------------------------------------------------------------------------------------
def test_empty_list_cursors_are_refused(http):
    create(http, [request("x")])
    for name in ("after_id", "before_id"):
        assert _error(http.get("/v1/messages/batches", params={name: ""})) == (
            400, "invalid_request_error", f"{name}: String should have at least 1 character")
    assert len(http.get("/v1/messages/batches").json()["data"]) == 1
