"""The SIGKILL window between creating a remote batch and recording its id, with real SIGKILLs.

The child process is the user's kernel: it submits through the public API, with the provider's
``create`` wrapped (in the child only) to print a marker and sleep at the exact point where the
process must die. The parent sends SIGKILL there, then plays "the next run".
"""

import logging

import anthropic
import pytest
from jobs_helpers import KEY, child, frame, kill_at_marker, service_batches, submit

import batchframe
from batchframe.jobs import orphans

ROWS = 5


def _killed_submit(service, df, *, after_post: bool, name: str = "killed", max_tokens: int = 64,
                   max_batch_requests: int | None = None) -> str:
    """Submit ``df`` as job ``name`` in a child, SIGKILLed right after (or right before) the POST."""
    wrapper = ("batch = original(self, body); print('CREATED', batch.id, flush=True); time.sleep(120)"
               if after_post else "print('POSTING', flush=True); time.sleep(120)")
    proc = child(f"""
        import time, pandas as pd, batchframe
        from batchframe.providers.anthropic.client import AnthropicProvider
        original = AnthropicProvider.create
        def create(self, body):
            {wrapper}
        AnthropicProvider.create = create
        df = pd.DataFrame({{"q": {df["q"].tolist()!r}}}, index=pd.Index({df.index.tolist()!r}, name="key"))
        df.batch.submit(prompt="q", model="claude-haiku-4-5", max_tokens={max_tokens}, provider="anthropic",
                        api_key={KEY!r}, base_url={service.base_url!r}, name={name!r},
                        max_batch_requests={max_batch_requests!r})
    """)
    line = kill_at_marker(proc, "CREATED" if after_post else "POSTING")
    assert proc.returncode == -9
    return line.split()[-1]


def test_killed_after_the_post_the_next_run_adopts_the_batch_and_sends_nothing(service, caplog):
    df = frame(ROWS)
    batch_id = _killed_submit(service, df, after_post=True)
    shard = batchframe.open_job("killed", base_url=service.base_url).manifest["attempts"][0]["shards"][0]
    assert shard["state"] == "creating" and shard["batch_id"] is None and shard["intent_at"]
    orphan = batchframe.remote_batches("anthropic", api_key=KEY, base_url=service.base_url).set_index("id")
    assert orphan.loc[batch_id, "orphan"] and orphan.loc[batch_id, "suspected_job"] == "killed"
    assert batchframe.jobs().set_index("name").loc["killed", "interrupted"] == 1

    with caplog.at_level(logging.WARNING, logger="batchframe"):
        job = submit(df, service, name="killed")  # the same cell, re-run in a new kernel
    assert [b["id"] for b in service_batches(service)] == [batch_id]
    assert job.batch_ids() == [batch_id]
    assert "'killed'" in caplog.text and batch_id in caplog.text and "adopted" in caplog.text
    job.wait(poll_interval=0.05, timeout=60)
    merged = df.batch.merge(job)
    assert merged["llm_text"].tolist() == df["q"].tolist()  # every answer on its own row
    assert set(merged["llm_batch_id"]) == {batch_id}
    assert job.manifest["attempts"][0]["shards"][0]["adopted"]["verified"] is True
    assert len(service_batches(service)) == 1
    listed = batchframe.remote_batches("anthropic", api_key=KEY, base_url=service.base_url)
    assert listed["job"].tolist() == ["killed"] and not listed["orphan"].any()


