"""Structured outputs on the local service: ``output_config.format`` (GA) and beta ``output_format``.

The echo engine answers with deterministic JSON valid against the format's schema; ``max_tokens`` cuts it;
a forced tool is still a ``tool_use`` block. The official SDK's ``messages.parse`` gets a parsed object. The
openai-compatible engine passes the schema upstream as ``response_format``. (The llama engine's grammar is
tested in tests/model/test_llama_structured.py.)
"""

from __future__ import annotations

import enum
import json

import httpx
import jsonschema
import pytest
from pydantic import BaseModel
from server_helpers import HEADERS, MODEL, AppInThread, create, request, result_lines, wait_ended_http
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from batchframe.server.engines import EngineError
from batchframe.server.engines.echo import EchoEngine
from batchframe.server.engines.openai_compat import to_chat
from batchframe.server.engines.text import count_tokens, cut_tokens

# Nested objects, arrays (of objects, of enums, a tuple), enums, integers and numbers with bounds, booleans,
# nullable and optional fields, formats, a $ref to $defs, and required fields.
SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["title", "rating", "score", "verified", "tags", "author", "reviews", "location", "when"],
    "properties": {
        "title": {"type": "string", "minLength": 3, "maxLength": 12},
        "rating": {"type": "integer", "minimum": 1, "maximum": 5},
        "score": {"type": "number", "exclusiveMinimum": 0, "maximum": 0.75},
        "step": {"type": "number", "multipleOf": 0.25, "minimum": 2.1},
        "verified": {"type": "boolean"},
        "tags": {"type": "array", "minItems": 2, "maxItems": 3,
                 "items": {"type": "string", "enum": ["new", "used", "refurbished"]}},
        "author": {"type": "object", "additionalProperties": False, "required": ["name", "email", "age"],
                   "properties": {"name": {"type": "string"}, "email": {"type": "string", "format": "email"},
                                  "age": {"type": ["integer", "null"], "exclusiveMinimum": 17}}},
        "reviews": {"type": "array", "items": {"$ref": "#/$defs/review"}},
        "location": {"type": "array", "prefixItems": [{"type": "number"}, {"type": "number"}],
                     "minItems": 2, "maxItems": 2},
        "when": {"type": "string", "format": "date-time"},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "kind": {"const": "review"},
    },
    "$defs": {"review": {"type": "object", "additionalProperties": False, "required": ["stars", "helpful"],
                         "properties": {"stars": {"enum": [1, 2, 3, 4, 5]}, "helpful": {"type": "boolean"},
                                        "text": {"type": "string"}}}},
}


def fmt(schema: dict = SCHEMA) -> dict:
    return {"format": {"type": "json_schema", "schema": schema}}


def validated(text: str, schema: dict = SCHEMA) -> dict:
    value = json.loads(text)
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(value)
    return value


# -- echo, through the service ---------------------------------------------------------------------------


def test_a_batch_with_output_config_format_answers_schema_valid_json(http):
    tool = {"name": "classify", "input_schema": {"type": "object", "required": ["label"],
                                                 "properties": {"label": {"enum": ["a", "b"]}}}}
    prompts = ["Review the blender please", "x", "one two three four five six seven eight nine ten",
               "Ünïcödé \"quoted\" and \\ backslash"]
    items = [request(f"row{i}", text, max_tokens=400, output_config=fmt()) for i, text in enumerate(prompts)]
    items += [
        request("again", prompts[0], max_tokens=400, output_config=fmt()),
        request("system", prompts[0], max_tokens=400, system="Be terse.", output_config=fmt()),
        request("cut", prompts[2], max_tokens=4, output_config=fmt()),
        request("root-array", "list them", output_config=fmt({"type": "array", "items": {"type": "integer"}})),
        request("forced-tool", "please", output_config=fmt(), tools=[tool],
                tool_choice={"type": "tool", "name": "classify"}),
        request("auto-tool", "no tool named here", max_tokens=400, output_config=fmt(), tools=[tool]),
        request("unsatisfiable", "hi", output_config=fmt({"type": "object", "required": ["k"],
                                                          "properties": {"k": {"enum": []}}})),
    ]
    batch = create(http, items)
    wait_ended_http(http, batch["id"])
    lines = {line["custom_id"]: line["result"] for line in result_lines(http, batch["id"])}

    def message(cid: str) -> dict:
        assert lines[cid]["type"] == "succeeded", lines[cid]
        return lines[cid]["message"]

    texts = {}
    for i in range(len(prompts)):
        answer = message(f"row{i}")
        [block] = answer["content"]
        assert block["type"] == "text" and answer["stop_reason"] == "end_turn"
        value = validated(block["text"])
        assert answer["usage"]["output_tokens"] == count_tokens(block["text"])
        texts[i] = block["text"]
        assert value["title"] and value["author"]["email"]
    # deterministic: the same request gets the same JSON; the system prompt does not prefix it
    assert message("again")["content"][0]["text"] == texts[0]
    assert message("system")["content"][0]["text"] == texts[0]
    assert len(set(texts.values())) == len(texts)  # derived from the prompt
    # max_tokens cuts it by the echo token rule
    cut = message("cut")
    assert cut["stop_reason"] == "max_tokens" and cut["usage"]["output_tokens"] == 4
    assert cut["content"][0]["text"] == cut_tokens(texts[2], 4) != texts[2]
    assert isinstance(json.loads(message("root-array")["content"][0]["text"]), list)
    # a forced tool keeps today's behaviour; a tool not called leaves the text to the format
    [call] = message("forced-tool")["content"]
    assert call["type"] == "tool_use" and call["input"]["label"] in ("a", "b")
    assert message("forced-tool")["stop_reason"] == "tool_use"
    validated(message("auto-tool")["content"][0]["text"])
    # a schema no value satisfies fails only its own request, as bad input
    error = lines["unsatisfiable"]["error"]["error"]
    assert lines["unsatisfiable"]["type"] == "errored" and error["type"] == "invalid_request_error"
    assert error["message"].startswith("output_config.format.schema")


