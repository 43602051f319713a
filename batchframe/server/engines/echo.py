"""The ``echo`` engine: deterministic, fast, no dependencies; the engine of the tests.

Its answer is the text of the last user message. With a system prompt, the answer is
``"[<system>] <text>"``, so tests can see the system prompt arrived. Then:

- ``stop_sequences``: the answer is cut before the earliest stop sequence it contains
  (stop_reason ``stop_sequence``, ``stop_sequence`` set);
- ``max_tokens``: the answer is cut after ``max_tokens`` tokens (stop_reason ``max_tokens``);
- ``tools``: with ``tool_choice`` ``{"type": "tool", "name": N}`` it calls tool N; with ``"any"`` it calls
  the first tool whose name occurs in the prompt, else the first tool; with ``"auto"`` (the default) it
  calls a tool only if its name occurs in the prompt; with ``"none"`` never. The call is a ``tool_use``
  block whose ``input`` satisfies the tool's ``input_schema`` (see ``schema_sample.py``), stop_reason
  ``tool_use``.
- structured outputs (``output_config.format``, or beta ``output_format``, with a JSON schema): when no tool
  is called, the answer is JSON valid against the schema, built from the prompt by ``schema_sample.py``
  (the same request gets the same JSON; its strings are the prompt's text), written with ``", "`` and
  ``": "`` separators, without the system-prompt prefix. ``stop_sequences`` and ``max_tokens`` cut it as
  any text (stop_reason ``stop_sequence`` / ``max_tokens``: the text is then a prefix of the JSON). A
  forced tool is still answered with a ``tool_use`` block: the schema is for text. A schema no value
  satisfies (an empty ``enum``) fails that request with ``invalid_request_error``.

Tokens: a token is a run of non-whitespace characters (see ``text.py``); a tool call's output tokens are
the tokens of its input JSON with punctuation read as spaces.

Prompt caching: a request with ``cache_control`` on a tool, system block or content block has a cached
prefix, everything up to its last such breakpoint (tools, then system, then messages). The first request
with a given prefix writes it (``cache_creation_input_tokens``, in ``ephemeral_1h_input_tokens`` for
``ttl: "1h"``); later ones read it (``cache_read_input_tokens``); ``input_tokens`` counts the rest. The
engine remembers the last :data:`CACHE_ENTRIES` prefixes for its lifetime (a restart forgets them) and
has no minimum length, so short test prefixes cache.

Embeddings (the OpenAI ``/v1/embeddings`` API): each input gets a deterministic unit vector. Its key is
the input's UTF-8 bytes (a list of token ids: the bytes of its compact JSON, ``[1,2,3]``); ``u_i`` is
the ``i``-th little-endian uint32 of SHAKE-256(key); the vector of length ``d`` is ``x / |x|`` with
``x_i = u_i / 2**31 - 1`` for ``i < d``. ``d`` is the request's ``dimensions``, else the model's default
(1536 for ``text-embedding-3-small`` and ``-ada-002``, 3072 for ``-large``, 1536 for ``echo``). So one text
always gets one vector, a shorter ``dimensions`` is the longer vector cut and renormalised (as OpenAI's
shortened embeddings are), and different texts get nearly orthogonal vectors. Input tokens count by the
rule below (a token-id list counts its length).

Options: ``latency`` seconds per request. The requests of one ``complete_many`` call run "concurrently",
as a model server batches them: the call takes ``latency`` once, not once per request.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import orjson

from ..openai_models import embedding_dimensions
from .base import Completion, Embeddings, Engine, EngineError, json_output_schema, register_engine
from .schema_sample import sample
from .text import content_text, count_tokens, cut_tokens, input_tokens, last_user_text, system_text

_JSON_WORD = re.compile(r"[A-Za-z0-9_.\-]+")
#: Prefixes the echo engine remembers for cache reads.
CACHE_ENTRIES = 10_000


@register_engine
class EchoEngine(Engine):
    """Answers each request with its own prompt (see the module docstring for the exact rules).

    Examples
    --------
    >>> EchoEngine().complete({"model": "echo", "max_tokens": 2,
    ...     "messages": [{"role": "user", "content": "one two three"}]}).content
    [{'type': 'text', 'text': 'one two'}]
    """

    name: ClassVar[str] = "echo"
    model_ids: ClassVar[tuple[str, ...]] = ("echo",)
    max_concurrency: ClassVar[int] = 1024

    def __init__(self, *, latency: float = 0.0, max_concurrency: int | None = None):
        self.latency = float(latency)
        # complete() runs on request threads while the worker runs complete_many: the cache has a lock.
        self._cache: OrderedDict[bytes, None] = OrderedDict()
        self._cache_lock = threading.Lock()
        if max_concurrency is not None:
            self.max_concurrency = int(max_concurrency)  # type: ignore[misc]

    def complete_many(self, batch: Sequence[Mapping[str, Any]]) -> list[Completion | EngineError]:
        if self.latency and batch:
            time.sleep(self.latency)
        return [self._answer_or_error(params) for params in batch]

    def _answer_or_error(self, params: Mapping[str, Any]) -> Completion | EngineError:
        try:
            return self._answer(params)
        except EngineError as exc:  # that request's own errored line; the others are answered
            return exc

    def complete(self, params: Mapping[str, Any]) -> Completion:
        if self.latency:
            time.sleep(self.latency)
        return self._answer(params)

    def embed(self, inputs: Sequence[str | Sequence[int]], *, model: str,
              dimensions: int | None = None) -> Embeddings:
        """Deterministic unit vectors (see the module docstring for the rule).

        Examples
        --------
        >>> out = EchoEngine().embed(["a cat", "a cat"], model="text-embedding-3-small", dimensions=4)
        >>> len(out.vectors[0]), out.vectors[0] == out.vectors[1], round(sum(x * x for x in out.vectors[0]), 6)
        (4, True, 1.0)
        """
        if self.latency:
            time.sleep(self.latency)
        size = dimensions or embedding_dimensions(model)
        vectors = [unit_vector(_embedding_key(item), size) for item in inputs]
        tokens = sum(count_tokens(item) if isinstance(item, str) else len(item) for item in inputs)
        return Embeddings(vectors, tokens)

    def _answer(self, params: Mapping[str, Any]) -> Completion:
        answer = self._uncached(params)
        prefix = cache_prefix(params)
        if prefix is None:
            return answer
        key, tokens, ttl = prefix
        rest = max(0, answer.input_tokens - tokens)
        if self._seen(key):
            return dataclasses.replace(answer, input_tokens=rest, cache_read_input_tokens=tokens)
        return dataclasses.replace(answer, input_tokens=rest, cache_creation_input_tokens=tokens,
                                   cache_creation_1h_input_tokens=tokens if ttl == "1h" else 0)

    def _seen(self, key: bytes) -> bool:
        """Whether the prefix was cached before; caches it now (the oldest is forgotten beyond the bound)."""
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return True
            self._cache[key] = None
            if len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)
            return False

    def _uncached(self, params: Mapping[str, Any]) -> Completion:
        messages = params["messages"]
        prompt = last_user_text(messages)
        n_in = input_tokens(params)
        output_schema = json_output_schema(params)  # first: a malformed format fails the request either way
        tool = _chosen_tool(params, prompt)
        if tool is not None:
            return _tool_call(tool, prompt, n_in)
        if output_schema is not None:
            return _cut(_structured_text(*output_schema, prompt), params, n_in)
        system = system_text(params.get("system"))
        text = f"[{system}] {prompt}" if system else prompt
        return _cut(text, params, n_in)


def cache_prefix(params: Mapping[str, Any]) -> tuple[bytes, int, str] | None:
    """The cached prefix of a request (up to its last ``cache_control``): its key, echo tokens and TTL.

    Examples
    --------
    >>> key, tokens, ttl = cache_prefix({"model": "echo", "system": [{"type": "text", "text": "Be brief.",
    ...     "cache_control": {"type": "ephemeral", "ttl": "1h"}}], "messages": [{"role": "user", "content": "hi"}]})
    >>> tokens, ttl
    (2, '1h')
    >>> cache_prefix({"model": "echo", "messages": [{"role": "user", "content": "hi"}]}) is None
    True
    """
    parts: list[tuple[Any, int]] = [(t, count_tokens(f"{t.get('name', '')} {t.get('description', '')}"))
                                    for t in params.get("tools") or () if isinstance(t, Mapping)]
    system = params.get("system")
    if system:
        blocks = [{"type": "text", "text": system}] if isinstance(system, str) else system
        parts += [(b, count_tokens(content_text([b]))) for b in blocks]
    for message in params.get("messages") or ():
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or ()
        parts += [({**b, "role": message.get("role")}, count_tokens(content_text([b]))) for b in blocks]
    marks = [i for i, (part, _) in enumerate(parts) if isinstance(part, Mapping) and part.get("cache_control")]
    if not marks:
        return None
    end = marks[-1] + 1
    plain = [{k: v for k, v in part.items() if k != "cache_control"} for part, _ in parts[:end]]
    key = hashlib.sha256(orjson.dumps([params.get("model"), plain], option=orjson.OPT_SORT_KEYS)).digest()
    return key, sum(n for _, n in parts[:end]), str(parts[marks[-1]][0]["cache_control"].get("ttl", "5m"))


def unit_vector(key: bytes, size: int) -> list[float]:
    """The echo engine's embedding of ``key``: ``size`` components from SHAKE-256, scaled to length 1.

    Examples
    --------
    >>> unit_vector(b"hi", 3) == unit_vector(b"hi", 3), len(unit_vector(b"hi", 5))
    (True, 5)
    """
    raw = np.frombuffer(hashlib.shake_256(key).digest(4 * size), dtype="<u4").astype(np.float64)
    x = raw / 2**31 - 1.0
    return (x / np.linalg.norm(x)).tolist()


def _embedding_key(item: str | Sequence[int]) -> bytes:
    return item.encode() if isinstance(item, str) else orjson.dumps(list(item))


def _cut(text: str, params: Mapping[str, Any], n_in: int) -> Completion:
    stop_at, stop_seq = len(text), None
    for seq in params.get("stop_sequences") or ():
        i = text.find(seq) if seq else -1
        if 0 <= i < stop_at:
            stop_at, stop_seq = i, seq
    text = text[:stop_at]
    max_tokens = params["max_tokens"]
    if count_tokens(text) > max_tokens:
        text = cut_tokens(text, max_tokens)
        return Completion([{"type": "text", "text": text}], "max_tokens", n_in, count_tokens(text))
    reason = "stop_sequence" if stop_seq is not None else "end_turn"
    return Completion([{"type": "text", "text": text}], reason, n_in, count_tokens(text), stop_seq)


def _structured_text(field: str, schema: dict[str, Any], prompt: str) -> str:
    """JSON text valid against ``schema``, derived from the prompt (deterministic)."""
    try:
        value = sample(schema, prompt)
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (ValueError, TypeError, LookupError, AttributeError, RecursionError) as exc:
        raise EngineError(f"{field}.schema: the echo engine cannot build a value for it: {exc}",
                          error_type="invalid_request_error") from None


def _chosen_tool(params: Mapping[str, Any], prompt: str) -> Mapping[str, Any] | None:
    tools = [t for t in params.get("tools") or () if isinstance(t, Mapping) and "input_schema" in t]
    if not tools:
        return None
    choice = params.get("tool_choice") or {"type": "auto"}
    kind = choice.get("type", "auto")
    named = [t for t in tools if t.get("name") and t["name"] in prompt]
    if kind == "tool":
        return next((t for t in tools if t.get("name") == choice.get("name")), None)
    if kind == "any":
        return (named or tools)[0]
    if kind == "auto":
        return named[0] if named else None
    return None


def _tool_call(tool: Mapping[str, Any], prompt: str, n_in: int) -> Completion:
    value = sample(tool["input_schema"], prompt)
    if not isinstance(value, dict):
        value = {}
    tool_id = f"toolu_echo{zlib.crc32(orjson.dumps([tool['name'], prompt])):010d}"
    n_out = len(_JSON_WORD.findall(orjson.dumps(value).decode()))
    block = {"type": "tool_use", "id": tool_id, "name": tool["name"], "input": value}
    return Completion([block], "tool_use", n_in, max(1, n_out))