def test_killed_before_the_post_the_shard_is_sent_once_after_the_grace(service, caplog, monkeypatch):
    df = frame(ROWS)
    _killed_submit(service, df, after_post=False)
    assert service_batches(service) == []
    with caplog.at_level(logging.WARNING, logger="batchframe"):
        job = batchframe.open_job("killed", api_key=KEY, base_url=service.base_url)
        job.send_unsent()  # within the grace: a batch might still appear, so nothing is sent yet
    assert service_batches(service) == [] and "checking again" in caplog.text
    assert job.manifest["attempts"][0]["shards"][0]["state"] == "creating"
    monkeypatch.setattr(orphans, "GRACE_SECONDS", 0.0)
    job = submit(df, service, name="killed")
    assert len(service_batches(service)) == 1 and job.batch_ids() == [service_batches(service)[0]["id"]]
    job.wait(poll_interval=0.05, timeout=60)
    assert job.results()["llm_text"].tolist() == df["q"].tolist()
    submit(df, service, name="killed")
    assert len(service_batches(service)) == 1


def test_two_matching_orphans_make_it_ask_and_a_wrong_adoption_is_undone(service):
    df = frame(ROWS)
    batch_id = _killed_submit(service, df, after_post=True)
    with anthropic.Anthropic(base_url=service.base_url, api_key=KEY) as sdk:  # another tool, same size, same minute
        other = sdk.messages.batches.create(requests=[
            {"custom_id": f"other-{i}", "params": {"model": "claude-haiku-4-5", "max_tokens": 8,
                                                    "messages": [{"role": "user", "content": "not yours"}]}}
            for i in range(ROWS)]).id
    job = batchframe.open_job("killed", api_key=KEY, base_url=service.base_url)
    with pytest.raises(batchframe.OrphanBatchError) as info:
        job.wait(poll_interval=0.05, timeout=30)
    assert set(info.value.candidates) == {batch_id, other} and info.value.job == "killed"
    assert batch_id in str(info.value) and other in str(info.value)
    assert "batchframe.open_job('killed').adopt(" in str(info.value) and KEY not in str(info.value)
    assert len(service_batches(service)) == 2  # nothing sent while asking

    job.adopt(other)  # the wrong one: its result ids are not the shard's, so nothing may land on a row
    with pytest.raises(batchframe.OrphanBatchError, match="adoption undone"):
        job.wait(poll_interval=0.05, timeout=30)
    assert set(job.results()["llm_status"]) == {"pending"}
    assert job.manifest["attempts"][0]["shards"][0]["state"] == "creating"
    job.wait(poll_interval=0.05, timeout=30)  # the rejected one no longer counts: the right one is adopted
    assert job.batch_ids() == [batch_id]
    assert df.batch.merge(job)["llm_text"].tolist() == df["q"].tolist()
    assert len(service_batches(service)) == 2


def test_an_orphan_two_interrupted_jobs_could_own_is_asked_about_not_adopted(service, monkeypatch):
    df = frame(ROWS)
    batch_a = _killed_submit(service, df, after_post=True, name="job-a")
    _killed_submit(service, df, after_post=False, name="job-b", max_tokens=32)  # same size, never POSTed
    monkeypatch.setattr(orphans, "GRACE_SECONDS", 0.0)
    job_b = batchframe.open_job("job-b", api_key=KEY, base_url=service.base_url)
    with pytest.raises(batchframe.OrphanBatchError, match="'job-a'") as info:
        job_b.send_unsent()
    assert info.value.candidates == (batch_a,)
    with pytest.raises(batchframe.OrphanBatchError, match="'job-b'"):
        batchframe.open_job("job-a", api_key=KEY, base_url=service.base_url).refresh()
    assert len(service_batches(service)) == 1 and job_b.batch_ids() == []
    job_a = batchframe.open_job("job-a", api_key=KEY, base_url=service.base_url)
    job_a.adopt(batch_a)  # the user answers; job-b's shard then has no candidate left and is sent
    job_b.send_unsent()
    assert len(service_batches(service)) == 2 and job_b.batch_ids() != [batch_a]
    for job in (job_a, job_b):
        job.wait(poll_interval=0.05, timeout=60)
        assert df.batch.merge(job)["llm_text"].tolist() == df["q"].tolist()


