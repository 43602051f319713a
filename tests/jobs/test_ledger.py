"""Request-level identity: the store's ledger sends each request once, whatever name, index, frame, revision
or working directory carries it, and every row still gets the answer to its own prompt.

What was paid is counted from the service's own batch list (the sum of its batches' request counts).
"""

from __future__ import annotations

import os

import pandas as pd
import pytest
from jobs_helpers import KEY, child, frame, kill_at_marker, service_batches, submit

import batchframe


def paid(service) -> int:
    """Requests the service was asked to answer, over every batch it holds."""
    return sum(sum(b["request_counts"].values()) for b in service_batches(service))


def texts(frame_: pd.DataFrame) -> list:
    return [None if pd.isna(v) else v for v in frame_["llm_text"].tolist()]


def test_the_same_prompts_under_other_indexes_and_names_pay_once_and_land_right(service):
    x = pd.DataFrame({"q": ["say one", "say two", "say three"]}, index=["alice", "bob", "carol"])
    y = pd.DataFrame({"q": ["say three", "say one", "say two"]}, index=["carol", "alice", "bob"])
    z = pd.DataFrame({"q": ["say two", "say three", "say one"]}, index=[101, 102, 103])
    jobs = {}
    for name, df in (("monday", x), ("tuesday", y), ("wednesday", z)):
        jobs[name] = submit(df, service, name=name)
        jobs[name].wait(poll_interval=0.05, timeout=60)
        assert jobs[name].name == name
    assert paid(service) == 3 and len(service_batches(service)) == 1
    for name, df in (("monday", x), ("tuesday", y), ("wednesday", z)):
        merged = df.batch.merge(batchframe.open_job(name))
        assert texts(merged) == df["q"].tolist() and set(merged["llm_status"]) == {"succeeded"}
    reused = y.batch.merge(jobs["tuesday"])
    assert reused["llm_reused"].tolist() == [True] * 3 and reused["llm_cost_usd"].sum() == 0
    assert jobs["tuesday"].status.counts["succeeded"] == 3


def test_one_edited_row_of_thirty_under_the_same_name_pays_one(service):
    df = frame(30)
    first = submit(df, service, name="weekly")
    first.wait(poll_interval=0.05, timeout=60)
    edited = df.copy()
    edited.iloc[7, 0] = "an edited prompt"
    again = submit(edited, service, name="weekly")
    again.wait(poll_interval=0.05, timeout=60)
    assert paid(service) == 31 and again.name == "weekly" and again.manifest["revision"] == 2
    merged = edited.batch.merge(batchframe.open_job("weekly"))
    assert texts(merged) == edited["q"].tolist() and set(merged["llm_status"]) == {"succeeded"}
    assert merged["llm_reused"].sum() == 29
    assert batchframe.Store().names(revisions=True) == ["weekly", "weekly~r1"]
    old = df.batch.merge(batchframe.Job("weekly~r1"))  # the earlier revision still answers its own frame
    assert texts(old) == df["q"].tolist()
    stale = df.batch.merge(batchframe.open_job("weekly"))  # the old prompt of row 7 is not the job's now
    assert stale["llm_status"].tolist().count("stale") == 1 and pd.isna(stale["llm_text"].iloc[7])
    rerun = submit(edited, service, name="weekly")  # the same cell again: the same job, nothing sent
    assert rerun.manifest["uid"] == again.manifest["uid"] and paid(service) == 31


def test_a_range_index_frame_that_gained_a_row_pays_one_on_resubmit(service):
    df = pd.DataFrame({"q": [f"question {i}" for i in range(5)]})
    submit(df, service, name="grow").wait(poll_interval=0.05, timeout=60)
    grown = pd.concat([pd.DataFrame({"q": ["a new first row"]}), df], ignore_index=True)
    job = submit(grown, service, name="grow")
    job.wait(poll_interval=0.05, timeout=60)
    assert paid(service) == 6
    merged = grown.batch.merge(job)
    assert texts(merged) == grown["q"].tolist() and merged["llm_reused"].tolist() == [False] + [True] * 5


def test_a_request_still_in_flight_elsewhere_is_waited_for_not_sent(service_factory):
    slow = service_factory(engine_options={"latency": 0.5}, workers=1)  # "first" runs for 2 s
    x = frame(4)
    first = submit(x, slow, name="first")
    second = submit(x.iloc[::-1], slow, name="second")  # while "first" still runs
    assert second.manifest["n_linked"] == 4 and second.status.state == "in_progress"
    second.wait(poll_interval=0.05, timeout=60)  # drives "first" too
    assert first.refresh().state == "ended" and paid(slow) == 4
    merged = x.iloc[::-1].batch.merge(second)
    assert texts(merged) == x["q"].iloc[::-1].tolist()


