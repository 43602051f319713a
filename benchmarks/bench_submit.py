"""The submit path without the network: DataFrame -> request bodies -> shards -> serialized create bodies.

Measures ``build_requests`` (template over two columns plus a per-row max_tokens column), ``plan_shards``
and the codec's ``frame_shard`` for every shard, on 1,000,000 rows; then, separately, writing requests.parquet (what
``submit`` persists before the first POST). Baseline in the same run: a plain loop of ``json.dumps`` of
the same bodies. Target: >= 1,000,000 rows/min for DataFrame -> serialized shards.
Run: .venv/bin/python benchmarks/bench_submit.py [n_rows]

Figures, 2026-11-25, 2-core machine shared with 3-4 other engineers (load average ~3.5), 1,000,000 rows
(404 MB of bodies, 10 shards): 6.1-6.9 s, i.e. 8.7-9.8 million rows/min (target 1 million), 1.1-1.6x a
plain json.dumps loop; writing requests.parquet adds 3-4.5 s.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time

import numpy as np
import pandas as pd

from batchframe.jobs.bodies import layout, lines_path, write_lines
from batchframe.jobs.store import Store
from batchframe.jobs.submit import requests_table
from batchframe.providers.anthropic import codec
from batchframe.requests.build import build_requests
from batchframe.requests.shards import plan_shards
from batchframe.results.merge import input_hashes


def frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    words = np.array("great poor fine delivery price quality support return late broken love".split())
    bodies = [" ".join(rng.choice(words, 30)) for _ in range(min(n, 10_000))]
    return pd.DataFrame(
        {
            "title": [f"Review {i}" for i in range(n)],
            "body": [bodies[i % len(bodies)] for i in range(n)],
            "budget": rng.integers(50, 300, n),
        },
        index=pd.Index([f"rev-{i:08d}" for i in range(n)], name="review_id"),
    )


def to_shards(df: pd.DataFrame) -> tuple[list[bytes], object, list[bytes], list[tuple[int, int]]]:
    requests = build_requests(
        df,
        prompt="Summarize the review '{title}': {body}",
        model="claude-haiku-4-5",
        max_tokens="budget",
        system="Answer in one sentence.",
        temperature=0.0,
    )
    lines = codec.encode_lines(requests.custom_ids, requests.params)
    sizes = np.fromiter((len(b) for b in lines), np.int64, requests.n_sent)
    ranges = plan_shards(sizes, envelope=codec.ENVELOPE_BYTES)
    return [codec.frame_shard(lines[a:b]) for a, b in ranges], requests, lines, ranges


def json_baseline(df: pd.DataFrame) -> int:
    size = 0
    for i, (title, body, budget) in enumerate(
        zip(df["title"], df["body"], df["budget"].tolist(), strict=True)
    ):
        size += len(
            json.dumps(
                {
                    "custom_id": f"r{i}",
                    "params": {
                        "model": "claude-haiku-4-5",
                        "max_tokens": budget,
                        "system": "Answer in one sentence.",
                        "temperature": 0.0,
                        "messages": [{"role": "user", "content": f"Summarize the review '{title}': {body}"}],
                    },
                }
            )
        )
    return size


def main(n: int = 1_000_000) -> None:
    df = frame(n)
    start = time.perf_counter()
    shards, requests, lines, ranges = to_shards(df)
    t_shards = time.perf_counter() - start
    start = time.perf_counter()
    json_baseline(df)
    t_json = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp)
        shard_of = np.repeat(np.arange(len(ranges), dtype=np.int32), [b - a for a, b in ranges])
        start = time.perf_counter()
        same_as = requests.positions  # every row distinct: each is its own request
        table = requests_table(df.index, requests, shard_of, same_as, input_hashes(df, requests.columns))
        store.write_table(store.requests_path("bench"), table)
        write_lines(lines_path(store, "bench"), lines, layout(n, requests.positions, lines))
        t_parquet = time.perf_counter() - start
    total_mb = sum(len(b) for b in shards) / 1e6
    print(
        f"submit path, {n:,} rows -> {len(shards)} shards ({total_mb:.0f} MB); machine shared with other work"
    )
    print(
        f"  DataFrame -> serialized shards : {t_shards:6.2f} s  ({n / t_shards * 60:>12,.0f} rows/min; "
        f"target >= 1,000,000)"
    )
    print(f"  json.dumps loop (baseline)     : {t_json:6.2f} s  ({n / t_json * 60:>12,.0f} rows/min)")
    print(f"  + requests.parquet (persist)   : {t_parquet:6.2f} s")
    print(f"  ratio vs json.dumps loop: {t_json / t_shards:.1f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
