"""The ``openai-compatible`` engine: forwards each request to a ``/v1/chat/completions`` endpoint.

Works with any OpenAI-compatible server (llama-cpp-python's ``llama_cpp.server``, llama-server, Ollama,
vLLM). Options: ``base_url`` (e.g. ``http://127.0.0.1:8080/v1``; ``/chat/completions`` is appended),
``model`` (sent upstream; default: the request's model), ``api_key`` (sent as Bearer; default
``$OPENAI_API_KEY``), ``timeout`` seconds, ``max_concurrency`` requests in flight.

Mapping, Messages -> chat: ``system`` -> a system message; text blocks -> content (parts when an image is
present; base64 or URL image sources become ``image_url``); assistant ``tool_use`` -> ``tool_calls``;
user ``tool_result`` -> ``tool`` messages; ``max_tokens``, ``temperature``, ``top_p``, ``stop_sequences``
-> ``stop``; ``tools`` -> functions; ``tool_choice`` auto/any/tool/none -> auto/required/function/none;
``output_config.format`` (or beta ``output_format``) -> ``response_format`` ``{"type": "json_schema",
"json_schema": {"name": <the schema's title, else "response">, "schema": ..., "strict": true}}``.
Chat -> Messages: content -> a text block, a ``refusal`` -> a text block with stop_reason ``refusal``,
``tool_calls`` -> ``tool_use`` blocks, ``finish_reason``
stop/length/tool_calls/content_filter -> end_turn/max_tokens/tool_use/refusal, ``usage`` prompt/completion
tokens -> input/output tokens. Upstream HTTP errors become errored results of the matching type.

Embeddings (the OpenAI ``/v1/embeddings`` API) are forwarded as they are to ``<base_url>/embeddings``
(``model`` replaced by the ``model`` option when given, vectors asked for as floats).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import httpx
import orjson

from .base import Completion, Embeddings, Engine, EngineError, json_output_schema, register_engine
from .text import content_text, input_tokens

_FINISH = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
           "content_filter": "refusal"}
_STATUS_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                 404: "not_found_error", 413: "invalid_request_error", 422: "invalid_request_error",
                 429: "rate_limit_error", 503: "overloaded_error", 504: "timeout_error",
                 529: "overloaded_error"}


@register_engine
class OpenAICompatibleEngine(Engine):
    """Answers Messages requests through an OpenAI-compatible chat-completions server.

    Examples
    --------
    >>> engine = OpenAICompatibleEngine(base_url="http://127.0.0.1:8080/v1")  # doctest: +SKIP
    >>> engine.complete({"model": "claude-haiku-4-5", "max_tokens": 20,
    ...                  "messages": [{"role": "user", "content": "Hi"}]}).content  # doctest: +SKIP
    [{'type': 'text', 'text': 'Hello! How can I help?'}]
    """

    name: ClassVar[str] = "openai-compatible"
    max_concurrency: ClassVar[int] = 4

    def __init__(self, *, base_url: str, model: str | None = None, api_key: str | None = None,
                 timeout: float = 600.0, max_concurrency: int | None = None,
                 client: httpx.Client | None = None):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.upstream_model = model
        if max_concurrency is not None:
            self.max_concurrency = int(max_concurrency)  # type: ignore[misc]
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        headers = {"authorization": f"Bearer {key}"} if key else {}
        self._owns_client = client is None
        self._client = client or httpx.Client(timeout=timeout, headers=headers)
        self.model_ids = (model,) if model else ()  # type: ignore[misc]

    @property
    def model_name(self) -> str:
        return self.upstream_model or self.name

    def complete(self, params: Mapping[str, Any]) -> Completion:
        body = to_chat(params, model=self.upstream_model)  # raises EngineError on a malformed output format
        try:
            answer = self._client.post(self.url, content=orjson.dumps(body),
                                       headers={"content-type": "application/json"})
        except httpx.HTTPError as exc:
            raise EngineError(f"upstream {self.url} unreachable: {type(exc).__name__}",
                              error_type="api_error") from None
        if answer.status_code >= 400:
            kind = _STATUS_TYPES.get(answer.status_code, "api_error")
            raise EngineError(f"upstream answered {answer.status_code}: {answer.text[:300]}", error_type=kind)
        try:
            return from_chat(orjson.loads(answer.content), params)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise EngineError(f"upstream sent an unreadable answer: {exc}", error_type="api_error") from None

    def embed(self, inputs: Sequence[str | Sequence[int]], *, model: str,
              dimensions: int | None = None) -> Embeddings:
        body: dict[str, Any] = {"model": self.upstream_model or model, "input": [
            item if isinstance(item, str) else list(item) for item in inputs], "encoding_format": "float"}
        if dimensions is not None:
            body["dimensions"] = dimensions
        answer = self._post(self.url.removesuffix("/chat/completions") + "/embeddings", body)
        try:
            data = sorted(answer["data"], key=lambda item: item["index"])
            tokens = (answer.get("usage") or {}).get("prompt_tokens") or 0
            return Embeddings([list(map(float, item["embedding"])) for item in data], int(tokens))
        except (KeyError, TypeError, ValueError) as exc:
            raise EngineError(f"upstream sent an unreadable answer: {exc}", error_type="api_error") from None

    def _post(self, url: str, body: Mapping[str, Any]) -> Any:
        """POST JSON upstream; its JSON answer, or EngineError of the status's type."""
        try:
            answer = self._client.post(url, content=orjson.dumps(body), headers={"content-type": "application/json"})
        except httpx.HTTPError as exc:
            raise EngineError(f"upstream {url} unreachable: {type(exc).__name__}", error_type="api_error") from None
        if answer.status_code >= 400:
            kind = _STATUS_TYPES.get(answer.status_code, "api_error")
            raise EngineError(f"upstream answered {answer.status_code}: {answer.text[:300]}", error_type=kind)
        try:
            return orjson.loads(answer.content)
        except orjson.JSONDecodeError as exc:
            raise EngineError(f"upstream sent an unreadable answer: {exc}", error_type="api_error") from None

    def complete_many(self, batch: Sequence[Mapping[str, Any]]) -> list[Completion | EngineError]:
        if len(batch) <= 1 or self.max_concurrency <= 1:
            return super().complete_many(batch)
        threads = min(self.max_concurrency, len(batch))
        with ThreadPoolExecutor(threads, thread_name_prefix="openai-compat") as pool:
            return list(pool.map(self._one, batch))

    def _one(self, params: Mapping[str, Any]) -> Completion | EngineError:
        try:
            return self.complete(params)
        except EngineError as exc:
            return exc

    def close(self) -> None:
        if self._owns_client:
            self._client.close()


