"""Tokens/s of the llama engine vs bare llama-cpp-python on the same prompts (SmolLM2-135M, 2 threads).

Every contender answers the same chat prompts greedily (temperature 0) with the same max_tokens:

* bare sequential: ``Llama.create_chat_completion`` once per prompt (plain llama-cpp-python usage);
* bare 2 contexts: two ``Llama`` objects with one thread each, each answering half the prompts in its
  own Python thread (llama.cpp releases the GIL while it decodes);
* bare batched: llama.cpp's low-level API, every sequence in one context, one token per sequence per
  ``llama_decode`` (written here from llama-cpp-python's ctypes API, sharing no code with the engine);
* engine: ``make_engine("llama").complete_many(requests)`` with the Messages requests, as configured by
  default (two single-threaded contexts, 8 sequences each) and with one context using both threads.

The rounds are interleaved, in one process, back to back, and each figure is the best of its rounds:
the machine may be shared, and load only ever makes a round slower. Tokens/s = output tokens sampled /
wall time (prompt processing included). Target: the engine >= 90% of bare llama-cpp-python running the
same strategy (two single-threaded contexts, batched), judged on the median of the per-round ratios of
the two measured back to back (best-of-rounds figures of different contenders may come from different
load conditions).

Run: .venv/bin/python benchmarks/bench_llama.py [n_prompts] [max_tokens] [rounds]
"""

from __future__ import annotations

import sys
import threading
import time

import llama_cpp
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from batchframe.server.engines import make_engine
from batchframe.server.engines.llama_runtime import default_model_path

TOPICS = ["the sea", "bees", "rain", "volcanoes", "chess", "tea", "trains", "owls", "jazz", "glaciers",
          "bread", "kites", "deserts", "comets", "coral", "maps", "bridges", "clocks", "salt", "wolves",
          "paper", "cheese", "islands", "lightning", "violins", "moss", "tides", "copper", "foxes", "dunes",
          "lanterns", "orchids"]
THREADS = 2


def prompts(n: int) -> list[str]:
    return [f"Write two sentences about {TOPICS[i % len(TOPICS)]}." for i in range(n)]


def load(n_threads: int = THREADS, n_ctx: int = 512) -> llama_cpp.Llama:
    return llama_cpp.Llama(model_path=str(default_model_path()), n_ctx=n_ctx, n_threads=n_threads,
                           n_threads_batch=n_threads, verbose=False)


def bare_sequential(llm: llama_cpp.Llama, texts: list[str], max_tokens: int) -> int:
    tokens = 0
    for text in texts:
        out = llm.create_chat_completion([{"role": "user", "content": text}], max_tokens=max_tokens,
                                         temperature=0.0)
        tokens += out["usage"]["completion_tokens"]
    return tokens


def bare_two_contexts(llms: list, texts: list[str], max_tokens: int, run=None) -> int:
    """Each context answers every other prompt, in its own thread (``run`` default: sequentially)."""
    counts = [0] * len(llms)

    def work(i: int) -> None:
        if run is None:
            counts[i] = bare_sequential(llms[i], texts[i :: len(llms)], max_tokens)
        else:
            counts[i] = run(llms[i], texts[i :: len(llms)], max_tokens)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(llms))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts)


class BareBatched:
    """The textbook llama.cpp batched-decoding loop (as in llama.cpp's `batched` example), greedy."""

    def __init__(self, llm: llama_cpp.Llama, n_seq: int, n_ctx_seq: int = 512, n_threads: int = THREADS):
        self.llm, self.n_seq = llm, n_seq
        params = llama_cpp.llama_context_default_params()
        params.n_ctx, params.n_seq_max, params.n_batch = n_ctx_seq * n_seq, n_seq, 512
        params.n_threads = params.n_threads_batch = n_threads
        self.ctx = llama_cpp.llama_init_from_model(llm.model, params)
        self.vocab = llama_cpp.llama_model_get_vocab(llm.model)
        self.batch = llama_cpp.llama_batch_init(512, 0, 1)
        self.sampler = llama_cpp.llama_sampler_init_greedy()
        meta = llm.metadata
        eos = llm._model.token_get_text(llm.token_eos())
        self.template = Jinja2ChatFormatter(meta["tokenizer.chat_template"], eos_token=eos, bos_token=eos)

    def run(self, texts: list[str], max_tokens: int) -> int:
        total = 0
        for start in range(0, len(texts), self.n_seq):
            total += self._group(texts[start : start + self.n_seq], max_tokens)
        return total

    def _group(self, texts: list[str], max_tokens: int) -> int:
        lib, batch = llama_cpp, self.batch
        rendered = [self.template(messages=[{"role": "user", "content": t}]).prompt for t in texts]
        prompts = [self.llm.tokenize(r.encode(), add_bos=False, special=True) for r in rendered]
        n, last = 0, {}
        for seq, toks in enumerate(prompts):  # all prompts in one batch (they are short)
            for pos, tok in enumerate(toks):
                self._put(n, tok, pos, seq, pos == len(toks) - 1)
                if pos == len(toks) - 1:
                    last[seq] = n
                n += 1
        batch.n_tokens = n
        assert lib.llama_decode(self.ctx, batch) == 0
        pos, produced = {s: len(p) for s, p in enumerate(prompts)}, 0
        for step in range(max_tokens):
            n, nxt = 0, {}
            for seq, i in last.items():
                tok = lib.llama_sampler_sample(self.sampler, self.ctx, i)
                if lib.llama_vocab_is_eog(self.vocab, tok):
                    continue
                produced += 1
                if step < max_tokens - 1:  # the last token sampled needs no decode
                    self._put(n, tok, pos[seq], seq, True)
                    nxt[seq], pos[seq], n = n, pos[seq] + 1, n + 1
            if not nxt:
                break
            last, batch.n_tokens = nxt, n
            assert lib.llama_decode(self.ctx, batch) == 0
        lib.llama_memory_clear(lib.llama_get_memory(self.ctx), True)
        return produced

    def _put(self, i: int, tok: int, pos: int, seq: int, logits: bool) -> None:
        b = self.batch
        b.token[i], b.pos[i], b.n_seq_id[i], b.seq_id[i][0], b.logits[i] = tok, pos, 1, seq, logits

    def close(self) -> None:
        llama_cpp.llama_batch_free(self.batch)
        llama_cpp.llama_sampler_free(self.sampler)
        llama_cpp.llama_free(self.ctx)


