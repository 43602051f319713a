"""Which models the local service answers, and the checks every Messages request passes first.

The service accepts the current Claude model ids (aliases and dated forms), answered by its engine, plus
the engine's own model names. Anything else is ``not_found_error``, as with the real API. Checks here run
per request, in the worker, so a bad request becomes an errored line and never fails its batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# alias -> (dated id reported in messages, max output tokens)
_CLAUDE: dict[str, tuple[str, int]] = {
    "claude-opus-4-7": ("claude-opus-4-7", 128000),
    "claude-opus-4-6": ("claude-opus-4-6", 128000),
    "claude-sonnet-4-6": ("claude-sonnet-4-6", 64000),
    "claude-haiku-4-5": ("claude-haiku-4-5-20251001", 64000),
    "claude-opus-4-5": ("claude-opus-4-5-20251101", 64000),
    "claude-sonnet-4-5": ("claude-sonnet-4-5-20250929", 64000),
    "claude-opus-4-1": ("claude-opus-4-1-20250805", 32000),
    "claude-opus-4-0": ("claude-opus-4-20250514", 32000),
    "claude-sonnet-4-0": ("claude-sonnet-4-20250514", 64000),
    "claude-3-7-sonnet-latest": ("claude-3-7-sonnet-20250219", 64000),
    "claude-3-5-haiku-latest": ("claude-3-5-haiku-20241022", 8192),
    "claude-3-5-sonnet-latest": ("claude-3-5-sonnet-20241022", 8192),
    "claude-3-haiku-20240307": ("claude-3-haiku-20240307", 4096),
    "claude-3-opus-latest": ("claude-3-opus-20240229", 4096),
}
#: Every accepted Claude id (alias or dated) -> (dated id, max output tokens).
CLAUDE_MODELS: dict[str, tuple[str, int]] = {
    **_CLAUDE, **{dated: (dated, cap) for dated, cap in _CLAUDE.values()}}
#: Cap on max_tokens for the engine's own model names.
ENGINE_MAX_TOKENS = 64000

#: Keys a Messages create body may have (CreateMessageParams in the OpenAPI spec).
PARAMS_KEYS = frozenset({
    "model", "messages", "cache_control", "container", "inference_geo", "max_tokens", "metadata",
    "output_config", "service_tier", "stop_sequences", "stream", "system", "temperature", "thinking",
    "tool_choice", "tools", "top_k", "top_p",
})
#: Keys of a count_tokens body (CountMessageTokensParams).
COUNT_KEYS = frozenset({"model", "messages", "cache_control", "output_config", "system", "thinking",
                        "tool_choice", "tools"})


class RequestInvalid(Exception):
    """A Messages request the service will not run: becomes an errored line, or a 400/404 when synchronous."""

    def __init__(self, error_type: str, message: str):
        self.error_type = error_type
        self.message = message
        super().__init__(message)


def check_params(params: Any, engine_models: tuple[str, ...], *, batch: bool = True) -> str:
    """Check one Messages create body; return the model id its Message reports.

    Raises
    ------
    RequestInvalid
        With the API's error type and message, e.g. ``not_found_error`` / ``"model: claude-x"``.

    Examples
    --------
    >>> check_params({"model": "claude-haiku-4-5", "max_tokens": 5,
    ...               "messages": [{"role": "user", "content": "hi"}]}, ())
    'claude-haiku-4-5-20251001'
    """
    if not isinstance(params, Mapping):
        raise RequestInvalid("invalid_request_error", "params: Input should be a valid dictionary")
    extra = sorted(set(params) - PARAMS_KEYS)
    if extra:
        raise RequestInvalid("invalid_request_error", f"{extra[0]}: Extra inputs are not permitted")
    for key in ("model", "messages", "max_tokens"):
        if key not in params:
            raise RequestInvalid("invalid_request_error", f"{key}: Field required")
    model, cap = _resolve_model(params["model"], engine_models)
    _check_max_tokens(params["max_tokens"], cap, model, batch=batch)
    if params.get("stream"):
        raise RequestInvalid("invalid_request_error",
                             "stream: Streaming is not supported in Message Batches.")
    check_messages(params["messages"])
    stops = params.get("stop_sequences")
    if stops is not None and not (isinstance(stops, list) and all(isinstance(s, str) for s in stops)):
        raise RequestInvalid("invalid_request_error",
                             "stop_sequences: Input should be a valid list of strings")
    return model


def check_count_params(params: Any, engine_models: tuple[str, ...]) -> None:
    """Check a count_tokens body (model and messages, no max_tokens)."""
    if not isinstance(params, Mapping):
        raise RequestInvalid("invalid_request_error", "Input should be a valid dictionary")
    extra = sorted(set(params) - COUNT_KEYS)
    if extra:
        raise RequestInvalid("invalid_request_error", f"{extra[0]}: Extra inputs are not permitted")
    for key in ("model", "messages"):
        if key not in params:
            raise RequestInvalid("invalid_request_error", f"{key}: Field required")
    _resolve_model(params["model"], engine_models)
    check_messages(params["messages"])


def _resolve_model(model: Any, engine_models: tuple[str, ...]) -> tuple[str, int]:
    if not isinstance(model, str):
        raise RequestInvalid("invalid_request_error", "model: Input should be a valid string")
    if model in engine_models:
        return model, ENGINE_MAX_TOKENS
    try:
        return CLAUDE_MODELS[model]
    except KeyError:
        raise RequestInvalid("not_found_error", f"model: {model}") from None


def _check_max_tokens(value: Any, cap: int, model: str, *, batch: bool) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise RequestInvalid("invalid_request_error", "max_tokens: Input should be a valid integer")
    low = 1 if batch else 0  # the sync API allows 0 (cache pre-warming); batches do not
    if value < low:
        raise RequestInvalid("invalid_request_error", f"max_tokens: must be greater than or equal to {low}")
    if value > cap:
        raise RequestInvalid("invalid_request_error", f"max_tokens: {value} > {cap}, which is the maximum "
                             f"allowed number of output tokens for {model}")


def check_messages(messages: Any) -> None:
    """Check the ``messages`` list: non-empty, roles user/assistant, content a string or a list of blocks."""
    if not isinstance(messages, list):
        raise RequestInvalid("invalid_request_error", "messages: Input should be a valid list")
    if not messages:
        raise RequestInvalid("invalid_request_error", "messages: at least one message is required")
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise RequestInvalid("invalid_request_error", f"messages.{i}: Input should be a valid dictionary")
        if message.get("role") not in ("user", "assistant"):
            raise RequestInvalid("invalid_request_error",
                                 f"messages.{i}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        if not isinstance(content, str | list):
            raise RequestInvalid("invalid_request_error", f"messages.{i}.content: Field required")
        if isinstance(content, list) and not all(isinstance(b, Mapping) and "type" in b for b in content):
            raise RequestInvalid("invalid_request_error",
                                 f"messages.{i}.content: each block needs a 'type'")
    if messages[0].get("role") != "user":
        raise RequestInvalid("invalid_request_error", "messages: first message must use the \"user\" role")