def to_chat(params: Mapping[str, Any], *, model: str | None = None) -> dict[str, Any]:
    """A chat-completions body for a Messages create body.

    Examples
    --------
    >>> to_chat({"model": "m", "max_tokens": 5, "system": "S", "stop_sequences": ["x"],
    ...          "messages": [{"role": "user", "content": "Hi"}]})
    {'model': 'm', 'messages': [{'role': 'system', 'content': 'S'}, {'role': 'user', 'content': 'Hi'}], \
'max_tokens': 5, 'stop': ['x']}
    """
    messages: list[dict[str, Any]] = []
    if params.get("system"):
        messages.append({"role": "system", "content": content_text(params["system"])})
    for message in params["messages"]:
        messages.extend(_chat_messages(message))
    body: dict[str, Any] = {"model": model or params["model"], "messages": messages,
                            "max_tokens": params["max_tokens"]}
    for key in ("temperature", "top_p"):
        if key in params:
            body[key] = params[key]
    if params.get("stop_sequences"):
        body["stop"] = list(params["stop_sequences"])
    if params.get("tools"):
        body["tools"] = [{"type": "function", "function": {
            "name": t["name"], "description": t.get("description", ""),
            "parameters": t.get("input_schema", {"type": "object"})}} for t in params["tools"]]
        choice = _tool_choice(params.get("tool_choice"))
        if choice is not None:
            body["tool_choice"] = choice
    output_schema = json_output_schema(params)
    if output_schema is not None:
        body["response_format"] = response_format(output_schema[1])
    return body


_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]+")