def engine_run(engine, texts: list[str], max_tokens: int) -> int:
    requests = [{"model": "smollm2-135m-instruct", "max_tokens": max_tokens, "temperature": 0,
                 "messages": [{"role": "user", "content": t}]} for t in texts]
    return sum(c.output_tokens for c in engine.complete_many(requests))


def timed(fn, *args) -> float:
    start = time.perf_counter()
    tokens = fn(*args)
    return tokens / (time.perf_counter() - start)


def main(n_prompts: int = 32, max_tokens: int = 32, rounds: int = 4, verbose: int = 0) -> None:
    texts = prompts(n_prompts)
    seq_llm = load()
    two = [load(n_threads=1), load(n_threads=1)]
    batched_llm = load(n_ctx=64)
    bare_batched = BareBatched(batched_llm, n_seq=16)
    two_batched = [BareBatched(batched_llm, n_seq=8, n_threads=1) for _ in range(2)]
    # 512-token sequences everywhere (the prompts are short): the same memory for every contender
    engine = make_engine("llama", n_threads=THREADS, n_ctx=512)  # default: 2 contexts x 1 thread, 8 seqs each
    engine_one = make_engine("llama", n_threads=THREADS, threads_per_context=THREADS, n_ctx=512)
    contenders = {
        "bare sequential (1 ctx, 2 threads)": lambda: timed(bare_sequential, seq_llm, texts, max_tokens),
        "bare 2 contexts (1 thread each)": lambda: timed(bare_two_contexts, two, texts, max_tokens),
        "bare batched (1 ctx, 16 seqs)": lambda: timed(bare_batched.run, texts, max_tokens),
        "bare 2 contexts batched (8 seqs each)": lambda: timed(bare_two_contexts, two_batched, texts, max_tokens,
                                                               BareBatched.run),
        "engine (2 contexts batched, default)": lambda: timed(engine_run, engine, texts, max_tokens),
        "engine (1 context batched, 2 threads)": lambda: timed(engine_run, engine_one, texts, max_tokens),
    }
    best = dict.fromkeys(contenders, 0.0)
    ratios: list[float] = []  # engine / bare with the same strategy, measured back to back in each round
    print(f"{n_prompts} prompts x max_tokens={max_tokens}, {THREADS} threads, "
          f"best of {rounds} interleaved rounds (tokens/s)")
    for r in range(rounds):
        now = {}
        for name, run in contenders.items():
            now[name] = run()
            best[name] = max(best[name], now[name])
            if verbose:
                print(f"    {name}: {now[name]:.1f}", flush=True)
        ratios.append(now["engine (2 contexts batched, default)"] / now["bare 2 contexts batched (8 seqs each)"])
        print(f"  round {r + 1}: " + ", ".join(f"{v:.0f}" for v in best.values()), flush=True)
    for name, value in best.items():
        print(f"{name:<42} {value:7.1f} tokens/s")
    seq, two_ctx = best["bare sequential (1 ctx, 2 threads)"], best["bare 2 contexts (1 thread each)"]
    batched, mine = best["bare batched (1 ctx, 16 seqs)"], best["engine (2 contexts batched, default)"]
    bare = {k: v for k, v in best.items() if k.startswith("bare")}
    top = max(bare, key=bare.__getitem__)
    two_batched_best = best["bare 2 contexts batched (8 seqs each)"]
    print(f"\nbare batched vs bare sequential: {batched / seq:.2f}x; vs bare 2 contexts: {batched / two_ctx:.2f}x; "
          f"vs 2 contexts batched: {batched / two_batched_best:.2f}x")
    ratio = mine / bare[top]
    print(f"engine (default) vs best bare ({top}): {100 * ratio:.0f}% of the best-of-rounds figures")
    median = sorted(ratios)[len(ratios) // 2]
    verdict = "met" if median >= 0.9 else "NOT met"
    print(f"engine (default) / bare 2 contexts batched, back to back in each round: "
          f"{', '.join(f'{100 * r:.0f}%' for r in ratios)}; median {100 * median:.0f}% (target >= 90%: {verdict})")
    print(f"engine (default) vs bare 2 contexts batched: {100 * mine / two_batched_best:.0f}%; "
          f"engine (1 context) vs bare batched: {100 * best['engine (1 context batched, 2 threads)'] / batched:.0f}%; "
          f"engine (default) vs bare sequential: {mine / seq:.2f}x")
    for closable in (engine, engine_one, bare_batched, *two_batched, seq_llm, batched_llm, *two):
        closable.close()


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:5]))
