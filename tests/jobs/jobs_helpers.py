"""Helpers of the jobs tests (imported by name: pytest puts tests/jobs on sys.path).

Every helper talks to the real local service over loopback HTTP; subprocesses inherit the test's
environment (job store and data folder in tmp dirs).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pandas as pd

import batchframe
from loopback import list_batches

KEY = "sk-test-key-0123456789"
FAST = batchframe.RetryPolicy(max_retries=8, backoff=0.01, max_backoff=0.05)
HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}


def submit(df, service, **kwargs):
    """``df.batch.submit`` against ``service`` through the anthropic provider (as user code would)."""
    for key, value in (("prompt", "q"), ("model", "claude-haiku-4-5"), ("max_tokens", 64), ("retry", FAST)):
        kwargs.setdefault(key, value)
    return df.batch.submit(provider="anthropic", api_key=KEY, base_url=service.base_url, **kwargs)


def service_batches(service) -> list[dict]:
    """The service's own batch list (every page), newest first."""
    return list_batches(service.base_url, KEY)


def frame(n: int, word: str = "row") -> pd.DataFrame:
    """``n`` distinct prompts (the echo engine answers each with its own text) on a string index."""
    return pd.DataFrame({"q": [f"{word} {i} says {i * 7}" for i in range(n)]},
                        index=pd.Index([f"k{i:03d}" for i in range(n)][::-1], name="key"))


def child(code: str, **popen) -> subprocess.Popen:
    """Start ``python -c code`` (dedented) with this process's environment; text stdout piped."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ), **popen)


def run_child(code: str, timeout: float = 60) -> str:
    """Run ``python -c code`` to completion; its stdout (fails on a non-zero exit)."""
    proc = child(code)
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out


def kill_at_marker(proc: subprocess.Popen, marker: str, timeout: float = 60) -> str:
    """Read the child's stdout until a line starting with ``marker``, then SIGKILL it; return that line."""
    for _ in range(10_000):
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith(marker):
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout)
            proc.stdout.close()
            proc.stderr.close()
            return line.strip()
    proc.kill()
    _, err = proc.communicate(timeout=timeout)
    raise AssertionError(f"child ended without {marker!r}: {err}")


def harvested(job) -> pd.DataFrame:
    """Every harvested result line of every attempt (position, attempt, status, batch_id)."""
    tables = [pd.read_parquet(job.store.job_dir(job.name) / s["results_file"],
                              columns=["position", "attempt", "status", "batch_id"])
              for a in job.manifest["attempts"] for s in a["shards"] if s["state"] == "harvested"]
    return pd.concat(tables, ignore_index=True)


def sent_positions(job, attempt: int) -> list[int]:
    """Positions of the rows an attempt sent, from its persisted requests."""
    table = pd.read_parquet(job.store.requests_path(job.name, attempt), columns=["position", "shard"])
    return sorted(table.loc[table["shard"] >= 0, "position"].tolist())
