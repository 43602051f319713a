"""The engine contract of the local service: one small class answers a Messages request.

An engine receives ``params``, a Messages create body that the service has already validated against the
API's schema (:mod:`batchframe.server.validation`: every field's type, limits, tools, content blocks), and
returns a :class:`Completion`. The service
wraps it into a Message (id, type, role, model, usage) and into a result line.

A new engine is a subclass with ``name``, ``model_ids`` and ``complete``; ``register_engine`` makes it
available to ``batchframe serve --engine NAME``.

Threads: the worker calls ``complete_many`` from its thread while ``POST /v1/messages`` may call
``complete`` from a request thread at the same time; an engine with state that is not thread-safe (a
model context) takes a lock inside. ``count_tokens`` defaults to the echo rule (``text.py``).

Structured outputs: a request may carry a JSON schema its answer text must follow, as
``output_config.format`` (GA) or the deprecated beta ``output_format``; ``json_output_schema`` reads it. An
engine answers in text with JSON valid against that schema (unless ``max_tokens`` or a stop sequence cuts
it); a tool the request forces is still answered with a ``tool_use`` block, the schema being for text.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import ServiceError


@dataclass(frozen=True)
class Completion:
    """What an engine produced for one request."""

    content: list[dict[str, Any]]  # content blocks: {"type": "text", ...} / {"type": "tool_use", ...}
    stop_reason: str  # "end_turn" | "max_tokens" | "stop_sequence" | "tool_use"
    input_tokens: int  # not counting the cache tokens below, as the API counts them
    output_tokens: int
    stop_sequence: str | None = None
    cache_creation_input_tokens: int = 0  # prefix tokens written to the prompt cache (all TTLs)
    cache_read_input_tokens: int = 0  # prefix tokens read from it
    cache_creation_1h_input_tokens: int = 0  # the share of the writes with a 1-hour TTL


@dataclass(frozen=True)
class Embeddings:
    """What an engine produced for one embeddings request: one vector per input, and the input tokens."""

    vectors: list[list[float]]
    input_tokens: int


class EngineError(ServiceError):
    """One request failed inside an engine; it becomes an errored result line of that type."""

    def __init__(self, message: str, *, error_type: str = "api_error"):
        self.error_type = error_type
        self.message = message
        super().__init__(message)


def json_output_schema(params: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The JSON schema a request's answer text must follow, with the field it came from; None without one.

    ``output_config.format`` (GA) or beta ``output_format``, each ``{"type": "json_schema", "schema": {...}}``.
    A malformed format, or both fields at once, raises :class:`EngineError` (``invalid_request_error``).

    Examples
    --------
    >>> json_output_schema({"output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}}})
    ('output_config.format', {'type': 'object'})
    >>> json_output_schema({"output_config": {"effort": "low"}}) is None
    True
    """
    config = params.get("output_config")
    ga = config.get("format") if isinstance(config, Mapping) else None
    beta = params.get("output_format")
    if ga is not None and beta is not None:
        raise EngineError("output_format: cannot be given together with output_config.format; use only "
                          "output_config.format (output_format is deprecated)", error_type="invalid_request_error")
    field, fmt = ("output_config.format", ga) if ga is not None else ("output_format", beta)
    if fmt is None:
        return None
    if not isinstance(fmt, Mapping) or fmt.get("type") != "json_schema":
        raise EngineError(f"{field}: Input should be an object with type 'json_schema'",
                          error_type="invalid_request_error")
    schema = fmt.get("schema")
    if not isinstance(schema, Mapping):
        raise EngineError(f"{field}.schema: Input should be a valid dictionary", error_type="invalid_request_error")
    return field, dict(schema)


class Engine(ABC):
    """Answers Messages requests for the local service.

    Class attributes
    ----------------
    name : str
        Registry key (``--engine NAME``), also the ``model`` reported in results unless overridden.
    model_ids : tuple of str
        The engine's own model names, accepted besides the Claude model ids.
    max_concurrency : int
        How many requests the worker hands to ``complete_many`` at once.
    """

    name: ClassVar[str]
    model_ids: ClassVar[tuple[str, ...]] = ()
    max_concurrency: ClassVar[int] = 4

    @property
    def model_name(self) -> str:
        """The ``model`` field of the Messages this engine answers."""
        return self.model_ids[0] if self.model_ids else self.name

    @abstractmethod
    def complete(self, params: Mapping[str, Any]) -> Completion:
        """Answer one validated Messages request, or raise :class:`EngineError`."""

    def complete_many(self, batch: Sequence[Mapping[str, Any]]) -> list[Completion | EngineError]:
        """Answer several requests; engines that decode in batches override this."""
        out: list[Completion | EngineError] = []
        for params in batch:
            try:
                out.append(self.complete(params))
            except EngineError as exc:
                out.append(exc)
        return out

    def embed(self, inputs: Sequence[str | Sequence[int]], *, model: str,
              dimensions: int | None = None) -> Embeddings:
        """Embed each input (a text, or a list of token ids) for the OpenAI ``/v1/embeddings`` API.

        ``model`` is the requested model id, ``dimensions`` the requested vector length (None: the
        engine's default for that model). Engines without embeddings keep this default, which refuses.
        """
        raise EngineError(f"the {self.name!r} engine does not compute embeddings; run the service with "
                          "--engine echo or --engine llama", error_type="invalid_request_error")

    def count_tokens(self, params: Mapping[str, Any]) -> int:
        """Input tokens of a request; the default counts like the echo engine (see ``text.py``)."""
        from .text import input_tokens

        return input_tokens(params)

    def close(self) -> None:  # noqa: B027 - optional hook, deliberately a no-op by default
        """Release resources (model weights, HTTP clients)."""


_ENGINES: dict[str, type[Engine]] = {}


def register_engine(cls: type[Engine]) -> type[Engine]:
    """Register an engine class under ``cls.name`` (usable as a decorator)."""
    _ENGINES[cls.name] = cls
    return cls


def engine_names() -> list[str]:
    _load_builtins()
    return sorted(_ENGINES)


def make_engine(name: str, **options: Any) -> Engine:
    """Instantiate a registered engine by name, e.g. ``make_engine("echo", latency=0.01)``."""
    _load_builtins()
    try:
        cls = _ENGINES[name]
    except KeyError:
        raise ServiceError(f"unknown engine {name!r}; known engines: {', '.join(sorted(_ENGINES))}") from None
    return cls(**options)


def _load_builtins() -> None:
    # Imported lazily: the llama engine imports llama_cpp, which only the `local` extra installs.
    import importlib

    for module in ("echo", "openai_compat", "llama"):
        try:
            importlib.import_module(f"{__package__}.{module}")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith(f"{__package__}.{module}"):
                continue  # that engine is not written yet
            raise