def test_a_link_whose_source_is_gone_is_sent_after_all(service_factory):
    import shutil

    slow = service_factory(engine_options={"latency": 1.0}, workers=1)  # "lost" runs for 3 s
    x = frame(3)
    submit(x, slow, name="lost")
    second = submit(x, slow, name="keeper")
    assert second.manifest["n_linked"] == 3
    shutil.rmtree(batchframe.Store().job_dir("lost"))  # e.g. removed by hand while it ran
    second.wait(poll_interval=0.05, timeout=60)
    merged = x.batch.merge(second)
    assert texts(merged) == x["q"].tolist() and not merged["llm_reused"].any()
    assert paid(slow) == 6  # the lost job's batch was paid too: nothing could use its answers


def test_new_true_and_dedupe_false_pay_again_on_purpose(service):
    x = frame(3)
    submit(x, service, name="base").wait(poll_interval=0.05, timeout=60)
    submit(x, service, name="again", new=True).wait(poll_interval=0.05, timeout=60)
    submit(x, service, name="sampled", dedupe=False).wait(poll_interval=0.05, timeout=60)
    assert paid(service) == 9


def test_the_same_notebook_from_two_working_directories_pays_once(service, tmp_path, monkeypatch):
    monkeypatch.delenv("BATCHFRAME_STORE")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data-home"))
    x = frame(5)
    for folder in ("project-a", "project-b"):
        (tmp_path / folder).mkdir()
        monkeypatch.chdir(tmp_path / folder)
        job = submit(x, service, name="sentiment")
        job.wait(poll_interval=0.05, timeout=60)
        assert texts(x.batch.merge(job)) == x["q"].tolist()
    assert paid(service) == 5 and len(service_batches(service)) == 1
    assert (tmp_path / "data-home" / "batchframe" / "jobs" / "sentiment" / "manifest.json").is_file()


def test_sigkill_during_a_twenty_shard_submit_then_a_rerun_pays_every_batch_once(service):
    df = frame(20)
    proc = child(f"""
        import time, pandas as pd, batchframe
        from batchframe.providers.anthropic.client import AnthropicProvider
        original, made = AnthropicProvider.create, []
        def create(self, body):
            batch = original(self, body)
            made.append(batch.id)
            if len(made) == 7:
                print('CREATED', batch.id, flush=True)
                time.sleep(120)
            return batch
        AnthropicProvider.create = create
        df = pd.DataFrame({{"q": {df["q"].tolist()!r}}}, index=pd.Index({df.index.tolist()!r}, name="key"))
        df.batch.submit(prompt="q", model="claude-haiku-4-5", max_tokens=64, provider="anthropic",
                        api_key={KEY!r}, base_url={service.base_url!r}, name="twenty", max_batch_requests=1)
    """)
    kill_at_marker(proc, "CREATED")
    assert proc.returncode == -9 and len(service_batches(service)) == 7
    job = submit(df, service, name="twenty", max_batch_requests=1)  # the same cell, run again
    job.wait(poll_interval=0.05, timeout=120)
    batches = service_batches(service)
    assert len(batches) == 20 and paid(service) == 20
    assert texts(df.batch.merge(job)) == df["q"].tolist()


@pytest.mark.parametrize("name", ["request_digest", "via_position", "same_as", "input_hash"])
def test_an_index_named_like_a_ledger_column_works_end_to_end(service, name):
    df = pd.DataFrame({"q": ["one", "two"]}, index=pd.Index(["a", "b"], name=name))
    job = submit(df, service, name=f"idx-{name.replace('_', '-')}")
    job.wait(poll_interval=0.05, timeout=60)
    again = submit(df.iloc[::-1], service, name=f"other-{name.replace('_', '-')}")
    again.wait(poll_interval=0.05, timeout=60)
    assert texts(df.batch.merge(job)) == ["one", "two"] and texts(df.iloc[::-1].batch.merge(again)) == ["two", "one"]
    assert paid(service) == 2 and os.path.isdir(batchframe.Store().root)


def _create_fails(monkeypatch, error):
    from batchframe.providers.anthropic.client import AnthropicProvider

    def fail(self, *args, **kwargs):
        raise error

    monkeypatch.setattr(AnthropicProvider, "create", fail)


