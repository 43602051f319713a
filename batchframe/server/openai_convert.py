"""A checked chat-completions body as the Messages params the service's engines answer.

The engines answer Messages requests (``Engine.complete``); an OpenAI chat request reaches them through
:func:`to_messages`, and their :class:`~batchframe.server.engines.base.Completion` goes back out through
``openai_wire.chat_completion``. Mapping:

- ``system`` / ``developer`` messages -> ``system`` (joined by blank lines); ``user`` / ``assistant``
  messages -> Messages turns (text parts -> text blocks, ``image_url`` parts -> URL image blocks);
  assistant ``tool_calls`` -> ``tool_use`` blocks; ``tool`` messages -> a user turn of ``tool_result``
  blocks;
- ``max_completion_tokens`` (else ``max_tokens``, else 4096) -> ``max_tokens``; ``stop`` ->
  ``stop_sequences``; ``temperature`` (OpenAI's 0..2) is capped at 1, the Messages maximum; ``top_p`` kept;
- ``tools`` (functions) -> tools with ``input_schema`` = ``parameters``; ``tool_choice``
  none/auto/required/{function} -> none/auto/any/tool;
- ``response_format`` ``json_schema`` -> ``output_config.format``; ``json_object`` -> the schema
  ``{"type": "object"}``. Other parameters (seed, user, penalties...) are accepted and have no effect.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

DEFAULT_MAX_TOKENS = 4096


def to_messages(body: Mapping[str, Any]) -> dict[str, Any]:
    """Messages params for a chat-completions body already checked by ``check_chat``.

    Examples
    --------
    >>> to_messages({"model": "gpt-4o-mini", "max_tokens": 5, "stop": "x",
    ...              "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]})
    {'model': 'gpt-4o-mini', 'max_tokens': 5, 'messages': [{'role': 'user', 'content': 'Hi'}], \
'system': 'Be brief.', 'stop_sequences': ['x']}
    """
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
    params: dict[str, Any] = {"model": body["model"], "max_tokens": max_tokens, "messages": _turns(body["messages"])}
    system = [_text(m.get("content")) for m in body["messages"] if m["role"] in ("system", "developer")]
    if system:
        params["system"] = "\n\n".join(system)
    stop = body.get("stop")
    if stop:
        params["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("temperature") is not None:
        params["temperature"] = min(1.0, float(body["temperature"]))
    if body.get("top_p") is not None:
        params["top_p"] = float(body["top_p"])
    if body.get("tools"):
        params["tools"] = [_tool(t["function"]) for t in body["tools"]]
        choice = _tool_choice(body.get("tool_choice"))
        if choice is not None:
            params["tool_choice"] = choice
    schema = _output_schema(body.get("response_format"))
    if schema is not None:
        params["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    return params


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(str(p.get("text", "")) for p in content or () if isinstance(p, Mapping)
                     and p.get("type") == "text")


def _turns(messages: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = message["role"]
        if role in ("system", "developer"):
            continue
        if role in ("tool", "function"):
            result = {"type": "tool_result", "tool_use_id": str(message.get("tool_call_id", "")),
                      "content": _text(message.get("content"))}
            turns.append({"role": "user", "content": [result]})
        elif role == "assistant" and message.get("tool_calls"):
            blocks = [{"type": "text", "text": _text(message["content"])}] if message.get("content") else []
            blocks += [_tool_use(call) for call in message["tool_calls"]]
            turns.append({"role": "assistant", "content": blocks})
        else:
            turns.append({"role": role, "content": _content(message.get("content"))})
    return turns


def _content(content: Any) -> Any:
    if isinstance(content, str) or content is None:
        return content or ""
    blocks: list[dict[str, Any]] = []
    for part in content:
        if not isinstance(part, Mapping):
            continue
        if part.get("type") == "text":
            blocks.append({"type": "text", "text": str(part.get("text", ""))})
        elif part.get("type") == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            blocks.append({"type": "image", "source": {"type": "url", "url": url}})
    return blocks


def _tool_use(call: Mapping[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    try:
        arguments = orjson.loads(function.get("arguments") or "{}")
    except orjson.JSONDecodeError:
        arguments = {}
    return {"type": "tool_use", "id": str(call.get("id", "")), "name": str(function.get("name", "")),
            "input": arguments if isinstance(arguments, dict) else {}}


def _tool(function: Mapping[str, Any]) -> dict[str, Any]:
    tool: dict[str, Any] = {"name": function["name"], "input_schema": function.get("parameters") or {"type": "object"}}
    if function.get("description"):
        tool["description"] = function["description"]
    return tool


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if isinstance(choice, Mapping):
        return {"type": "tool", "name": (choice.get("function") or {}).get("name")}
    return {"none": {"type": "none"}, "auto": {"type": "auto"}, "required": {"type": "any"}}.get(str(choice))


def _output_schema(fmt: Any) -> dict[str, Any] | None:
    if not isinstance(fmt, Mapping):
        return None
    if fmt.get("type") == "json_schema":
        return dict(fmt["json_schema"]["schema"])
    if fmt.get("type") == "json_object":
        return {"type": "object"}
    return None