def test_max_tokens_cuts_a_structured_answer_on_post_messages(http):
    body = {"model": MODEL, "messages": [{"role": "user", "content": "a fairly long prompt of words"}],
            "output_config": fmt()}
    full = http.post("/v1/messages", json={**body, "max_tokens": 500})
    assert full.status_code == 200, full.text
    text = full.json()["content"][0]["text"]
    validated(text)
    assert count_tokens(text) > 3
    cut = http.post("/v1/messages", json={**body, "max_tokens": 3}).json()
    assert cut["stop_reason"] == "max_tokens" and cut["usage"]["output_tokens"] == 3
    assert cut["content"][0]["text"] == cut_tokens(text, 3)
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut["content"][0]["text"])
    # a stop sequence cuts it as any text
    stopped = http.post("/v1/messages", json={**body, "max_tokens": 500, "stop_sequences": ['"rating"']}).json()
    assert stopped["stop_reason"] == "stop_sequence" and stopped["stop_sequence"] == '"rating"'
    assert text.startswith(stopped["content"][0]["text"]) and '"rating"' not in stopped["content"][0]["text"]


def test_beta_output_format_through_the_service(http):
    body = {"model": MODEL, "max_tokens": 200, "messages": [{"role": "user", "content": "beta please"}],
            "output_format": {"type": "json_schema", "schema": SCHEMA}}
    beta = {**HEADERS, "anthropic-beta": "structured-outputs-2025-11-13"}
    answer = http.post("/v1/messages?beta=true", json=body, headers=beta)
    if answer.status_code == 400 and "Extra inputs" in answer.text:
        pytest.skip("the service does not accept beta output_format yet (request validation)")
    assert answer.status_code == 200, answer.text
    assert validated(answer.json()["content"][0]["text"])
    ga = http.post("/v1/messages", json={**{k: v for k, v in body.items() if k != "output_format"},
                                         "output_config": fmt()}).json()
    assert ga["content"] == answer.json()["content"]  # the same schema, the same answer


# -- echo, the engine alone ------------------------------------------------------------------------------


def ask(text: str = "hello there", **params) -> dict:
    return {"model": "echo", "max_tokens": 100, "messages": [{"role": "user", "content": text}], **params}


def test_echo_reads_beta_output_format_like_output_config():
    echo = EchoEngine()
    ga = echo.complete(ask(output_config=fmt()))
    beta = echo.complete(ask(output_format=fmt()["format"]))
    assert ga == beta and validated(ga.content[0]["text"])
    assert echo.complete(ask(output_config={"effort": "low"})).content[0]["text"] == "hello there"
    assert echo.complete(ask(output_config={"format": None})).content[0]["text"] == "hello there"


@pytest.mark.parametrize(("params", "field"), [
    ({"output_config": {"format": {"type": "json_schema"}}}, "output_config.format.schema"),
    ({"output_config": {"format": {"type": "text", "schema": {}}}}, "output_config.format"),
    ({"output_format": "json"}, "output_format"),
    ({"output_format": fmt()["format"], "output_config": fmt()}, "output_format"),
])
def test_echo_refuses_a_malformed_format_as_bad_input(params, field):
    with pytest.raises(EngineError) as caught:
        EchoEngine().complete(ask(**params))
    assert caught.value.error_type == "invalid_request_error"
    assert caught.value.message.startswith(f"{field}:")