def test_a_source_replanned_by_its_own_rerun_keeps_its_links_and_pays_once(service, monkeypatch):
    from batchframe.errors import TransportError

    df = frame(3)
    with monkeypatch.context() as outage:  # the network is down: nothing leaves, both jobs stay planned
        _create_fails(outage, TransportError("connection refused", maybe_sent=False))
        with pytest.raises(TransportError):
            submit(df, service, name="a")
        submit(df, service, name="b")  # links to a's planned rows; sending a fails too (logged, not raised)
    a = submit(df, service, name="a")  # the same cell again: replanned, and still the job b links to
    a.wait(poll_interval=0.05, timeout=60)
    b = batchframe.open_job("b", api_key=KEY)
    b.wait(poll_interval=0.05, timeout=60)
    assert paid(service) == 3 and texts(df.batch.merge(b)) == df["q"].tolist()


def test_a_source_refused_for_a_passing_reason_is_sent_by_its_job_not_twice(service, monkeypatch):
    from batchframe.errors import RateLimitError, TransportError

    df = frame(3)
    with monkeypatch.context() as outage:
        _create_fails(outage, TransportError("connection refused", maybe_sent=False))
        with pytest.raises(TransportError):
            submit(df, service, name="a")
    with monkeypatch.context() as busy:  # b links to a, and sending a meets a full queue: a is "failed"
        _create_fails(busy, RateLimitError("queue full", status=429, error_type="rate_limit_error"))
        b = submit(df, service, name="b")
    b.wait(poll_interval=0.05, timeout=60)  # a is sent (once) on b's behalf, and b waits for it
    a = batchframe.open_job("a", api_key=KEY)
    a.retry()
    a.wait(poll_interval=0.05, timeout=60)
    assert paid(service) == 3 and texts(df.batch.merge(b)) == df["q"].tolist()


def test_an_open_handle_stays_on_its_job_when_the_name_gets_a_new_revision(service):
    df = pd.DataFrame({"q": ["one", "two"]}, index=["x", "y"])
    handle = submit(df, service, name="w")
    handle.wait(poll_interval=0.05, timeout=60)
    edited = pd.DataFrame({"q": ["two", "EDITED"]}, index=["x", "y"])  # another kernel reuses the name
    submit(edited, service, name="w").wait(poll_interval=0.05, timeout=60)
    handle.refresh()
    assert handle.name == "w~r1" and texts(handle.results()) == ["one", "two"]
    assert texts(batchframe.open_job("w", api_key=KEY).results()) == ["two", "EDITED"]


def test_a_replan_whose_lines_cannot_be_written_keeps_the_plan_before_it_whole(service, monkeypatch):
    # The requests file and the lines are written at the same time: when the lines fail, the earlier plan's
    # requests file, lines file and manifest stay as they were, and no half-written file stays behind.
    from batchframe.errors import TransportError
    from batchframe.jobs import submit as submit_module

    with monkeypatch.context() as outage:  # nothing leaves: the name's first plan stays planned
        _create_fails(outage, TransportError("connection refused", maybe_sent=False))
        with pytest.raises(TransportError):
            submit(frame(5, word="old"), service, name="x", max_batch_requests=2)
    store = batchframe.Store(os.environ["BATCHFRAME_STORE"])
    folder = store.job_dir("x")
    before = {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as full:
        full.setattr(submit_module, "write_lines", disk_full)
        with pytest.raises(OSError, match="No space"):
            submit(frame(4, word="new"), service, name="x", max_batch_requests=2)
    after = {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file() and path.name != "job.lock"}
    assert after == {name: data for name, data in before.items() if name != "job.lock"}
    assert len(service_batches(service)) == 0
    job = submit(frame(5, word="old"), service, name="x", max_batch_requests=2)  # the first plan, sent as it was
    job.wait(poll_interval=0.05, timeout=60)
    assert texts(frame(5, word="old").batch.merge(job)) == frame(5, word="old")["q"].tolist() and paid(service) == 5


def test_a_job_replanned_with_another_frame_sends_its_own_lines_from_disk(service, monkeypatch):
    # A plan's lines go to a file of its own, named by its requests file: the replan's later wave (read back from
    # disk) sends the new frame's prompts, and the first plan's lines file is gone.
    from batchframe.errors import TransportError

    with monkeypatch.context() as outage:  # nothing leaves: the name's first plan stays planned
        _create_fails(outage, TransportError("connection refused", maybe_sent=False))
        with pytest.raises(TransportError):
            submit(frame(5, word="old"), service, name="x", max_batch_requests=2)
    df = frame(4, word="new")
    job = submit(df, service, name="x", max_batch_requests=2, max_in_flight=2)
    assert len(job.batch_ids()) == 1  # the second shard waits for the first: wait() reads its lines back
    job.wait(poll_interval=0.05, timeout=60)
    assert texts(df.batch.merge(job)) == df["q"].tolist() and paid(service) == 4 and len(service_batches(service)) == 2
    assert len(list(job.store.job_dir("x").glob("lines-*.bin"))) == 1
