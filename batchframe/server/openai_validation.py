"""Checks of OpenAI request bodies: chat completions, embeddings, batch create, and a batch input file.

A refused body raises :class:`~batchframe.server.errors.OpenAIRequestError` worded as OpenAI words it. In
a batch, a body that fails :func:`check_chat` / :func:`check_embeddings` becomes its own line of the error
file and never fails the batch; :func:`parse_input_file` finds what fails a whole batch (reference §1.2:
``invalid_json_line``, ``duplicate_custom_id``, ``url_mismatch``, ``model_mismatch``, ``empty_file``...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from .errors import OpenAIRequestError
from .openai_models import accepts_dimensions, embedding_dimensions, is_chat_model, is_embedding_model

#: Endpoints the local service runs batches for (the spec's enum has more; they are refused at create).
BATCH_ENDPOINTS = ("/v1/chat/completions", "/v1/embeddings")
MAX_BATCH_REQUESTS = 50_000
_CHAT_KEYS = frozenset({
    "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "n", "stop", "stream",
    "stream_options", "tools", "tool_choice", "parallel_tool_calls", "response_format", "seed", "user",
    "metadata", "store", "logprobs", "top_logprobs", "logit_bias", "presence_penalty", "frequency_penalty",
    "reasoning_effort", "service_tier", "modalities", "prediction", "verbosity", "prompt_cache_key",
    "safety_identifier", "functions", "function_call", "audio", "web_search_options"})
_EMBEDDING_KEYS = frozenset({"model", "input", "dimensions", "encoding_format", "user"})
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def _bad(message: str, param: str | None = None, code: str | None = None, status: int = 400) -> OpenAIRequestError:
    return OpenAIRequestError(message, status=status, param=param, code=code)


def _missing(param: str) -> OpenAIRequestError:
    return _bad(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")


def _model(body: Mapping[str, Any], known: Any, engine_models: tuple[str, ...]) -> str:
    model = body.get("model")
    if model is None:
        raise _bad("you must provide a model parameter")
    if not isinstance(model, str) or not known(model, engine_models):
        raise _bad(f"The model `{model}` does not exist or you do not have access to it.", code="model_not_found",
                   status=404)
    return model


def check_chat(body: Any, engine_models: tuple[str, ...] = (), *, batch: bool = False) -> str:
    """Check a chat-completions body; return its model id.

    Examples
    --------
    >>> check_chat({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]})
    'gpt-4o-mini'
    >>> check_chat({"model": "gpt-4o-mini", "messages": []})
    Traceback (most recent call last):
    batchframe.server.errors.OpenAIRequestError: Invalid 'messages': empty array. Expected an array with \