# -- the official SDK ------------------------------------------------------------------------------------


class Condition(enum.Enum):
    NEW = "new"
    USED = "used"


class Seller(BaseModel):
    name: str
    rating: float
    verified: bool


class Listing(BaseModel):
    title: str
    price_cents: int
    condition: Condition
    tags: list[str]
    seller: Seller
    note: str | None = None


def test_sdk_messages_parse_returns_a_parsed_object(sdk):
    import anthropic

    assert hasattr(sdk.messages, "parse"), f"anthropic {anthropic.__version__} has no messages.parse"
    parsed = sdk.messages.parse(model=MODEL, max_tokens=300, output_format=Listing,
                                messages=[{"role": "user", "content": "Describe the bike for sale"}])
    listing = parsed.parsed_output
    assert isinstance(listing, Listing) and isinstance(listing.seller, Seller)
    assert isinstance(listing.condition, Condition) and listing.tags
    assert parsed.stop_reason == "end_turn"
    assert listing == Listing.model_validate_json(parsed.content[0].text)
    # the beta namespace sends the same output_config on the ?beta=true path
    beta = sdk.beta.messages.parse(model=MODEL, max_tokens=300, output_format=Listing,
                                   messages=[{"role": "user", "content": "Describe the bike for sale"}])
    assert beta.parsed_output == listing


# -- the openai-compatible engine ------------------------------------------------------------------------


def structured_peer(seen: list) -> Starlette:
    """A chat-completions server that answers a ``response_format`` with echo's schema-valid JSON."""
    echo = EchoEngine()

    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        seen.append(body)
        prompt = body["messages"][-1]["content"]
        message: dict = {"role": "assistant", "content": None}
        finish = "stop"
        if "refuse" in prompt:
            message["refusal"] = "I can't help with that."
        else:
            params = {"model": "echo", "max_tokens": body["max_tokens"],
                      "messages": [{"role": "user", "content": prompt}]}
            if "response_format" in body:
                params["output_config"] = {"format": {"type": "json_schema",
                                                      "schema": body["response_format"]["json_schema"]["schema"]}}
            answer = echo.complete(params)
            message["content"] = answer.content[0]["text"]
            finish = "length" if answer.stop_reason == "max_tokens" else "stop"
        return JSONResponse({"id": "chatcmpl-1", "object": "chat.completion", "model": body["model"],
                             "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                             "usage": {"prompt_tokens": 5, "completion_tokens": 3}})

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


def test_openai_compatible_engine_sends_response_format(service_factory):
    seen: list = []
    with AppInThread(structured_peer(seen)) as peer:
        service = service_factory(engine="openai-compatible",
                                  engine_options={"base_url": f"{peer.base_url}/v1", "model": "tiny-chat"})
        titled = {**SCHEMA, "title": "Product review!"}
        items = [request("ga", "structured please", output_config=fmt(titled)),
                 request("beta-free", "plain please"),
                 request("cut", "structured but short", max_tokens=2, output_config=fmt()),
                 request("refused", "refuse this", output_config=fmt())]
        with httpx.Client(base_url=service.base_url, headers=HEADERS) as http:
            batch = create(http, items)
            wait_ended_http(http, batch["id"])
            lines = {line["custom_id"]: line["result"] for line in result_lines(http, batch["id"])}
    assert all(r["type"] == "succeeded" for r in lines.values()), lines
    by_prompt = {b["messages"][-1]["content"]: b for b in seen}
    assert by_prompt["structured please"]["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "Product_review", "schema": titled, "strict": True}}
    assert by_prompt["structured but short"]["response_format"]["json_schema"]["name"] == "response"
    assert "response_format" not in by_prompt["plain please"]
    ga = lines["ga"]["message"]
    assert ga["stop_reason"] == "end_turn" and validated(ga["content"][0]["text"], titled)
    assert lines["cut"]["message"]["stop_reason"] == "max_tokens"
    refused = lines["refused"]["message"]
    assert refused["stop_reason"] == "refusal" and refused["content"][0]["text"] == "I can't help with that."


def test_to_chat_maps_beta_output_format_too():
    body = to_chat(ask(output_format={"type": "json_schema", "schema": {"type": "object"}}))
    assert body["response_format"]["json_schema"] == {"name": "response", "schema": {"type": "object"},
                                                      "strict": True}
