"""The OpenAI Batch wire format: request lines of the input file, and batch objects as :class:`RemoteBatch`.

batchframe builds every request as Messages parameters (:mod:`batchframe.requests.build`); this codec
lowers them to a chat-completions body once, when the lines are encoded:

- ``system`` -> a leading ``system`` message; text blocks -> text parts; base64 image blocks -> ``image_url``
  parts with a data URL (documents have no chat equivalent and are refused);
- ``max_tokens`` -> ``max_completion_tokens``; ``stop_sequences`` -> ``stop``; ``temperature`` / ``top_p`` kept;
- ``tools`` -> function tools (``input_schema`` -> ``parameters``); ``tool_choice`` auto/any/tool/none ->
  auto/required/{function}/none;
- ``output_config.format`` json_schema -> ``response_format`` json_schema with ``strict: true``, the schema
  rewritten as strict mode requires (:func:`strict_schema`); where that changes its meaning, encoding the
  lines warns once (:class:`batchframe.errors.SchemaWarning`).

A line is ``{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body"}``; a shard's input file
is its lines joined by ``\\n``. Nothing outside this folder knows these keys.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

from batchframe.errors import InputError, SchemaWarning
from batchframe.providers.base import RemoteBatch
from batchframe.types import COUNT_KEYS

CHAT_URL = "/v1/chat/completions"
EMBEDDINGS_URL = "/v1/embeddings"
#: An input file's size minus the sum of (line size + 1) over its lines.
ENVELOPE_BYTES = -1
_HEAD = b'{"custom_id":"'
_MID = b'","method":"POST","url":"'
_BODY = b'","body":'
_PASSED = ("model", "temperature", "top_p")
_KNOWN = {"model", "max_tokens", "messages", "system", "temperature", "top_p", "stop_sequences", "tools",
          "tool_choice", "output_config", "output_format", "input"}


def encode_lines(custom_ids: Sequence[str], params: Sequence[bytes]) -> list[bytes]:
    """The input-file line of each (custom_id, serialized Messages params) pair, lowered to chat completions
    (an ``input`` without ``messages``, as :func:`batchframe.requests.build.build_embeddings` makes, is an
    embeddings request).

    Examples
    --------
    >>> encode_lines(["r0"], [b'{"model":"gpt-4o-mini","max_tokens":5,"messages":[{"role":"user","content":"Hi"}]}'])
    [b'{"custom_id":"r0","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini",\
"max_completion_tokens":5,"messages":[{"role":"user","content":"Hi"}]}}']
    """
    out = []
    for cid, p in zip(custom_ids, params, strict=True):
        request = orjson.loads(p)
        url, body = (EMBEDDINGS_URL, request) if "messages" not in request else (CHAT_URL, chat_body(request, cid))
        out.append(b"".join((_HEAD, cid.encode(), _MID, url.encode(), _BODY, orjson.dumps(body), b"}")))
    _warn_changes(params)
    return out


def _warn_changes(params: Sequence[bytes]) -> None:
    """Warn once per schema (not once per row) that strict mode changed its meaning."""
    said = set()
    for p in params:
        if b'"format"' not in p and b'"output_format"' not in p:
            continue
        schema = _format_schema(orjson.loads(p))
        if schema is None:
            continue
        _, changes = _strict(orjson.dumps(schema))
        if changes and changes not in said:
            said.add(changes)
            warnings.warn("provider 'openai' sends schema= in strict mode, which changes its meaning: "
                          + "; ".join(changes), SchemaWarning, stacklevel=4)


def strict_schema(schema: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``schema`` as OpenAI's strict mode requires it, and what that changed in its meaning.

    Every object lists all its properties in ``required`` and gets ``additionalProperties: false``; a
    property that was optional becomes nullable (``anyOf [..., {"type": "null"}]``), so the model answers
    null where it would have left it out (batchframe reads that null as absent). Changes of meaning are
    reported: an optional property that did not allow null now does, and extra properties a schema allowed
    explicitly are now forbidden. An object silent about ``additionalProperties`` is not reported: typed
    columns take only the declared properties either way.

    Examples
    --------
    >>> schema = {"type": "object", "properties": {"n": {"type": "integer"}, "s": {"type": "string"}},
    ...           "required": ["n"]}
    >>> strict, changes = strict_schema(schema)
    >>> strict["required"], strict["additionalProperties"], strict["properties"]["s"]
    (['n', 's'], False, {'anyOf': [{'type': 'string'}, {'type': 'null'}]})
    >>> changes
    ['$.s was optional: it is now required and may be null']
    """
    changes: list[str] = []
    return _strict_node(schema, "$", changes), changes


