"""Which OpenAI model ids the local service answers (through its engine), and their embedding sizes.

The service accepts current OpenAI chat model ids (aliases such as ``gpt-4o-mini`` and their dated
forms such as ``gpt-4o-mini-2024-07-18``) and embedding model ids, plus the engine's own model names.
Anything else is OpenAI's 404 ``model_not_found``. Whatever the id, the service's engine answers.
"""

from __future__ import annotations

import re

_CHAT_ALIASES = frozenset({
    "gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-5.1", "gpt-5-chat-latest",
    "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano",
    "gpt-4o", "gpt-4o-mini", "chatgpt-4o-latest",
    "o1", "o3", "o3-mini", "o4-mini",
    "gpt-4-turbo", "gpt-4", "gpt-3.5-turbo",
})
_DATED = re.compile(r"(?P<alias>.+)-\d{4}-\d{2}-\d{2}")
#: Embedding model id -> (default vector length, whether the ``dimensions`` parameter is accepted).
EMBEDDING_MODELS: dict[str, tuple[int, bool]] = {
    "text-embedding-3-small": (1536, True),
    "text-embedding-3-large": (3072, True),
    "text-embedding-ada-002": (1536, False),
}
#: Vector length of an engine's own model name used as an embedding model.
ENGINE_EMBEDDING_DIMENSIONS = 1536


def is_chat_model(model: str, engine_models: tuple[str, ...] = ()) -> bool:
    """Whether ``model`` names a chat model the service answers.

    Examples
    --------
    >>> is_chat_model("gpt-4o-mini"), is_chat_model("gpt-4o-mini-2024-07-18"), is_chat_model("gpt-9")
    (True, True, False)
    """
    if model in _CHAT_ALIASES or model in engine_models:
        return True
    dated = _DATED.fullmatch(model)
    return dated is not None and dated["alias"] in _CHAT_ALIASES


def is_embedding_model(model: str, engine_models: tuple[str, ...] = ()) -> bool:
    """Whether ``model`` names an embedding model the service answers.

    Examples
    --------
    >>> is_embedding_model("text-embedding-3-large"), is_embedding_model("gpt-4o")
    (True, False)
    """
    return model in EMBEDDING_MODELS or model in engine_models


def embedding_dimensions(model: str) -> int:
    """Default vector length of an embedding model (1536 for an engine's own model name).

    Examples
    --------
    >>> embedding_dimensions("text-embedding-3-small"), embedding_dimensions("text-embedding-3-large")
    (1536, 3072)
    """
    return EMBEDDING_MODELS.get(model, (ENGINE_EMBEDDING_DIMENSIONS, True))[0]


def accepts_dimensions(model: str) -> bool:
    """Whether the ``dimensions`` parameter is allowed for ``model`` (not for ``text-embedding-ada-002``).

    Examples
    --------
    >>> accepts_dimensions("text-embedding-ada-002")
    False
    """
    return EMBEDDING_MODELS.get(model, (0, True))[1]
