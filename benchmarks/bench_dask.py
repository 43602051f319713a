"""The same job through ``ddf.batch`` on 2 worker processes and through ``df.batch`` in pandas.

N rows (default 1,000,000) in 16 partitions on a ``distributed.LocalCluster`` of 2 worker processes (1 thread
each, on 127.0.0.1), from ``submit`` to a written partitioned Parquet folder, against the local service's echo
engine (a child process, so that it is not counted in the driver's memory). Each side runs in a fresh process
of its own and prints the time of each phase and its peak resident memory (``ru_maxrss``): the driver's, for
Dask (the rows are made on the workers, so the driver never holds the frame), the whole job's, for pandas.

Phases: ``submit`` (build the requests, plan, persist, create the batches; for Dask, the workers stage each
partition's lines in the job store and the driver plans from digests and line lengths, streams
``requests.parquet`` and sends each shard reading its lines back), ``wait`` (the service answers; the same
work for both), ``parquet`` (merge and write; for Dask, each partition on a worker, one file each).
``submit MB`` is the peak resident memory when submit returned, ``peak MB`` over the whole run.

Run: .venv/bin/python benchmarks/bench_dask.py [--rows N] [--partitions 16]

Figures, 2026-12-01 03:52 UTC, 2-core machine shared with other engineers' runs (times vary by +-30% from run
to run; the load average says how busy it was):

    1,000,000 rows, 16 partitions, 2 worker processes; echo engine in a child process
    load average (1 min) at start / after dask / after pandas: 2.77 / 5.37 / 3.09
              submit s    wait s  parquet s   total s   base MB  submit MB   peak MB
    dask          73.8     194.4       30.9     299.1       201        733       733
    pandas        38.4     156.5        4.7     199.6       168       1958      1958

(A run 15 minutes earlier, before the dedupe by digest was made faster, at load 2.5-4.1: dask 63.9 / 142.3 /
20.6 s, pandas 31.9 / 146.5 / 5.6 s; peaks 748 and 1962 MB.) The driver's memory is what Dask buys here: it
holds per request a 16-byte digest, a line length and a few plan integers, and at most one shard's lines while
sending it, so it peaks at about 0.37 of the pandas process, which holds every body, line and fingerprint at
once. Time is not: on 2 cores the workers compete with the driver and the service, each partition is computed
twice (a first pass counts its rows, so that custom_ids are global), and the lines are written to a staging
file, read back into ``requests.parquet`` and read back again per shard. A profile of the Dask submit at
1,000,000 rows: staging on the workers 22.5 s, planning 3.3 s (with the slower dedupe), streaming
``requests.parquet`` 5.3 s, sending the 10 shards 30.1 s (mostly the service taking each 100,000-request
batch, as for pandas). The ``wait`` column is the service's work, the same for both; the Dask ``parquet`` phase
pays per-partition task overhead and each partition's lookup of its rows. Scale-out pays off for a frame that
does not fit in one process's memory, and for builds heavier than this template (attachments).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KEY = "sk-bench-0123456789"
ARGS = {"prompt": "Summarize the review '{title}': {body}", "model": "claude-haiku-4-5", "max_tokens": 64}
WORDS = "great poor fine delivery price quality support return late broken love".split()


def rows(start: int, stop: int):
    """Rows ``[start, stop)`` of the benchmark frame, made where they are called (a worker, for Dask)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(start)
    words = np.array(WORDS)
    bodies = [" ".join(rng.choice(words, 20)) for _ in range(min(stop - start, 2_000))]
    return pd.DataFrame({"title": [f"Review {i}" for i in range(start, stop)],
                         "body": [bodies[i % len(bodies)] for i in range(stop - start)]},
                        index=pd.Index([f"rev-{i:08d}" for i in range(start, stop)], name="review_id"))


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def run_side(side: str, n: int, partitions: int, base_url: str, out: Path) -> dict:
    """One side in this (fresh) process; returns its figures."""
    import batchframe  # noqa: F401  (registers the accessors)

    submit = {**ARGS, "provider": "anthropic", "api_key": KEY, "base_url": base_url, "name": f"bench-{side}"}
    figures: dict = {"side": side, "baseline_mb": peak_mb()}
    if side == "dask":
        import dask.dataframe as dd
        import distributed

        cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                                           dashboard_address="127.0.0.1:0")
        client = distributed.Client(cluster)
        try:
            bounds = [(k * n // partitions, (k + 1) * n // partitions) for k in range(partitions)]
            frame = dd.from_map(lambda b: rows(*b), bounds)
            figures["baseline_mb"] = peak_mb()
            figures.update(_phases(frame, submit, out))
        finally:
            client.close()
            cluster.close()
    else:
        frame = rows(0, n)
        figures.update(_phases(frame, submit, out / "answers.parquet"))
    figures["peak_mb"] = peak_mb()
    return figures


def _phases(frame, submit: dict, out: Path) -> dict:
    t0 = time.perf_counter()
    job = frame.batch.submit(**submit)
    t1 = time.perf_counter()
    submit_mb = peak_mb()
    job.wait(poll_interval=1.0, timeout=3600)
    t2 = time.perf_counter()
    frame.batch.to_parquet(out, job)
    t3 = time.perf_counter()
    assert job.status.counts["succeeded"] == job.status.n_rows, job.status
    return {"submit_s": t1 - t0, "wait_s": t2 - t1, "parquet_s": t3 - t2, "total_s": t3 - t0, "submit_mb": submit_mb,
            "rows": job.status.n_rows, "batches": len(job.batch_ids())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--side", choices=["dask", "pandas"], help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.side:  # a child: one side, figures as JSON on the last line
        print(json.dumps(run_side(opts.side, opts.rows, opts.partitions, opts.base_url, Path(opts.out))))
        return
    from batchframe.server.process import spawn

    root = Path(tempfile.mkdtemp(prefix="bench-dask-"))
    service = spawn(data_dir=root / "service")
    load = [os.getloadavg()[0]]
    try:
        results = []
        for side in ("dask", "pandas"):
            results.append(_child(side, opts, service.base_url, root))
            load.append(os.getloadavg()[0])
    finally:
        service.stop()
    print(f"{opts.rows:,} rows, {opts.partitions} partitions, 2 worker processes; echo engine in a child process")
    print(f"load average (1 min) at start / after dask / after pandas: {' / '.join(f'{x:.2f}' for x in load)}")
    print(f"{'':8}{'submit s':>10}{'wait s':>10}{'parquet s':>11}{'total s':>10}{'base MB':>10}{'submit MB':>11}"
          f"{'peak MB':>10}")
    for r in results:
        print(f"{r['side']:8}{r['submit_s']:10.1f}{r['wait_s']:10.1f}{r['parquet_s']:11.1f}{r['total_s']:10.1f}"
              f"{r['baseline_mb']:10.0f}{r['submit_mb']:11.0f}{r['peak_mb']:10.0f}")


def _child(side: str, opts: argparse.Namespace, base_url: str, root: Path) -> dict:
    env = {**os.environ, "BATCHFRAME_STORE": str(root / f"store-{side}"), "BATCHFRAME_NO_PROGRESS": "1"}
    run = subprocess.run([sys.executable, __file__, "--side", side, "--rows", str(opts.rows), "--partitions",
                          str(opts.partitions), "--base-url", base_url, "--out", str(root / f"out-{side}")],
                         env=env, capture_output=True, text=True, timeout=7200, check=False)
    if run.returncode != 0:
        raise SystemExit(f"{side} failed:\n{run.stdout[-3000:]}\n{run.stderr[-5000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