@functools.lru_cache(maxsize=64)
def _strict(schema_json: bytes) -> tuple[bytes, tuple[str, ...]]:
    # Every row carries the same schema: transform it once per distinct schema.
    strict, changes = strict_schema(orjson.loads(schema_json))
    return orjson.dumps(strict), tuple(changes)


def _strict_node(node: Any, at: str, changes: list[str]) -> Any:
    if isinstance(node, list):
        return [_strict_node(item, f"{at}[{i}]", changes) for i, item in enumerate(node)]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "$defs", "definitions"):
            prefix = at if key == "properties" else f"{at}.{key}"
            out[key] = {name: _strict_node(sub, f"{prefix}.{name}", changes) for name, sub in value.items()}
        elif key in ("items", "anyOf", "oneOf", "allOf", "prefixItems"):
            out[key] = _strict_node(value, at if key != "items" else f"{at}[]", changes)
        else:
            out[key] = value
    if isinstance(out.get("properties"), dict):
        required = set(out.get("required") or ())
        for name, sub in out["properties"].items():
            if name not in required and not _nullable(sub):
                out["properties"][name] = {"anyOf": [sub, {"type": "null"}]}
                changes.append(f"{at}.{name} was optional: it is now required and may be null")
        out["required"] = list(out["properties"])
        if out.get("additionalProperties", False) is not False:
            changes.append(f"{at} allowed extra properties: they are now forbidden")
        out["additionalProperties"] = False
    return out


def _nullable(node: Any) -> bool:
    if not isinstance(node, dict):
        return False
    kind = node.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    return any(isinstance(b, dict) and b.get("type") == "null" for b in node.get("anyOf") or node.get("oneOf") or ())


def _format_schema(params: dict[str, Any]) -> dict[str, Any] | None:
    fmt = (params.get("output_config") or {}).get("format") or params.get("output_format")
    return (fmt.get("schema") or {}) if fmt else None


def chat_body(params: dict[str, Any], custom_id: str = "") -> dict[str, Any]:
    """Messages parameters as a chat-completions body.

    Examples
    --------
    >>> chat_body({"model": "m", "max_tokens": 4, "system": "Be brief.", "stop_sequences": ["x"],
    ...            "messages": [{"role": "user", "content": "Hi"}]})["messages"][0]
    {'role': 'system', 'content': 'Be brief.'}
    """
    unknown = sorted(set(params) - _KNOWN)
    if unknown:
        raise InputError(f"request {custom_id}: provider 'openai' has no equivalent of {', '.join(unknown)}")
    body: dict[str, Any] = {k: params[k] for k in _PASSED if k in params}
    body["max_completion_tokens"] = params["max_tokens"]
    messages = []
    if params.get("system"):
        messages.append({"role": "system", "content": _text(params["system"], custom_id)})
    messages += [{"role": m["role"], "content": _content(m["content"], custom_id)} for m in params["messages"]]
    body["messages"] = messages
    if params.get("stop_sequences"):
        body["stop"] = params["stop_sequences"]
    if params.get("tools"):
        body["tools"] = [{"type": "function", "function": {"name": t["name"], "description": t.get("description", ""),
                                                            "parameters": t.get("input_schema") or {}}}
                         for t in params["tools"]]
    if params.get("tool_choice"):
        body["tool_choice"] = _tool_choice(params["tool_choice"])
    schema = _format_schema(params)
    if schema is not None:
        strict, _ = _strict(orjson.dumps(schema))
        body["response_format"] = {"type": "json_schema",
                                   "json_schema": {"name": "output", "schema": orjson.loads(strict), "strict": True}}
    return body


def _text(system: Any, custom_id: str) -> str:
    if isinstance(system, str):
        return system
    return "\n\n".join(b.get("text", "") for b in system if b.get("type") == "text")


def _content(content: Any, custom_id: str) -> Any:
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image" and (block.get("source") or {}).get("type") == "base64":
            source = block["source"]
            url = f"data:{source['media_type']};base64,{source['data']}"
            parts.append({"type": "image_url", "image_url": {"url": url}})
        else:
            raise InputError(f"request {custom_id}: provider 'openai' cannot send a {kind!r} block in a chat message")
    return parts


