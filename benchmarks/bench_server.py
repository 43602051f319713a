"""Benchmark of the local service: a 100,000-request batch with the echo engine, created and downloaded.

Reports requests/s accepted on create (target >= 50,000, issue 14), requests/s processed, and MB/s of the
results stream (target >= 500, issue 14), each next to a baseline measured in the same run on the same data:

- create: bare ``orjson.loads`` of the body plus ``orjson.dumps`` of every params (the least work any
  server must do);
- processing: the echo engine's ``complete`` alone over the same requests;
- results: bare ``orjson.dumps`` of the same lines.

The service runs as ``batchframe serve`` in its own process (as ``ensure_running`` starts it), so the
client does not share its interpreter. Run: ``.venv/bin/python benchmarks/bench_server.py [--requests N]``.
The machine is shared: figures vary with load.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import httpx
import orjson

from batchframe.server import spawn
from batchframe.server.engines.echo import EchoEngine

HEADERS = {"x-api-key": "bench", "anthropic-version": "2023-06-01", "content-type": "application/json"}


def make_body(n: int) -> bytes:
    return orjson.dumps({"requests": [
        {"custom_id": f"row-{i}", "params": {"model": "claude-haiku-4-5", "max_tokens": 64, "messages": [
            {"role": "user", "content": f"Classify the sentiment of review {i}: it was fine, I guess."}]}}
        for i in range(n)]})


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def baseline_create(body: bytes) -> float:
    def work():
        doc = orjson.loads(body)
        return [orjson.dumps(item["params"]) for item in doc["requests"]]
    return timed(work)[1]


def baseline_process(body: bytes) -> float:
    engine = EchoEngine()
    params = [item["params"] for item in orjson.loads(body)["requests"]]
    return timed(lambda: engine.complete_many(params))[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    n = parser.parse_args().requests
    body = make_body(n)
    # Baselines first, while the heap is small (a heap full of parsed results slows them down by GC).
    t_base_create, t_base_process = baseline_create(body), baseline_process(body)
    with tempfile.TemporaryDirectory() as tmp, spawn(data_dir=tmp) as service, \
            httpx.Client(base_url=service.base_url, headers=HEADERS, timeout=600) as http:
        created, t_create = timed(lambda: http.post("/v1/messages/batches", content=body))
        created.raise_for_status()
        batch_id = created.json()["id"]
        start = time.perf_counter() - t_create
        for _ in range(60_000):  # bounded: at most ~10 minutes
            batch = http.get(f"/v1/messages/batches/{batch_id}").json()
            if batch["processing_status"] == "ended":
                break
            time.sleep(0.01)
        t_process = time.perf_counter() - start
        assert batch["request_counts"]["succeeded"] == n, batch["request_counts"]

        def download() -> bytes:
            chunks = []
            with http.stream("GET", batch["results_url"]) as response:
                for chunk in response.iter_raw(1 << 20):
                    chunks.append(chunk)
            return b"".join(chunks)

        data, t_results = timed(download)
    lines = data.splitlines()
    assert len(lines) == n
    parsed = [orjson.loads(line) for line in lines]
    _, t_dump = timed(lambda: b"".join(orjson.dumps(p, option=orjson.OPT_APPEND_NEWLINE) for p in parsed))
    mb = len(data) / 1e6

    print(f"bench_server: {n:,} requests, body {len(body) / 1e6:.1f} MB, results {mb:.1f} MB "
          "(shared machine)")
    print(f"  create    {n / t_create:>12,.0f} req/s accepted   (target >= 50,000)   "
          f"baseline orjson parse+dump {n / t_base_create:,.0f} req/s, ratio {t_base_create / t_create:.2f}")
    print(f"  process   {n / t_process:>12,.0f} req/s processed  "
          f"baseline echo engine alone {n / t_base_process:,.0f} req/s, "
          f"ratio {t_base_process / t_process:.2f}")
    print(f"  results   {mb / t_results:>12,.1f} MB/s streamed    (target >= 500)      "
          f"baseline orjson dumps {mb / t_dump:,.1f} MB/s, ratio {t_dump / t_results:.2f}")


if __name__ == "__main__":
    main()
