"""Which models the local service answers, and the error a Messages request is refused with.

The service accepts the current Claude model ids (aliases and dated forms), answered by its engine, plus
the engine's own model names. Anything else is ``not_found_error``, as with the real API. The checks of a
whole request live in ``validation.py``; they run per request, in the worker, so a bad request becomes an
errored line and never fails its batch.
"""

from __future__ import annotations

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

class RequestInvalid(Exception):
    """A Messages request the service will not run: becomes an errored line, or a 400/404 when synchronous."""

    def __init__(self, error_type: str, message: str):
        self.error_type = error_type
        self.message = message
        super().__init__(message)


def resolve_model(model: Any, engine_models: tuple[str, ...]) -> tuple[str, int]:
    """(model id its Messages report, max output tokens) of a requested model, or ``not_found_error``.

    Examples
    --------
    >>> resolve_model("claude-haiku-4-5", ())
    ('claude-haiku-4-5-20251001', 64000)
    """
    if not isinstance(model, str):
        raise RequestInvalid("invalid_request_error", "model: Input should be a valid string")
    if model in engine_models:
        return model, ENGINE_MAX_TOKENS
    try:
        return CLAUDE_MODELS[model]
    except KeyError:
        raise RequestInvalid("not_found_error", f"model: {model}") from None


def check_max_tokens(value: Any, cap: int, model: str, *, batch: bool) -> None:
    """``max_tokens`` within ``cap``, and >= 1 in a batch (the sync API allows 0 to pre-warm the cache)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise RequestInvalid("invalid_request_error", "max_tokens: Input should be a valid integer")
    low = 1 if batch else 0  # the sync API allows 0 (cache pre-warming); batches do not
    if value < low:
        raise RequestInvalid("invalid_request_error", f"max_tokens: must be greater than or equal to {low}")
    if value > cap:
        raise RequestInvalid("invalid_request_error", f"max_tokens: {value} > {cap}, which is the maximum "
                             f"allowed number of output tokens for {model}")