def test_orphans_ask_mode_asks_even_for_a_single_candidate(service, monkeypatch):
    batch_id = _killed_submit(service, frame(ROWS), after_post=True)
    monkeypatch.setenv("BATCHFRAME_ORPHANS", "ask")
    job = batchframe.open_job("killed", api_key=KEY, base_url=service.base_url)
    with pytest.raises(batchframe.OrphanBatchError) as info:
        job.refresh()
    assert info.value.candidates == (batch_id,) and job.batch_ids() == []
    job.adopt(batch_id)
    assert job.wait(poll_interval=0.05, timeout=60).counts["succeeded"] == ROWS


def test_cancel_after_a_kill_adopts_and_cancels_the_orphan(service_factory):
    service = service_factory(engine_options={"latency": 0.3, "max_concurrency": 1}, workers=1)
    df = frame(ROWS)
    batch_id = _killed_submit(service, df, after_post=True)
    job = batchframe.open_job("killed", api_key=KEY, base_url=service.base_url)
    assert job.cancel().state in ("canceling", "ended") and job.batch_ids() == [batch_id]
    assert service_batches(service)[0]["cancel_initiated_at"] is not None
    job.wait(poll_interval=0.05, timeout=60)
    assert "canceled" in set(job.results()["llm_status"])
    assert job.retry() >= 1
    job.wait(poll_interval=0.05, timeout=60)
    assert df.batch.merge(job)["llm_text"].tolist() == df["q"].tolist()


def test_killed_after_a_later_shard_the_earlier_ids_are_on_disk_and_nothing_is_paid_twice(service):
    # A shard's batch id is saved with the next shard's intent: killed after the second POST, the first id is
    # on disk, the second shard is "creating" (adopted by the next run), the third was never sent.
    df = frame(6)
    proc = child(f"""
        import time, pandas as pd, batchframe
        from batchframe.providers.anthropic.client import AnthropicProvider
        original, made = AnthropicProvider.create, []
        def create(self, body):
            batch = original(self, body)
            made.append(batch.id)
            if len(made) == 2:
                print('CREATED', batch.id, flush=True); time.sleep(120)
            return batch
        AnthropicProvider.create = create
        df = pd.DataFrame({{"q": {df["q"].tolist()!r}}}, index=pd.Index({df.index.tolist()!r}, name="key"))
        df.batch.submit(prompt="q", model="claude-haiku-4-5", max_tokens=64, provider="anthropic",
                        api_key={KEY!r}, base_url={service.base_url!r}, name="three", max_batch_requests=2)
    """)
    second = kill_at_marker(proc, "CREATED").split()[-1]
    assert proc.returncode == -9
    shards = batchframe.open_job("three", base_url=service.base_url).manifest["attempts"][0]["shards"]
    assert [s["state"] for s in shards] == ["submitted", "creating", "planned"]
    first = shards[0]["batch_id"]
    assert first and first != second and shards[1]["batch_id"] is None
    job = submit(df, service, name="three", max_batch_requests=2)
    assert job.batch_ids()[:2] == [first, second] and len(service_batches(service)) == 3
    job.wait(poll_interval=0.05, timeout=60)
    assert df.batch.merge(job)["llm_text"].tolist() == df["q"].tolist()


def test_killed_after_the_first_of_three_creates_another_process_sends_the_rest_from_the_stored_lines(service):
    # The lines are on disk (the requests file locates them) before the first create: a kernel killed after it
    # leaves a job that any process can finish, without the frame, paying for each shard once.
    df = frame(6)
    first = _killed_submit(service, df, after_post=True, name="rest", max_batch_requests=2)
    job = batchframe.open_job("rest", base_url=service.base_url, api_key=KEY)
    job.wait(poll_interval=0.05, timeout=60)  # adopts the first batch, sends the two others from disk
    assert job.batch_ids()[0] == first and len(service_batches(service)) == 3
    out = df.batch.merge(job)
    assert out["llm_text"].tolist() == df["q"].tolist() and out.index.equals(df.index)
