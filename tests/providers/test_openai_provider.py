"""``provider="openai"`` end to end against the local service's OpenAI Files and Batches API (loopback).

What was paid is counted from the service's own batch list (``GET /v1/batches``); uploaded files from its
file list. The SIGKILLs are real: the child process is the user's kernel.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import httpx
import pandas as pd
import pytest

import batchframe
from batchframe.jobs import orphans

KEY = "sk-openai-test-0123456789"
FAST = batchframe.RetryPolicy(max_retries=8, backoff=0.01, max_backoff=0.05)


def submit(df, service, **kwargs):
    kwargs.setdefault("prompt", "q")
    kwargs.setdefault("model", "gpt-4o-mini")
    kwargs.setdefault("max_tokens", 64)
    return df.batch.submit(provider="openai", api_key=KEY, base_url=f"{service.base_url}/v1", retry=FAST, **kwargs)


def api(service, method, path, **kwargs):
    with httpx.Client(base_url=f"{service.base_url}/v1", headers={"authorization": f"Bearer {KEY}"}, timeout=30) as c:
        return c.request(method, path, **kwargs).raise_for_status().json()


def batches(service) -> list[dict]:
    return api(service, "GET", "/batches", params={"limit": 100})["data"]


def input_files(service) -> list[dict]:
    return [f for f in api(service, "GET", "/files")["data"] if f.get("purpose") == "batch"]


def paid(service) -> int:
    return sum(b["request_counts"]["total"] for b in batches(service))


def frame(n=6):
    return pd.DataFrame({"q": [f"tell me about item {i}" for i in range(n)]},
                        index=pd.Index([f"k{i}" for i in range(n)][::-1], name="key"))


def test_a_frame_round_trips_and_every_row_gets_its_own_answer(service):
    df = frame()
    job = submit(df, service, name="oa", max_batch_requests=4)  # two shards
    assert job.provider_name == "openai" and len(job.batch_ids()) == 2
    job.wait(poll_interval=0.05, timeout=60)
    merged = df.batch.merge(job)
    expected = [api(service, "POST", "/chat/completions", json={
        "model": "gpt-4o-mini", "max_completion_tokens": 64, "messages": [{"role": "user", "content": q}],
    })["choices"][0]["message"]["content"] for q in df["q"]]
    assert merged["llm_text"].tolist() == expected and set(merged["llm_status"]) == {"succeeded"}
    assert (merged["llm_input_tokens"] > 0).all()
    assert input_files(service) == []  # input files are deleted once their batches ended
    tags = sorted(b["metadata"]["batchframe_shard"] for b in batches(service))
    assert [t.rsplit(":", 2)[1:] for t in tags] == [["a1", "s0"], ["a1", "s1"]]
    again = submit(df, service, name="oa", max_batch_requests=4)  # a re-run cell pays nothing
    assert again.name == "oa" and paid(service) == 6 and len(batches(service)) == 2
    listed = batchframe.remote_batches("openai", api_key=KEY, base_url=f"{service.base_url}/v1")
    assert set(listed["job"]) == {"oa"} and not listed["orphan"].any()


def test_cancel_retry_and_delete_work_for_openai_jobs(service_factory):
    slow = service_factory(engine_options={"latency": 0.3}, workers=1)
    df = frame(12)
    job = submit(df, slow, name="cancelled")
    job.cancel()
    job.wait(poll_interval=0.05, timeout=60)
    statuses = df.batch.merge(job)["llm_status"].tolist()
    assert "canceled" in statuses
    assert job.retry() == statuses.count("canceled")
    job.wait(poll_interval=0.05, timeout=60)
    assert set(df.batch.merge(job)["llm_status"]) == {"succeeded"} and len(batches(slow)) == 2
    report = job.delete()
    assert report["deleted"].all()


def _child(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ))


def _kill_at(proc: subprocess.Popen, marker: str) -> None:
    for _ in range(10_000):
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith(marker):
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
            proc.stdout.close()
            proc.stderr.close()
            return
    proc.kill()
    raise AssertionError(f"child ended without {marker!r}: {proc.communicate(timeout=60)[1]}")


@pytest.mark.parametrize("where", ["after_upload_recorded", "inside_upload"])
def test_sigkill_between_upload_and_create_pays_once_and_leaks_no_file(service, monkeypatch, where):
    df = frame(5)
    wrap = ("def create(self, body, **kw):\n    print('KILL', flush=True); time.sleep(120)\n"
            "OpenAIProvider.create = create" if where == "after_upload_recorded" else
            "original = OpenAIProvider.stage\n"
            "def stage(self, body, **kw):\n    original(self, body, **kw); print('KILL', flush=True); time.sleep(120)\n"
            "OpenAIProvider.stage = stage")
    proc = _child("""
        import time, pandas as pd, batchframe
        from batchframe.providers.openai.client import OpenAIProvider
