"""The openai-compatible engine against a real chat-completions server on 127.0.0.1.

The peer is a small Starlette app that turns each chat request back into a Messages request, answers it
with the echo engine and replies in the chat-completions shape, so mapping mistakes in either direction
show up as wrong answers. (The llama engineer tests the same engine against llama_cpp.server.)
"""

from __future__ import annotations

import json

import httpx
import pytest
from server_helpers import HEADERS, AppInThread, request, wait_ended_http
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from batchframe.server.engines.echo import EchoEngine

_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls"}


def _to_messages(body: dict) -> dict:
    params = {"model": "echo", "max_tokens": body["max_tokens"], "messages": []}
    for m in body["messages"]:
        if m["role"] == "system":
            params["system"] = m["content"]
        elif m["role"] == "tool":
            params["messages"].append({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": m["tool_call_id"], "content": m["content"]}]})
        else:
            content = m["content"]
            if isinstance(content, list):
                content = [{"type": "text", "text": p["text"]} for p in content if p["type"] == "text"]
            params["messages"].append({"role": m["role"], "content": content or ""})
    if body.get("stop"):
        params["stop_sequences"] = body["stop"]
    if body.get("tools"):
        params["tools"] = [{"name": t["function"]["name"], "input_schema": t["function"]["parameters"]}
                           for t in body["tools"]]
        choice = body.get("tool_choice", "auto")
        if isinstance(choice, dict):
            params["tool_choice"] = {"type": "tool", "name": choice["function"]["name"]}
        else:
            params["tool_choice"] = {"type": {"required": "any"}.get(choice, choice)}
    return params


def chat_peer(seen: list) -> Starlette:
    echo = EchoEngine()

    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        seen.append(body)
        if "fail-503" in json.dumps(body["messages"]):
            return JSONResponse({"error": {"message": "busy"}}, status_code=503)
        answer = echo.complete(_to_messages(body))
        text = "".join(b["text"] for b in answer.content if b["type"] == "text") or None
        broken = "bad-args" in json.dumps(body["messages"])  # an upstream that emits invalid JSON arguments
        calls = [{"id": b["id"], "type": "function",
                  "function": {"name": b["name"], "arguments": '{"label": "unterminated' if broken
                               else json.dumps(b["input"])}}
                 for b in answer.content if b["type"] == "tool_use"]
        message = {"role": "assistant", "content": text, **({"tool_calls": calls} if calls else {})}
        return JSONResponse({"id": "chatcmpl-1", "object": "chat.completion", "model": body["model"],
                             "choices": [{"index": 0, "message": message,
                                          "finish_reason": _FINISH[answer.stop_reason]}],
                             "usage": {"prompt_tokens": answer.input_tokens + 7,
                                       "completion_tokens": answer.output_tokens}})

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


@pytest.fixture
def peer():
    seen: list = []
    with AppInThread(chat_peer(seen)) as app:
        app.seen = seen
        yield app


def test_batch_through_a_chat_completions_server(peer, service_factory):
    service = service_factory(engine="openai-compatible",
                              engine_options={"base_url": f"{peer.base_url}/v1", "model": "tiny-chat"})
    tool = {"name": "classify", "description": "Label it",
            "input_schema": {"type": "object", "required": ["label"],
                             "properties": {"label": {"type": "string", "enum": ["a", "b"]}}}}
    items = [
        request("plain", "hello there"),
        request("system", "hi", system="Be nice."),
        request("cut", "one two three four", max_tokens=2),
        request("stop", "alpha STOP beta", stop_sequences=["STOP"]),
        request("tool", "classify this", tools=[tool], tool_choice={"type": "tool", "name": "classify"}),
        request("down", "fail-503 please"),
        request("own-model", "x", model="tiny-chat"),
        request("badargs", "bad-args please", tools=[tool], tool_choice={"type": "tool", "name": "classify"}),
    ]
    with httpx.Client(base_url=service.base_url, headers=HEADERS) as http:
        batch_id = http.post("/v1/messages/batches", json={"requests": items}).json()["id"]
        ended = wait_ended_http(http, batch_id)
        lines = {x["custom_id"]: x["result"]
                 for x in map(json.loads, http.get(ended["results_url"]).content.splitlines())}
    assert ended["request_counts"]["succeeded"] == 6 and ended["request_counts"]["errored"] == 2
    broken = lines["badargs"]["error"]["error"]
    assert broken["type"] == "api_error" and "not a JSON object" in broken["message"]

    def message(cid):
        assert lines[cid]["type"] == "succeeded", lines[cid]
        return lines[cid]["message"]

    plain = message("plain")
    assert plain["content"][0]["text"] == "hello there" and plain["model"] == "tiny-chat"
    assert plain["usage"]["input_tokens"] == 2 + 7 and plain["usage"]["output_tokens"] == 2
    assert message("system")["content"][0]["text"] == "[Be nice.] hi"
    assert (message("cut")["content"][0]["text"], message("cut")["stop_reason"]) == ("one two", "max_tokens")
    assert message("stop")["content"][0]["text"] == "alpha "
    [call] = message("tool")["content"]
    assert call["type"] == "tool_use" and call["name"] == "classify" and call["input"]["label"] in ("a", "b")
    assert message("tool")["stop_reason"] == "tool_use"
    assert lines["down"]["error"]["error"]["type"] == "overloaded_error"

    sent = {json.dumps(b["messages"]): b for b in peer.seen}
    by_prompt = {b["messages"][-1]["content"]: b for b in sent.values()}
    assert by_prompt["hi"]["messages"][0] == {"role": "system", "content": "Be nice."}
    assert by_prompt["alpha STOP beta"]["stop"] == ["STOP"]
    assert by_prompt["one two three four"]["max_tokens"] == 2
    assert by_prompt["classify this"]["tool_choice"] == {"type": "function", "function": {"name": "classify"}}
    assert all(b["model"] == "tiny-chat" for b in sent.values())


def test_tool_round_trip_mapping():
    from batchframe.server.engines.openai_compat import to_chat

    body = to_chat({"model": "m", "max_tokens": 9, "temperature": 0.2, "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "text", "text": "checking"},
                                          {"type": "tool_use", "id": "t1", "name": "get",
                                           "input": {"city": "X"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sunny"},
                                     {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                                  "data": "QUJD"}}]},
    ], "tool_choice": {"type": "any"}, "tools": [{"name": "get", "input_schema": {"type": "object"}}]})
    assert body["messages"][1] == {"role": "assistant", "content": "checking", "tool_calls": [
        {"id": "t1", "type": "function", "function": {"name": "get", "arguments": '{"city":"X"}'}}]}
    assert body["messages"][2] == {"role": "tool", "tool_call_id": "t1", "content": "sunny"}
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}}
    assert body["messages"][3]["content"] == [image]
    assert body["tool_choice"] == "required" and body["temperature"] == 0.2
