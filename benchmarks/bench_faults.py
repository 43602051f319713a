"""A fault campaign: jobs under random mixes of faults end with every row answered, once, right, paid once.

A local service (echo engine, a little latency) runs as a child process. Each of N jobs (default 30) gets a
random mix, drawn from a seeded generator, of:

* 429/529/500 answers to API calls;
* answers lost after the service acted (a create that "failed" did create a batch);
* result streams cut after a few hundred bytes;
* per-request errors (``api_error`` lines);
* a SIGKILL of the client process while it submits or waits (harvests);
* a SIGKILL of the service mid-batch, then a restart on the same data folder (new port).

Each job then continues the way a user would: re-run the same submit cell (re-attaches, pays nothing),
wait, and ``retry()``, until every row is terminal; faults stop after two rounds so the campaign ends.
Printed: rows terminal (must be 100%), duplicated results (0), extra batches paid (0, from the service's
own batch list), rows with a wrong answer (0, each checked against the service's synchronous answer to the
same request), and the total time.

Run: .venv/bin/python benchmarks/bench_faults.py [n_jobs] [seed]
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx
import pandas as pd
import pyarrow.parquet as pq

import batchframe
from batchframe.server import Faults, spawn

ROWS = (12, 30)
MAX_ROUNDS = 8
ENGINE = {"latency": 0.01, "max_concurrency": 2}
HEADERS = {"x-api-key": "local", "anthropic-version": "2023-06-01"}


def frame(job: int, rng: random.Random) -> pd.DataFrame:
    n = rng.randint(*ROWS)
    return pd.DataFrame({"q": [f"job {job} row {i}: say {rng.randint(0, 10**6)}" for i in range(n)]},
                        index=pd.Index([f"j{job}-r{i}" for i in range(n)], name="key"))


def draw_faults(rng: random.Random) -> Faults:
    return Faults(
        http_error_rate=rng.choice([0.0, 0.1, 0.25]),
        http_error_statuses=(429, 529, 500),
        http_errors_after_processing=rng.random() < 0.5,
        cut_results_after_bytes=rng.choice([None, 300, 1500]),
        request_error_rate=rng.choice([0.0, 0.2]),
        request_error_type="api_error",
        retry_after_seconds=0.01,
        seed=rng.randint(0, 10**6),
    )


def submit_kwargs(data_dir: Path, base_url: str) -> dict:
    return dict(prompt="q", model="claude-haiku-4-5", max_tokens=32, provider="local", base_url=base_url,
                provider_options={"data_dir": str(data_dir)},
                retry=batchframe.RetryPolicy(max_retries=6, backoff=0.01, max_backoff=0.05))


def killed_client(df: pd.DataFrame, name: str, data_dir: Path, base_url: str, delay: float) -> None:
    """Submit and wait in a child process, SIGKILLed after ``delay`` seconds (during submit or harvest)."""
    code = textwrap.dedent(f"""
        import pandas as pd, batchframe
        df = pd.read_pickle({str(data_dir / (name + ".pkl"))!r})
        job = df.batch.submit(name={name!r}, prompt="q", model="claude-haiku-4-5", max_tokens=32,
                              provider="local", base_url={base_url!r},
                              provider_options={{"data_dir": {str(data_dir)!r}}})
        job.wait(poll_interval=0.02, timeout=60)
    """)
    df.to_pickle(data_dir / f"{name}.pkl")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    child.send_signal(signal.SIGKILL)
    child.wait(30)


def run_job(j: int, rng: random.Random, state: dict) -> pd.DataFrame:
    df, name = frame(j, rng), f"fault-{j}"
    state["service"].set_faults(draw_faults(rng))
    if rng.random() < 0.3:
        killed_client(df, name, state["data_dir"], state["service"].base_url, rng.uniform(0.05, 0.8))
        state["client_kills"] += 1
    for round_ in range(MAX_ROUNDS):
        if round_ == 2:
            state["service"].set_faults(Faults())
        try:
            job = df.batch.submit(name=name, **submit_kwargs(state["data_dir"], state["service"].base_url))
            if round_ == 0 and rng.random() < 0.2:
                restart_service(state)  # SIGKILL mid-batch, then a new service on the same folder
            job.wait(poll_interval=0.02, timeout=60)
            if job.retry() == 0 and job.wait(poll_interval=0.02, timeout=60).ended:
                merged = df.batch.merge(job)
                if not (merged["llm_status"] == "pending").any():
                    return merged
        except batchframe.BatchframeError as exc:
            state["errors"].append(f"{name} round {round_}: {type(exc).__name__}: {exc}"[:300])
    return df.batch.merge(batchframe.open_job(name))


def restart_service(state: dict) -> None:
    os.kill(state["service"].pid, signal.SIGKILL)
    time.sleep(0.05)
    state["service"] = spawn(data_dir=state["data_dir"], engine="echo", engine_options=ENGINE, enable_admin=True)
    state["restarts"] += 1


def synchronous_answer(base_url: str, prompt: str) -> str:
    body = {"model": "claude-haiku-4-5", "max_tokens": 32, "messages": [{"role": "user", "content": prompt}]}
    answer = httpx.post(f"{base_url}/v1/messages", json=body, headers=HEADERS, timeout=30).raise_for_status()
    return "".join(b.get("text", "") for b in answer.json()["content"])


def remote_batch_ids(base_url: str) -> list[str]:
    ids, after = [], None
    with httpx.Client(base_url=base_url, headers=HEADERS, timeout=30) as client:
        for _ in range(1000):
            page = client.get("/v1/messages/batches", params={"limit": 1000, **({"after_id": after} if after else {})})
            data = page.raise_for_status().json()
            ids += [b["id"] for b in data["data"]]
            if not data["has_more"]:
                return ids
            after = data["last_id"]
    raise RuntimeError("too many pages")


def duplicated_results(store: batchframe.Store) -> int:
    """Result lines stored twice for one row of one attempt (each shard's file holds a row at most once)."""
    dups = 0
    for name in store.names():
        for attempt in store.read_manifest(name)["attempts"]:
            positions = [p for shard in attempt["shards"] if shard.get("results_file")
                         for p in pq.read_table(store.job_dir(name) / shard["results_file"],
                                                columns=["position"]).column("position").to_pylist()]
            dups += len(positions) - len(set(positions))
    return dups


def main(n_jobs: int = 30, seed: int = 7) -> int:
    root = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    os.environ["BATCHFRAME_STORE"] = str(root / "store")
    os.environ["BATCHFRAME_NO_PROGRESS"] = "1"
    rng = random.Random(seed)
    state = {"data_dir": root / "service", "restarts": 0, "client_kills": 0, "errors": []}
    state["service"] = spawn(data_dir=state["data_dir"], engine="echo", engine_options=ENGINE, enable_admin=True)
    started = time.perf_counter()
    try:
        merged = [run_job(j, rng, state) for j in range(n_jobs)]
        elapsed = time.perf_counter() - started
        state["service"].set_faults(Faults())
        base_url = state["service"].base_url
        rows = pd.concat(merged)
        terminal = int((rows["llm_status"] != "pending").sum())
        wrong = sum(text != synchronous_answer(base_url, q) for q, text in zip(rows["q"], rows["llm_text"],
                                                                                strict=True))
        store = batchframe.Store()
        recorded = [b for name in store.names() for b in batchframe.open_job(name, base_url=base_url).batch_ids()]
        remote = remote_batch_ids(base_url)
        extra = len(remote) - len(set(recorded)) + (len(recorded) - len(set(recorded)))
        print(f"fault campaign: {n_jobs} jobs, {len(rows)} rows, seed {seed}; {state['client_kills']} clients and "
              f"{state['restarts']} services SIGKILLed")
        print(f"  rows terminal         : {terminal}/{len(rows)} ({100 * terminal / len(rows):.1f}%)  (must be 100%)")
        print(f"  rows succeeded        : {int((rows['llm_status'] == 'succeeded').sum())}")
        print(f"  duplicated results    : {duplicated_results(store)}  (must be 0)")
        print(f"  extra batches paid    : {extra}  ({len(remote)} remote batches, {len(set(recorded))} recorded)")
        print(f"  rows with wrong answer: {wrong}  (must be 0)")
        print(f"  total time            : {elapsed:.1f} s; errors ridden out by re-running: {len(state['errors'])}")
        return 0 if terminal == len(rows) and wrong == 0 and extra == 0 else 1
    finally:
        state["service"].stop()


if __name__ == "__main__":
    sys.exit(main(*(int(a) for a in sys.argv[1:3])))