""" + textwrap.indent(wrap, " " * 8) + f"""
        df = pd.DataFrame({{"q": {df["q"].tolist()!r}}}, index=pd.Index({df.index.tolist()!r}, name="key"))
        df.batch.submit(prompt="q", model="gpt-4o-mini", max_tokens=64, provider="openai", api_key={KEY!r},
                        base_url={service.base_url + "/v1"!r}, name="killed")
    """)
    _kill_at(proc, "KILL")
    assert batches(service) == [] and len(input_files(service)) == 1  # uploaded, never created
    monkeypatch.setattr(orphans, "GRACE_SECONDS", 0.0)
    job = submit(df, service, name="killed")  # the same cell, run again
    assert len(input_files(service)) == 1  # the file uploaded before the kill is used, not a second one
    job.wait(poll_interval=0.05, timeout=60)
    assert len(batches(service)) == 1 and paid(service) == 5
    assert df.batch.merge(job)["llm_status"].tolist() == ["succeeded"] * 5
    assert input_files(service) == []


def test_an_embeddings_column_round_trips_with_skipped_rows(service):
    import numpy as np

    df = pd.DataFrame({"text": ["a red apple", None, "a green pear", "a red apple", ""]},
                      index=pd.Index([10, 11, 12, 13, 14], name="id"))
    job = df.batch.embed("text", model="text-embedding-3-small", dimensions=8, provider="openai", api_key=KEY,
                         base_url=f"{service.base_url}/v1", retry=FAST, name="vectors")
    job.wait(poll_interval=0.05, timeout=60)
    merged = df.batch.merge(job)
    assert merged["llm_status"].tolist() == ["succeeded", "skipped", "succeeded", "succeeded", "skipped"]
    assert str(merged["llm_embedding"].dtype) == "list<item: float>[pyarrow]"
    for label in (10, 12):
        want = api(service, "POST", "/embeddings", json={"model": "text-embedding-3-small", "dimensions": 8,
                                                        "input": df.loc[label, "text"]})["data"][0]["embedding"]
        assert np.allclose(merged.loc[label, "llm_embedding"], want, atol=1e-6)
    assert merged.loc[13, "llm_embedding"] == merged.loc[10, "llm_embedding"] and merged.loc[13, "llm_reused"]
    assert pd.isna(merged.loc[11, "llm_embedding"]) and paid(service) == 2
    assert (merged["llm_input_tokens"].dropna() > 0).all()
    again = df.batch.embed("text", model="text-embedding-3-small", dimensions=8, provider="openai", api_key=KEY,
                           base_url=f"{service.base_url}/v1", retry=FAST, name="vectors-again")
    again.wait(poll_interval=0.05, timeout=60)  # another name, the same requests: answered by the ledger
    assert paid(service) == 2
    assert df.batch.merge(again)["llm_embedding"].tolist() == merged["llm_embedding"].tolist()


def test_a_provider_without_embeddings_says_so_and_sends_nothing(service):
    df = pd.DataFrame({"text": ["x"]})
    with pytest.raises(batchframe.ConfigError, match="no batch embeddings API"):
        df.batch.embed("text", provider="anthropic", api_key=KEY, base_url=service.base_url)
    assert batches(service) == []


def test_the_cli_submits_waits_and_writes_results_of_an_openai_job(service, tmp_path, monkeypatch, capsys):
    from batchframe.cli.main import main

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", f"{service.base_url}/v1")
    source = tmp_path / "in.csv"
    pd.DataFrame({"id": ["a", "b"], "text": ["one", "two"]}).to_csv(source, index=False)
    args = ["submit", str(source), "--prompt", "Say: {text}", "--model", "gpt-4o-mini", "--max-tokens", "20",
            "--index-col", "id", "--name", "cli-oa", "--provider", "openai", "--wait", "--poll-interval", "0.05"]
    assert main(args) == 0 and "· ended" in capsys.readouterr().out
    assert main(args) == 0 and paid(service) == 2  # a re-run pays nothing
    out = tmp_path / "out.parquet"
    assert main(["results", "cli-oa", "-o", str(out), "--input", str(source), "--index-col", "id"]) == 0
    assert pd.read_parquet(out)["llm_text"].tolist() == ["Say: one", "Say: two"]
    assert main(["status", "cli-oa"]) == 0 and "succeeded 2" in capsys.readouterr().out


def test_a_batch_where_every_row_failed_has_only_an_error_file_and_every_row_says_why(service_factory):
    from batchframe.server import Faults

    failing = service_factory(faults=Faults(request_error_rate=1.0, request_error_type="overloaded_error"))
    df = frame(3)
    job = submit(df, failing, name="all-failed")
    job.wait(poll_interval=0.05, timeout=60)
    (batch,) = batches(failing)
    assert batch["status"] == "completed" and not batch.get("output_file_id") and batch["error_file_id"]
    merged = df.batch.merge(job)
    assert merged["llm_status"].tolist() == ["errored"] * 3 and merged["llm_error_type"].notna().all()
    assert job.retry() == 3  # a transient error type: resent