def _tool_choice(choice: dict[str, Any]) -> Any:
    kind = choice.get("type")
    if kind == "tool":
        return {"type": "function", "function": {"name": choice["name"]}}
    return {"any": "required", "auto": "auto", "none": "none"}.get(str(kind), "auto")


def rekey(line: bytes, custom_id: str) -> bytes:
    """The same line under another custom_id (a retry resends a row under a new one).

    Examples
    --------
    >>> rekey(b'{"custom_id":"r3","method":"POST"}', "r3-a2")
    b'{"custom_id":"r3-a2","method":"POST"}'
    """
    end = line.index(b'"', len(_HEAD))
    return _HEAD + custom_id.encode() + line[end:]


def set_max_tokens(line: bytes, max_tokens: int) -> bytes:
    """The same line asking for at most ``max_tokens`` (``max_completion_tokens``; embeddings unchanged).

    Examples
    --------
    >>> set_max_tokens(b'{"custom_id":"r0","method":"POST","url":"/v1/chat/completions",'
    ...                b'"body":{"model":"m","max_completion_tokens":4}}', 64)[-48:]
    b'"body":{"model":"m","max_completion_tokens":64}}'
    """
    record = orjson.loads(line)
    if record.get("url") != CHAT_URL:
        return line
    record["body"] = {**record["body"], "max_completion_tokens": int(max_tokens)}
    return orjson.dumps(record)


def params_of(line: bytes) -> bytes:
    """The serialized request body of a line, as sent (what token counting reads): the chat-completions body
    :func:`encode_lines` lowered the Messages parameters to, or an embeddings request as given.

    Examples
    --------
    >>> params_of(b'{"custom_id":"r0","method":"POST","url":"/v1/embeddings","body":{"input":"x"}}')
    b'{"input":"x"}'
    """
    return line[line.index(_BODY) + len(_BODY) : -1]


def frame_shard(lines: Sequence[bytes]) -> bytes:
    """A shard's input file: its lines, one per line.

    Examples
    --------
    >>> frame_shard([b'{"a":1}', b'{"b":2}'])
    b'{"a":1}\\n{"b":2}\\n'
    """
    return b"\n".join(lines) + b"\n"


def body_size(sizes: Sequence[int] | np.ndarray) -> int:
    """Exact size of :func:`frame_shard` for lines of these sizes.

    Examples
    --------
    >>> body_size([7, 7]) == len(frame_shard([b"x" * 7] * 2))
    True
    """
    return int(np.sum(sizes)) + len(sizes)


#: OpenAI batch statuses -> batchframe's neutral remote state.
STATES = {"validating": "in_progress", "in_progress": "in_progress", "finalizing": "in_progress",
          "cancelling": "canceling", "completed": "ended", "expired": "ended", "cancelled": "ended",
          "failed": "ended"}


def decode_batch(obj: dict[str, Any]) -> RemoteBatch:
    """An OpenAI Batch object as a :class:`RemoteBatch`; counts from ``request_counts`` (for progress only:
    results are classified line by line).

    Examples
    --------
    >>> b = decode_batch({"id": "batch_1", "status": "expired", "created_at": 1711471533,
    ...                   "request_counts": {"total": 5, "completed": 2, "failed": 1}, "metadata": {"k": "v"}})
    >>> b.state, b.counts["succeeded"], b.counts["expired"], b.tags
    ('ended', 2, 2, {'k': 'v'})
    """
    counts = dict.fromkeys(COUNT_KEYS, 0)
    raw = obj.get("request_counts") or {}
    total, done, failed = (int(raw.get(k) or 0) for k in ("total", "completed", "failed"))
    counts.update(succeeded=done, errored=failed)
    rest = max(total - done - failed, 0)
    status = obj.get("status", "")
    key = {"expired": "expired", "cancelled": "canceled", "failed": "errored"}.get(status, "processing")
    counts[key] += rest
    ended_at = next((obj[k] for k in ("completed_at", "expired_at", "cancelled_at", "failed_at") if obj.get(k)), None)
    return RemoteBatch(obj["id"], STATES.get(status, "in_progress"), counts,
                       created_at=_time(obj.get("created_at")), ended_at=_time(ended_at),
                       expires_at=_time(obj.get("expires_at")), tags=dict(obj.get("metadata") or {}))


def _time(value: Any) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value else None