minimum length 1, but got an empty array instead.
    """
    if not isinstance(body, dict):
        raise _bad("The request body must be a JSON object.")
    for key in body:
        if key not in _CHAT_KEYS:
            raise _bad(f"Unrecognized request argument supplied: {key}")
    model = _model(body, is_chat_model, engine_models)
    _check_messages(body.get("messages"))
    for key in ("max_tokens", "max_completion_tokens"):
        _integer(body, key, low=1)
    _number(body, "temperature", 0, 2)
    _number(body, "top_p", 0, 1)
    if body.get("n") not in (None, 1):
        raise _bad("Invalid 'n': the local service answers one choice per request; send n=1.", "n")
    if body.get("stream"):
        where = "the Batch API" if batch else "the local service"
        raise _bad(f"Invalid 'stream': {where} does not stream responses; send stream=false.", "stream")
    _check_stop(body.get("stop"))
    _check_response_format(body.get("response_format"))
    _check_tools(body.get("tools"))
    return model


def _check_messages(messages: Any) -> None:
    if messages is None:
        raise _missing("messages")
    if not isinstance(messages, list):
        raise _bad(f"Invalid type for 'messages': expected an array of objects, but got {_kind(messages)} "
                   "instead.", "messages", "invalid_type")
    if not messages:
        raise _bad("Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty "
                   "array instead.", "messages", "empty_array")
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise _bad(f"Invalid type for '{where}': expected an object, but got {_kind(message)} instead.",
                       where, "invalid_type")
        if message.get("role") not in _ROLES:
            raise _bad(f"Invalid value: '{message.get('role')}'. Supported values are: 'system', 'assistant', "
                       "'user', 'function', 'tool', and 'developer'.", f"{where}.role", "invalid_value")
        content = message.get("content")
        if content is None and not (message["role"] == "assistant" and message.get("tool_calls")):
            raise _missing(f"{where}.content")
        if content is not None and not isinstance(content, str | list):
            raise _bad(f"Invalid type for '{where}.content': expected one of a string or array of objects, but "
                       f"got {_kind(content)} instead.", f"{where}.content", "invalid_type")


def _kind(value: Any) -> str:
    names = {str: "a string", int: "an integer", float: "a decimal", bool: "a boolean", dict: "an object",
             list: "an array", type(None): "null"}
    return names.get(type(value), "an unsupported value")


def _integer(body: Mapping[str, Any], key: str, *, low: int) -> None:
    value = body.get(key)
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise _bad(f"Invalid type for '{key}': expected an integer, but got {_kind(value)} instead.", key,
                   "invalid_type")
    if value < low:
        raise _bad(f"Invalid '{key}': integer below minimum value. Expected a value >= {low}, but got {value} "
                   "instead.", key, "integer_below_min_value")


def _number(body: Mapping[str, Any], key: str, low: float, high: float) -> None:
    value = body.get(key)
    if value is None:
        return
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _bad(f"Invalid type for '{key}': expected a decimal, but got {_kind(value)} instead.", key,
                   "invalid_type")
    if not low <= value <= high:
        raise _bad(f"Invalid '{key}': decimal out of range. Expected a value between {low} and {high}, but got "
                   f"{value} instead.", key, "decimal_out_of_range")


def _check_stop(stop: Any) -> None:
    if stop is None or isinstance(stop, str):
        return
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop) or len(stop) > 4:
        raise _bad("Invalid 'stop': expected a string or an array of at most 4 strings.", "stop")


def _check_response_format(fmt: Any) -> None:
    if fmt is None:
        return
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind not in ("text", "json_object", "json_schema"):
        raise _bad("Invalid 'response_format.type': expected 'text', 'json_object' or 'json_schema'.",
                   "response_format.type", "invalid_value")
    if kind == "json_schema" and not isinstance((fmt.get("json_schema") or {}).get("schema"), dict):
        raise _missing("response_format.json_schema.schema")


def _check_tools(tools: Any) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise _bad("Invalid type for 'tools': expected an array of objects.", "tools", "invalid_type")
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _missing(f"tools[{i}].function.name")


@dataclass(frozen=True)
class EmbeddingRequest:
    """A checked embeddings body: inputs (texts or token-id lists), model, dimensions, encoding."""

    inputs: list[str | list[int]]
    model: str
    dimensions: int | None
    encoding_format: str


def check_embeddings(body: Any, engine_models: tuple[str, ...] = ()) -> EmbeddingRequest:
    """Check an embeddings body; return what the engine needs.

    Examples
    --------
    >>> check_embeddings({"model": "text-embedding-3-small", "input": "hi", "dimensions": 8})
    EmbeddingRequest(inputs=['hi'], model='text-embedding-3-small', dimensions=8, encoding_format='float')
    """
    if not isinstance(body, dict):
        raise _bad("The request body must be a JSON object.")
    for key in body:
        if key not in _EMBEDDING_KEYS:
            raise _bad(f"Unrecognized request argument supplied: {key}")
    model = _model(body, is_embedding_model, engine_models)
    if "input" not in body:
        raise _missing("input")
    inputs = _inputs(body["input"])
    dimensions = body.get("dimensions")
    if dimensions is not None:
        if not accepts_dimensions(model):
            raise _bad("This model does not support specifying dimensions.", "dimensions")
        _integer(body, "dimensions", low=1)
        if model not in engine_models and dimensions > embedding_dimensions(model):
            raise _bad(f"Invalid 'dimensions': {dimensions} is more than {model}'s "
                       f"{embedding_dimensions(model)} dimensions.", "dimensions")
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise _bad(f"Invalid value: '{encoding}'. Supported values are: 'float' and 'base64'.", "encoding_format",
                   "invalid_value")
    return EmbeddingRequest(inputs, model, dimensions, encoding)


def _inputs(value: Any) -> list[str | list[int]]:
    def tokens(item: Any) -> bool:
        return isinstance(item, list) and bool(item) and all(isinstance(t, int) and not isinstance(t, bool)
                                                             for t in item)

    if isinstance(value, str) or tokens(value):
        items = [value]
    elif isinstance(value, list) and value and all(isinstance(v, str) or tokens(v) for v in value):
        items = list(value)
    else:
        raise _bad("'$.input' is invalid. Please check the API reference: "
                   "https://platform.openai.com/docs/api-reference.", "input")
    if len(items) > 2048:
        raise _bad(f"Invalid 'input': maximum 2048 inputs per request, got {len(items)}.", "input")
    if any(item == "" for item in items):
        raise _bad("'$.input' is invalid. Please check the API reference: "
                   "https://platform.openai.com/docs/api-reference.", "input")
    return items


# -- batches ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreateBatch:
    """A checked batch-create body."""

    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict[str, str] | None
    output_expires_after: int | None


def check_create(doc: Any) -> CreateBatch:
    """Check a ``POST /v1/batches`` body (the input file itself is checked later, while ``validating``).

    Examples
    --------
    >>> check_create({"input_file_id": "file-1", "endpoint": "/v1/embeddings", "completion_window": "24h"}).endpoint
    '/v1/embeddings'
    """
    if not isinstance(doc, dict):
        raise _bad("The request body must be a JSON object.")
    for key in ("input_file_id", "endpoint", "completion_window"):
        if key not in doc:
            raise _missing(key)
    if not isinstance(doc["input_file_id"], str) or not doc["input_file_id"]:
        raise _bad("Invalid 'input_file_id': expected a non-empty string.", "input_file_id", "invalid_type")
    if doc["endpoint"] not in BATCH_ENDPOINTS:
        raise _bad(f"Invalid value: '{doc['endpoint']}'. The local service runs batches for "
                   f"{' and '.join(BATCH_ENDPOINTS)}.", "endpoint", "invalid_value")
    if doc["completion_window"] != "24h":
        raise _bad(f"Invalid value: '{doc['completion_window']}'. Supported values are: '24h'.",
                   "completion_window", "invalid_value")
    extra = sorted(set(doc) - {"input_file_id", "endpoint", "completion_window", "metadata",
                               "output_expires_after"})
    if extra:
        raise _bad(f"Unrecognized request argument supplied: {extra[0]}")
    return CreateBatch(doc["input_file_id"], doc["endpoint"], "24h", check_metadata(doc.get("metadata")),
                       _expires_after(doc.get("output_expires_after"), "output_expires_after"))


def check_metadata(metadata: Any) -> dict[str, str] | None:
    """At most 16 string pairs; keys up to 64 characters, values up to 512.

    Examples
    --------
    >>> check_metadata({"job": "nightly"})
    {'job': 'nightly'}
    """
    if metadata is None:
        return None
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _bad("Invalid type for 'metadata': expected an object with string values.", "metadata", "invalid_type")
    if len(metadata) > 16:
        raise _bad(f"Invalid 'metadata': too many properties. Expected an object with at most 16 properties, but "
                   f"got an object with {len(metadata)} properties instead.", "metadata", "object_above_max_properties")
    for key, value in metadata.items():
        if len(key) > 64 or len(value) > 512:
            raise _bad(f"Invalid 'metadata': the key '{key[:64]}' or its value is too long (keys at most 64 "
                       "characters, values at most 512).", "metadata", "invalid_value")
    return dict(metadata)


def _expires_after(value: Any, param: str) -> int | None:
    """Seconds of an ``{"anchor": "created_at", "seconds": 3600..2592000}`` policy, or None."""
    if value is None:
        return None
    seconds = value.get("seconds") if isinstance(value, dict) else None
    if not isinstance(value, dict) or value.get("anchor") != "created_at" or not isinstance(seconds, int) \
            or not 3600 <= seconds <= 2592000:
        raise _bad(f"Invalid '{param}': expected {{\"anchor\": \"created_at\", \"seconds\": 3600..2592000}}.", param)
    return seconds


def expires_after_seconds(value: Any, param: str = "expires_after") -> int | None:
    """Public form of the expiry-policy check (file uploads use it too).

    Examples
    --------
    >>> expires_after_seconds({"anchor": "created_at", "seconds": 3600})
    3600
    """
    return _expires_after(value, param)


class InputFileInvalid(Exception):
    """The input file fails the whole batch: ``errors`` holds OpenAI's BatchError objects."""

    def __init__(self, errors: list[dict[str, Any]]):
        self.errors = errors
        super().__init__(errors[0]["message"])


