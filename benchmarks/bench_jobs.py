"""Retry planning and the jobs table on a large job, against reading its results (the baseline).

A job of N rows (default 100,000) runs on the local service (echo engine) with 10% of the requests
errored by fault injection. Then, in the same run:

* baseline: ``job.results()`` (read every harvested shard, keep the latest attempt per row, price rows);
* selection: which rows ``retry()`` would resend (``latest_results`` + ``select_rows``);
* planning: writing attempt 2's requests (``plan_attempt``: bodies with new custom_ids, sharded);
* ``batchframe.jobs()`` over the store.

Targets: selection <= 1x the baseline; planning of 10% of the rows <= 1x the baseline.
Run: .venv/bin/python benchmarks/bench_jobs.py [n_rows]   (CPU shared with other work: ratios, not seconds)
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

import pandas as pd

import batchframe
from batchframe.jobs.outcomes import latest_results, store_reader
from batchframe.jobs.resubmit import plan_attempt, select_rows
from batchframe.server import Faults, serve_in_thread


def timed(fn, repeat: int = 3) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main(n: int) -> int:
    root = tempfile.mkdtemp(prefix="bench-jobs-")
    os.environ["BATCHFRAME_STORE"] = os.path.join(root, "store")
    os.environ["BATCHFRAME_NO_PROGRESS"] = "1"
    df = pd.DataFrame({"q": [f"row {i} of the benchmark" for i in range(n)]})
    with serve_in_thread(data_dir=os.path.join(root, "svc"), faults=Faults(request_error_rate=0.1, seed=7)) as svc:
        job = df.batch.submit(prompt="q", model="claude-haiku-4-5", max_tokens=16, provider="anthropic",
                              api_key="bench", base_url=svc.base_url, name="bench")
        job.wait(poll_interval=0.5, timeout=3600)
    manifest, store = job.manifest, job.store
    base, results = timed(job.results)
    select, positions = timed(lambda: select_rows(latest_results(manifest, store_reader(store, manifest["name"]))))
    plan, _ = timed(lambda: plan_attempt(store, manifest, positions))
    table, _ = timed(batchframe.jobs)
    errored = int((results["llm_status"] == "errored").sum())
    assert errored == len(positions), (errored, len(positions))
    print(f"rows={n} errored={errored} (to retry)")
    print(f"baseline job.results():        {base * 1000:8.1f} ms")
    print(f"retry selection:               {select * 1000:8.1f} ms   ratio {select / base:5.2f}  (target <= 1)")
    print(f"retry planning (attempt 2):    {plan * 1000:8.1f} ms   ratio {plan / base:5.2f}  (target <= 1)")
    print(f"batchframe.jobs():             {table * 1000:8.1f} ms   ratio {table / base:5.2f}")
    return 0 if select <= base and plan <= base else 1


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000))
