"""Wire shapes of the OpenAI Files and Batches API: File, Batch, list pages, chat.completion, embeddings,
batch output lines and the error envelope ``{"error": {"message", "type", "param", "code"}}``.

Pure functions from plain data to plain data (or ready-to-send bytes). A field with no value is left
out where the spec (``openai-batch-files-openapi.yml``) lets it be absent, because the spec types it as
non-null (``output_file_id``, the timestamps of steps not reached, ``errors``); the live API sends
``null`` instead, and the SDK reads both as None. A required field without a value (``first_id`` of an
empty file list) is ``null``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson

from .engines.base import Completion
from .errors import OpenAIRequestError, ServiceRequestError
from .ids import random_id

#: Paths served by the OpenAI routes (each with its sub-paths); every other ``/v1/`` path is Anthropic's.
OPENAI_PATHS = ("/v1/files", "/v1/batches", "/v1/chat/completions", "/v1/embeddings")
#: HTTP status of an engine / request error type.
STATUS_OF_TYPE = {"invalid_request_error": 400, "authentication_error": 401, "permission_error": 403,
                  "not_found_error": 404, "rate_limit_error": 429, "api_error": 500, "overloaded_error": 503,
                  "timeout_error": 504, "request_too_large": 413}
# OpenAI's (type, code) for the statuses the service's own errors and injected faults produce.
_OPENAI_TYPE = {401: ("invalid_request_error", "invalid_api_key"), 429: ("requests", "rate_limit_exceeded"),
                500: ("server_error", None), 503: ("server_error", None), 529: ("server_error", None)}
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
           "refusal": "content_filter"}
_NL = orjson.OPT_APPEND_NEWLINE


def is_openai_path(path: str) -> bool:
    """Whether ``path`` is served by the OpenAI routes (and so answers in OpenAI's error envelope).

    Examples
    --------
    >>> is_openai_path("/v1/files/file-1/content"), is_openai_path("/v1/messages/batches")
    (True, False)
    """
    return any(path == p or path.startswith(p + "/") for p in OPENAI_PATHS)


def error_envelope(exc: ServiceRequestError) -> dict[str, Any]:
    """OpenAI's error envelope for any refusal (an :class:`OpenAIRequestError` keeps its param and code).

    Examples
    --------
    >>> error_envelope(ServiceRequestError("Overloaded (injected fault).", status=529, error_type="overloaded_error"))
    {'error': {'message': 'Overloaded (injected fault).', 'type': 'server_error', 'param': None, 'code': None}}
    """
    if isinstance(exc, OpenAIRequestError):
        return error_body(exc.message, exc.error_type, exc.param, exc.code)
    kind, code = _OPENAI_TYPE.get(exc.status, ("invalid_request_error", None))
    return error_body(exc.message, kind, None, code)


def error_body(message: str, kind: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    """``{"error": {...}}`` with every one of OpenAI's four fields.

    Examples
    --------
    >>> error_body("Missing required parameter: 'messages'.", param="messages", code="missing_required_parameter")
    {'error': {'message': "Missing required parameter: 'messages'.", 'type': 'invalid_request_error', \
'param': 'messages', 'code': 'missing_required_parameter'}}
    """
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def key_refusal(key: bytes | None, required: str | None) -> OpenAIRequestError | None:
    """401 as OpenAI words it when the Bearer key is missing, or is not the one the service requires.

    Examples
    --------
    >>> key_refusal(b"sk-1", None) is None, key_refusal(None, None).status
    (True, 401)
    """
    if not key:
        return OpenAIRequestError(
            "You didn't provide an API key. You need to provide your API key in an Authorization header using "
            "Bearer auth (i.e. Authorization: Bearer YOUR_KEY).", status=401)
    if required is not None and key.decode("latin-1") != required:
        shown = key.decode("latin-1")
        masked = f"{shown[:3]}{'*' * max(0, len(shown) - 7)}{shown[-4:]}" if len(shown) > 8 else "***"
        return OpenAIRequestError(f"Incorrect API key provided: {masked}.", status=401, code="invalid_api_key")
    return None


def file_object(row: Mapping[str, Any]) -> dict[str, Any]:
    """The File object of an ``openai_files`` row (``status`` is always ``processed`` here).

    Examples
    --------
    >>> file_object({"id": "file-1", "bytes": 3, "created_at": 1, "expires_at": None, "filename": "a.jsonl",
    ...              "purpose": "batch"})
    {'id': 'file-1', 'object': 'file', 'bytes': 3, 'created_at': 1, 'filename': 'a.jsonl', 'purpose': 'batch', \
'status': 'processed'}
    """
    out = {"id": row["id"], "object": "file", "bytes": row["bytes"], "created_at": row["created_at"]}
    if row["expires_at"] is not None:
        out["expires_at"] = row["expires_at"]
    return {**out, "filename": row["filename"], "purpose": row["purpose"], "status": "processed"}


_TIMES = ("in_progress_at", "expires_at", "finalizing_at", "completed_at", "failed_at", "expired_at",
          "cancelling_at", "cancelled_at")
#: Every column :func:`batch_object` reads (a row missing some can be padded with None).
BATCH_FIELDS = ("id", "endpoint", "model", "errors", "input_file_id", "completion_window", "status",
                "output_file_id", "error_file_id", "created_at", *_TIMES, "n_requests", "succeeded", "errored",
                "expired", "usage", "metadata")


def batch_object(row: Mapping[str, Any]) -> dict[str, Any]:
    """The Batch object of an ``openai_batches`` row joined with its ``batches`` counters.

    ``request_counts``: ``completed`` = succeeded requests, ``failed`` = requests that ran and failed plus
    expired ones; cancelled requests are in neither (they are in the error file, ``batch_cancelled``).

    Examples
    --------
    >>> row = {**dict.fromkeys(BATCH_FIELDS), "id": "batch_1", "endpoint": "/v1/embeddings",
    ...        "input_file_id": "file-1", "completion_window": "24h", "status": "validating", "created_at": 5}
    >>> obj = batch_object(row)
    >>> obj["status"], obj["request_counts"], "output_file_id" in obj
    ('validating', {'total': 0, 'completed': 0, 'failed': 0}, False)
    """
    out: dict[str, Any] = {"id": row["id"], "object": "batch", "endpoint": row["endpoint"]}
    if row["model"] is not None:
        out["model"] = row["model"]
    if row["errors"] is not None:
        out["errors"] = {"object": "list", "data": orjson.loads(row["errors"])}
    out.update(input_file_id=row["input_file_id"], completion_window=row["completion_window"],
               status=row["status"])
    for key in ("output_file_id", "error_file_id"):
        if row[key] is not None:
            out[key] = row[key]
    out["created_at"] = row["created_at"]
    out.update({key: row[key] for key in _TIMES if row[key] is not None})
    out["request_counts"] = {"total": row["n_requests"] or 0, "completed": row["succeeded"] or 0,
                             "failed": (row["errored"] or 0) + (row["expired"] or 0)}
    if row["usage"] is not None:
        out["usage"] = orjson.loads(row["usage"])
    out["metadata"] = orjson.loads(row["metadata"]) if row["metadata"] is not None else None
    return out


def list_page(data: list[dict[str, Any]], has_more: bool, *, ids_required: bool = False) -> dict[str, Any]:
    """A list page; ``first_id``/``last_id`` are left out of an empty page, or null if ``ids_required``.

    Examples
    --------
    >>> list_page([], False), list_page([], False, ids_required=True)["first_id"]
    ({'object': 'list', 'data': [], 'has_more': False}, None)
    """
    out: dict[str, Any] = {"object": "list", "data": data}
    if data or ids_required:
        out.update(first_id=data[0]["id"] if data else None, last_id=data[-1]["id"] if data else None)
    out["has_more"] = has_more
    return out


def chat_completion(completion: Completion, model: str, created: int) -> dict[str, Any]:
    """A ``chat.completion`` for an engine's completion (text blocks joined, tool_use -> tool_calls).

    Examples
    --------
    >>> body = chat_completion(Completion([{"type": "text", "text": "hi"}], "end_turn", 3, 1), "echo", 0)
    >>> body["choices"][0]["message"]["content"], body["choices"][0]["finish_reason"], body["usage"]["total_tokens"]
    ('hi', 'stop', 4)
    """
    texts = [b["text"] for b in completion.content if b.get("type") == "text"]
    calls = [{"id": "call_" + str(b["id"]).removeprefix("toolu_"), "type": "function",
              "function": {"name": b["name"], "arguments": orjson.dumps(b.get("input", {})).decode()}}
             for b in completion.content if b.get("type") == "tool_use"]
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None,
                               "refusal": None, "annotations": []}
    if calls:
        message["tool_calls"] = calls
    choice = {"index": 0, "message": message, "logprobs": None,
              "finish_reason": _FINISH.get(completion.stop_reason, "stop")}
    usage = {"prompt_tokens": completion.input_tokens, "completion_tokens": completion.output_tokens,
             "total_tokens": completion.input_tokens + completion.output_tokens,
             "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
             "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                           "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
    return {"id": random_id("chatcmpl-"), "object": "chat.completion", "created": created, "model": model,
            "choices": [choice], "usage": usage, "service_tier": "default", "system_fingerprint": None}


def embedding_list(vectors: Sequence[Sequence[float]], model: str, tokens: int, *,
                   encoding_format: str = "float") -> dict[str, Any]:
    """The embeddings answer; ``base64`` holds each vector as little-endian float32 bytes (as the SDK expects).

    Examples
    --------
    >>> embedding_list([[0.6, 0.8]], "text-embedding-3-small", 2)["data"][0]
    {'object': 'embedding', 'index': 0, 'embedding': [0.6, 0.8]}
    """
    def encode(vector: Sequence[float]) -> Any:
        if encoding_format == "base64":
            return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
        return list(vector)

    data = [{"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(vectors)]
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def output_line(custom_id: str, status_code: int, body: Mapping[str, Any]) -> bytes:
    """One line of a batch output (2xx) or error (4xx/5xx) file: ``response`` filled, ``error`` null.

    Examples
    --------
    >>> output_line("r1", 400, error_body("bad"))[:40]
    b'{"id":"batch_req_...
    """
    response = {"status_code": status_code, "request_id": random_id("req_"), "body": body}
    return orjson.dumps({"id": random_id("batch_req_"), "custom_id": custom_id, "response": response,
                         "error": None}, option=_NL)


_UNFINISHED = {"canceled": ("batch_cancelled", "This request was cancelled before it was executed."),
               "expired": ("batch_expired",
                           "This request could not be executed before the completion window expired.")}


def unfinished_line(custom_id: str, kind: str) -> bytes:
    """The error-file line of a request that never ran (``kind`` ``canceled`` or ``expired``).

    Examples
    --------
    >>> line = orjson.loads(unfinished_line("r1", "expired"))
    >>> line["response"], line["error"]["code"]
    (None, 'batch_expired')
    """
    code, message = _UNFINISHED[kind]
    return orjson.dumps({"id": random_id("batch_req_"), "custom_id": custom_id, "response": None,
                         "error": {"code": code, "message": message}}, option=_NL)
