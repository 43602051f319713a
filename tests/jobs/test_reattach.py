"""Re-attach from a new process, the jobs table, partial harvest, and downloads that cannot half-land."""

import json
import os
import time

import pandas as pd
import pytest
from jobs_helpers import KEY, child, frame, kill_at_marker, run_child, service_batches, submit

import batchframe
from batchframe.server import Faults


def test_a_new_process_reattaches_by_name_and_merges_without_resubmitting(service_factory):
    service = service_factory(engine_options={"latency": 0.3})
    df = frame(6)
    job = submit(df, service, name="reviews")
    before = service_batches(service)
    assert len(before) == 1 and before[0]["processing_status"] == "in_progress"
    out = run_child(f"""
        import json, pandas as pd, batchframe
        df = pd.DataFrame({{"q": {df["q"].tolist()!r}}}, index=pd.Index({df.index.tolist()!r}, name="key"))
        job = batchframe.open_job("reviews", api_key={KEY!r}, base_url={service.base_url!r})
        job.wait(poll_interval=0.05, timeout=60)
        merged = df.batch.merge(job)
        print(json.dumps({{"text": merged["llm_text"].tolist(), "status": merged["llm_status"].tolist(),
                           "batch": merged["llm_batch_id"].tolist(), "index": merged.index.tolist()}}))
    """)
    got = json.loads(out)
    assert got["index"] == df.index.tolist() and got["text"] == df["q"].tolist()
    assert got["status"] == ["succeeded"] * 6 and set(got["batch"]) == {before[0]["id"]}
    assert [b["id"] for b in service_batches(service)] == [before[0]["id"]]  # nothing was sent again
    again = batchframe.open_job("reviews", api_key=KEY, base_url=service.base_url)
    assert again.status.state == "ended" and again.results()["llm_text"].tolist() == df["q"].tolist()
    assert job.name == "reviews"


def test_jobs_lists_every_job_with_state_counts_and_times(service_factory):
    service = service_factory(engine_options={"latency": 0.5, "max_concurrency": 1}, workers=1)
    done = submit(pd.DataFrame({"q": ["a", "b", None]}), service, name="done")
    done.wait(poll_interval=0.05, timeout=60)
    running = submit(frame(4), service, name="running", model="claude-sonnet-4-5")
    table = batchframe.jobs().set_index("name")
    assert list(table.index) == ["done", "running"]
    assert table.loc["done", ["state", "succeeded", "skipped", "pending", "rows"]].tolist() == ["ended", 2, 1, 0, 3]
    assert table.loc["running", ["state", "pending", "succeeded", "model"]].tolist() == [
        "in_progress", 4, 0, "claude-sonnet-4-5"]
    assert pd.notna(table.loc["done", "ended_at"]) and pd.isna(table.loc["running", "ended_at"])
    assert table.loc["done", "created_at"] <= table.loc["running", "created_at"]
    assert table["attempts"].tolist() == [1, 1] and table["batches"].tolist() == [1, 1]
    assert running.cancel().state in ("canceling", "ended")


def test_open_job_unknown_name_says_which_exist(service):
    submit(pd.DataFrame({"q": ["a"]}), service, name="known")
    with pytest.raises(batchframe.JobNotFoundError, match="known"):
        batchframe.open_job("nope")


def test_ended_shards_are_harvested_while_others_still_run(service_factory):
    service = service_factory(engine_options={"latency": 0.4, "max_concurrency": 1}, workers=1)
    df = frame(8)
    job = submit(df, service, max_batch_requests=2)  # 4 shards, served one request at a time, in order
    for _ in range(400):
        status = job.refresh()
        first = status.shards[0]
        if first.processing_status == "ended":
            break
        time.sleep(0.02)
    assert first.processing_status == "ended"
    assert status.shards[-1].processing_status == "in_progress"
    shard_file = job.store.results_path(job.name, 1, 0)
    assert shard_file.is_file() and job.manifest["attempts"][0]["shards"][0]["state"] == "harvested"
    results = job.results()
    assert results["llm_status"].iloc[:2].tolist() == ["succeeded"] * 2
    assert results["llm_text"].iloc[:2].tolist() == df["q"].iloc[:2].tolist()
    assert results["llm_status"].iloc[-2:].tolist() == ["pending"] * 2
    job.cancel()


def test_a_cut_download_leaves_no_results_file(service_factory):
    service = service_factory()
    df = frame(30, word="a much longer sentence to make the results stream long enough, row")
    job = submit(df, service)
    batch_id = job.batch_ids()[0]
    for _ in range(500):
        if service_batches(service)[0]["processing_status"] == "ended":
            break
        time.sleep(0.02)
    service.set_faults(Faults(cut_results_after_bytes=2000))
    with pytest.raises(batchframe.TransportError, match="incomplete"):
        job.refresh()
    folder = job.store.job_dir(job.name) / "results"
    assert not folder.exists() or list(folder.iterdir()) == []
    assert job.status.shards[0].processing_status == "ended"
    assert set(job.results()["llm_status"]) == {"pending"}  # nothing taken as complete
    service.set_faults(Faults())
    job.refresh()
    assert job.results()["llm_text"].tolist() == df["q"].tolist()
    assert job.results()["llm_batch_id"].unique().tolist() == [batch_id]


def test_a_process_killed_while_writing_results_leaves_them_unharvested(service):
    df = frame(5)
    job = submit(df, service, name="writer")
    proc = child(f"""
        import os, time
        import batchframe
        original = os.replace
        def hang_before_rename(src, dst, *args, **kwargs):
            if str(dst).endswith(".parquet"):  # the temporary file is complete; the rename has not happened
                print("WRITTEN", src, flush=True)
                time.sleep(120)
            return original(src, dst, *args, **kwargs)
        os.replace = hang_before_rename
        job = batchframe.open_job("writer", api_key={KEY!r}, base_url={service.base_url!r})
        job.wait(poll_interval=0.05, timeout=60)
    """)
    line = kill_at_marker(proc, "WRITTEN")
    tmp = line.split(" ", 1)[1]
    assert os.path.basename(tmp).startswith(".a1-s0000.parquet.") and os.path.exists(tmp)
    again = batchframe.open_job("writer", api_key=KEY, base_url=service.base_url)
    assert again.manifest["attempts"][0]["shards"][0]["state"] in ("submitted", "ended")
    assert not job.store.results_path("writer", 1, 0).exists()
    assert set(again.results()["llm_status"]) == {"pending"}
    again.wait(poll_interval=0.05, timeout=60)
    assert again.results()["llm_text"].tolist() == df["q"].tolist()


def test_jobs_reports_an_unreadable_manifest_without_hiding_the_others(service):
    job = submit(pd.DataFrame({"q": ["a"]}), service, name="fine")
    broken = job.store.root / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")
    table = batchframe.jobs().set_index("name")
    assert table.loc["fine", "state"] == "in_progress" or table.loc["fine", "state"] == "ended"
    assert table.loc["broken", "state"].startswith("unreadable")
