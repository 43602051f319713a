"""Wire shapes of the API: MessageBatch, list page, Message, result lines, error envelopes.

Pure functions from plain data to plain data (or ready-to-send bytes), so they are easy to check against
the OpenAPI schemas.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from .engines.base import Completion
from .ids import random_id, rfc3339

#: Results are archived (no longer downloadable) this long after creation, as with the real API.
ARCHIVE_AFTER_US = 29 * 86400 * 1_000_000
_NL = orjson.OPT_APPEND_NEWLINE


def batch_object(row: Mapping[str, Any], base_url: str, now_us: int) -> dict[str, Any]:
    """The MessageBatch object of a ``batches`` row; ``results_url`` is absolute on ``base_url``.

    Examples
    --------
    >>> row = {"id": "msgbatch_1", "processing_status": "ended", "n_requests": 2, "succeeded": 1,
    ...        "errored": 1, "canceled": 0, "expired": 0, "created_us": 0, "expires_us": 86400000000,
    ...        "ended_us": 5000000, "cancel_us": None}
    >>> batch_object(row, "http://127.0.0.1:8765", now_us=10)["results_url"]
    'http://127.0.0.1:8765/v1/messages/batches/msgbatch_1/results'
    """
    counts = {k: row[k] for k in ("succeeded", "errored", "canceled", "expired")}
    processing = row["n_requests"] - sum(counts.values())
    ended = row["processing_status"] == "ended"
    archive_us = row["created_us"] + ARCHIVE_AFTER_US
    return {
        "id": row["id"],
        "type": "message_batch",
        "processing_status": row["processing_status"],
        "request_counts": {"processing": processing, **counts},
        "ended_at": rfc3339(row["ended_us"]),
        "created_at": rfc3339(row["created_us"]),
        "expires_at": rfc3339(row["expires_us"]),
        "archived_at": rfc3339(archive_us) if now_us >= archive_us else None,
        "cancel_initiated_at": rfc3339(row["cancel_us"]),
        "results_url": f"{base_url}/v1/messages/batches/{row['id']}/results" if ended else None,
    }


def list_page(batches: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    """The list page object; ``first_id``/``last_id`` are null when the page is empty.

    Examples
    --------
    >>> list_page([], False)
    {'data': [], 'has_more': False, 'first_id': None, 'last_id': None}
    """
    return {"data": batches, "has_more": has_more,
            "first_id": batches[0]["id"] if batches else None,
            "last_id": batches[-1]["id"] if batches else None}


def message(completion: Completion, model: str, *, service_tier: str) -> dict[str, Any]:
    """A full Messages API ``Message`` for an engine's completion (every field the spec requires).

    Examples
    --------
    >>> msg = message(Completion([{"type": "text", "text": "hi"}], "end_turn", 3, 1), "echo",
    ...               service_tier="batch")
    >>> msg["content"], msg["usage"]["service_tier"]
    ([{'type': 'text', 'text': 'hi', 'citations': None}], 'batch')
    """
    return {
        "id": random_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [_full_block(b) for b in completion.content],
        "stop_reason": completion.stop_reason,
        "stop_sequence": completion.stop_sequence,
        "stop_details": None,
        "container": None,
        "usage": {
            "input_tokens": completion.input_tokens,
            "output_tokens": completion.output_tokens,
            "cache_creation_input_tokens": completion.cache_creation_input_tokens,
            "cache_read_input_tokens": completion.cache_read_input_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": completion.cache_creation_input_tokens
                - completion.cache_creation_1h_input_tokens,
                "ephemeral_1h_input_tokens": completion.cache_creation_1h_input_tokens,
            },
            "server_tool_use": None,
            "service_tier": service_tier,
            "inference_geo": "not_available",
        },
    }


def _full_block(block: dict[str, Any]) -> dict[str, Any]:
    # The spec requires these fields on response blocks; engines may leave them out.
    kind = block.get("type")
    if kind == "text" and "citations" not in block:
        return {**block, "citations": None}
    if kind == "tool_use" and "caller" not in block:
        return {**block, "caller": {"type": "direct"}}
    return block


def error_envelope(error_type: str, message: str, request_id: str | None) -> dict[str, Any]:
    """The API's error envelope.

    Examples
    --------
    >>> error_envelope("not_found_error", "model: x", None)
    {'type': 'error', 'error': {'type': 'not_found_error', 'message': 'model: x'}, 'request_id': None}
    """
    return {"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id}


def succeeded_line(custom_id: str, msg: dict[str, Any]) -> bytes:
    """A ``succeeded`` result line, newline-terminated (stored as is, streamed as is)."""
    return orjson.dumps({"custom_id": custom_id, "result": {"type": "succeeded", "message": msg}}, option=_NL)


def errored_line(custom_id: str, error_type: str, message: str, request_id: str | None = None) -> bytes:
    """An ``errored`` result line; ``result.error`` is a whole error envelope, as the API sends it.

    Examples
    --------
    >>> errored_line("r1", "not_found_error", "model: x")[:60]
    b'{"custom_id":"r1","result":{"type":"errored","error":{"type"'
    """
    error = error_envelope(error_type, message, request_id)
    return orjson.dumps({"custom_id": custom_id, "result": {"type": "errored", "error": error}}, option=_NL)