def _batch_error(code: str, message: str, line: int | None = None, param: str | None = None) -> InputFileInvalid:
    return InputFileInvalid([{"code": code, "message": message, "param": param, "line": line}])


def parse_input_file(data: bytes, endpoint: str) -> tuple[list[tuple[str, dict[str, Any]]], str | None]:
    """The (custom_id, body) of every line of a batch input file, and the one model they name.

    Only what fails a whole batch is checked here; each body is checked when it runs. Lines are split on
    ``\\n`` only; blank lines are skipped.

    Examples
    --------
    >>> line = b'{"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": {"model": "m", "input": "x"}}'
    >>> parse_input_file(line + b"\\n", "/v1/embeddings")
    ([('a', {'model': 'm', 'input': 'x'})], 'm')
    """
    out: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    models: set[Any] = set()
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            item = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise _batch_error("invalid_json_line", "This line is not parseable as valid JSON.", number) from None
        cid = _line_fields(item, number, endpoint)
        if cid in seen:
            raise _batch_error("duplicate_custom_id", "The custom_id for this request is a duplicate of another "
                               "request. The custom_id parameter must be unique for each request in a batch.",
                               number, "custom_id")
        seen.add(cid)
        models.add(item["body"].get("model"))
        out.append((cid, item["body"]))
    if not out:
        raise _batch_error("empty_file", "The batch input file is empty. Please ensure that the batch contains at "
                           "least one request.")
    if len(out) > MAX_BATCH_REQUESTS:
        raise _batch_error("too_many_tasks", f"The batch input file is larger than the {MAX_BATCH_REQUESTS} maximum "
                           "number of requests.")
    if len(models) > 1:
        raise _batch_error("model_mismatch", "The provided model does not match the model of other requests in the "
                           "batch. Each batch may only use one model.", param="body.model")
    model = next(iter(models))
    return out, model if isinstance(model, str) else None


def _line_fields(item: Any, number: int, endpoint: str) -> str:
    if not isinstance(item, dict):
        raise _batch_error("invalid_request", "This line is not a JSON object.", number)
    for key in ("custom_id", "method", "url", "body"):
        if key not in item:
            raise _batch_error("invalid_request", f"Missing required parameter: '{key}'.", number, key)
    if not isinstance(item["custom_id"], str) or not item["custom_id"]:
        raise _batch_error("invalid_request", "custom_id must be a non-empty string.", number, "custom_id")
    if item["method"] != "POST":
        raise _batch_error("invalid_request", "Only the POST method is supported.", number, "method")
    if item["url"] != endpoint:
        raise _batch_error("url_mismatch", f"The URL provided for this request does not match the batch endpoint "
                           f"{endpoint}.", number, "url")
    if not isinstance(item["body"], dict):
        raise _batch_error("invalid_request", "body must be a JSON object.", number, "body")
    return item["custom_id"]