def response_format(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The chat-completions ``response_format`` that asks for JSON valid against ``schema``.

    Its ``name`` (OpenAI: ``[A-Za-z0-9_-]``, at most 64 characters) is the schema's ``title``, else
    ``"response"``.

    Examples
    --------
    >>> response_format({"title": "Weather report", "type": "object"})
    {'type': 'json_schema', 'json_schema': {'name': 'Weather_report', 'schema': {'title': 'Weather report', \
'type': 'object'}, 'strict': True}}
    """
    title = schema.get("title")
    name = _NAME_CHARS.sub("_", title).strip("_")[:64] if isinstance(title, str) else ""
    return {"type": "json_schema",
            "json_schema": {"name": name or "response", "schema": dict(schema), "strict": True}}


def _tool_choice(choice: Mapping[str, Any] | None) -> Any:
    if not choice:
        return None
    kind = choice.get("type")
    if kind == "tool":
        return {"type": "function", "function": {"name": choice["name"]}}
    return {"auto": "auto", "any": "required", "none": "none"}.get(str(kind))


def _chat_messages(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    role, content = message["role"], message["content"]
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    texts, parts, calls, results = [], [], [], []
    for block in content:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
            parts.append({"type": "text", "text": block.get("text", "")})
        elif kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block.get("source", {}))}})
        elif kind == "tool_use":
            calls.append({"id": block["id"], "type": "function", "function": {
                "name": block["name"], "arguments": orjson.dumps(block.get("input", {})).decode()}})
        elif kind == "tool_result":
            results.append({"role": "tool", "tool_call_id": block.get("tool_use_id", ""),
                            "content": content_text(block.get("content", ""))})
    out: list[dict[str, Any]] = list(results)
    if calls:
        out.append({"role": role, "content": "\n".join(texts) or None, "tool_calls": calls})
    elif len(parts) > len(texts):  # an image is present: keep the parts
        out.append({"role": role, "content": parts})
    elif texts:
        out.append({"role": role, "content": "\n".join(texts)})
    return out


def _image_url(source: Mapping[str, Any]) -> str:
    if source.get("type") == "base64":
        return f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    return str(source.get("url", ""))


def _tool_input(fn: Mapping[str, Any]) -> dict[str, Any]:
    # A tool_use input must be an object; an upstream that produced broken arguments fails this row (a
    # retryable api_error) rather than handing the caller an empty input that looks valid.
    raw = fn.get("arguments") or "{}"
    try:
        args = orjson.loads(raw)
    except orjson.JSONDecodeError:
        args = None
    if not isinstance(args, dict):
        raise EngineError(f"upstream tool call {fn.get('name', '')!r} has arguments that are not a JSON object: "
                          f"{str(raw)[:200]!r}", error_type="api_error")
    return args


def from_chat(answer: Mapping[str, Any], params: Mapping[str, Any]) -> Completion:
    """A :class:`Completion` for a chat-completions answer to ``params``."""
    choice = answer["choices"][0]
    msg = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if msg.get("content"):
        content.append({"type": "text", "text": msg["content"]})
    elif msg.get("refusal"):  # structured outputs: the model declined to answer in the schema
        content.append({"type": "text", "text": str(msg["refusal"])})
    for i, call in enumerate(msg.get("tool_calls") or ()):
        fn = call.get("function", {})
        content.append({"type": "tool_use", "id": call.get("id") or f"toolu_{i}", "name": fn.get("name", ""),
                        "input": _tool_input(fn)})
    if not content:
        content.append({"type": "text", "text": ""})
    # Chat completions say "stop" both for a natural end and for a stop sequence, and the server has cut
    # the sequence off: which one matched is unknowable here, so it is reported as end_turn.
    reason = _FINISH.get(choice.get("finish_reason") or "stop", "end_turn")
    if any(b["type"] == "tool_use" for b in content):
        reason = "tool_use"
    elif msg.get("refusal") and not msg.get("content"):
        reason = "refusal"
    usage = answer.get("usage") or {}
    n_in = usage.get("prompt_tokens")
    n_out = usage.get("completion_tokens")
    return Completion(content, reason, int(n_in if n_in is not None else input_tokens(params)),
                      int(n_out if n_out is not None else 0))
