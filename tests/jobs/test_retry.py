"""job.retry(): only the rows that failed go out again, as a new attempt of the same job."""

import time

import pandas as pd
import pytest
from jobs_helpers import frame, harvested, sent_positions, service_batches, submit

import batchframe
from batchframe import col
from batchframe.server import Faults

RETRYABLE = ("errored", "expired", "canceled")


def _failed_positions(job, kinds=RETRYABLE) -> list[int]:
    status = job.results()["llm_status"]
    return sorted(i for i, s in enumerate(status.tolist()) if s in kinds)


@pytest.mark.slow
def test_errored_and_expired_rows_and_only_they_are_resubmitted(service_factory):
    # Two requests per 0.2 s against a 1 s TTL: some rows expire; half of the processed ones error.
    service = service_factory(engine_options={"latency": 0.2, "max_concurrency": 2}, workers=1, ttl_seconds=1.0,
                              faults=Faults(request_error_rate=0.5, request_error_type="overloaded_error", seed=3))
    df = frame(24)
    job = submit(df, service)
    job.wait(poll_interval=0.05, timeout=60)
    first = job.results()["llm_status"].value_counts()
    assert first.get("errored", 0) >= 1 and first.get("expired", 0) >= 1 and first.get("succeeded", 0) >= 1
    service.set_faults(Faults())
    seen_attempts = 1
    for _ in range(12):  # each attempt gets further before its own TTL; bounded
        expected = _failed_positions(job)
        if not expected:
            break
        n_batches = len(service_batches(service))
        assert job.retry() == len(expected)
        seen_attempts += 1
        assert sent_positions(job, seen_attempts) == expected  # exactly the failed rows, nothing else
        new = service_batches(service)[: len(service_batches(service)) - n_batches]
        assert sum(sum(b["request_counts"].values()) for b in new) == len(expected)
        job.wait(poll_interval=0.05, timeout=60)
    merged = df.batch.merge(job)
    assert (merged["llm_status"] == "succeeded").all() and merged["llm_text"].tolist() == df["q"].tolist()
    assert seen_attempts >= 2 and merged["llm_attempt"].max() == seen_attempts
    assert set(merged["llm_attempt"]) <= set(range(1, seen_attempts + 1)) and (merged["llm_attempt"] == 1).any()
    assert merged["llm_custom_id"].tolist() == [f"r{p}" if a == 1 else f"r{p}-a{a}"
                                                for p, a in enumerate(merged["llm_attempt"].tolist())]
    n_batches = len(service_batches(service))
    assert job.retry() == 0 and job.retry() == 0  # retrying without new failures submits nothing
    assert len(service_batches(service)) == n_batches


def test_invalid_requests_are_not_retried_unless_asked(service):
    df = pd.DataFrame({"q": ["fine", "too long", "also fine"], "mt": [16, 9_999_999, 16]})
    job = submit(df, service, max_tokens=col("mt"), name="bad-row")
    job.wait(poll_interval=0.05, timeout=60)
    results = job.results()
    assert results["llm_status"].tolist() == ["succeeded", "errored", "succeeded"]
    assert results["llm_error_type"].iloc[1] == "invalid_request_error"
    assert job.retry() == 0 and len(service_batches(service)) == 1
    assert job.retry(error_types={"invalid_request_error"}) == 1
    job.wait(poll_interval=0.05, timeout=60)
    assert sent_positions(job, 2) == [1]
    assert job.results()["llm_attempt"].tolist() == [1, 2, 1]  # failed again, now from attempt 2
    with pytest.raises(batchframe.InputError, match="collection"):
        job.retry(error_types="api_error")


def test_a_second_retry_while_the_first_runs_submits_nothing(service_factory, monkeypatch, capsys):
    service = service_factory(engine_options={"latency": 0.3}, faults=Faults(request_error_rate=1.0, seed=1))
    df = frame(3)
    job = submit(df, service)
    job.wait(poll_interval=0.05, timeout=60)
    service.set_faults(Faults())
    assert job.retry() == 3 and job.retry() == 0  # the three rows are in flight in attempt 2
    assert len(service_batches(service)) == 2
    monkeypatch.delenv("BATCHFRAME_NO_PROGRESS")
    capsys.readouterr()
    status = job.wait(poll_interval=0.05, timeout=60)
    assert job.results()["llm_status"].tolist() == ["succeeded"] * 3
    # Shard counts add both attempts; the status and the bar count each row once, at its latest attempt.
    by_shards = {key: sum(s.counts[key] for s in status.shards) for key in ("errored", "succeeded")}
    assert by_shards == {"errored": 3, "succeeded": 3}
    assert status.counts == {"processing": 0, "succeeded": 3, "errored": 0, "canceled": 0, "expired": 0}
    bar = capsys.readouterr().err
    assert "3/3" in bar and "6/6" not in bar and "ok=3 err=0" in bar


def test_cancel_mid_job_then_retry_every_row_succeeds_exactly_once(service_factory):
    service = service_factory(engine_options={"latency": 0.2, "max_concurrency": 1}, workers=1)
    df = frame(12)
    job = submit(df, service, max_batch_requests=5)  # 3 shards
    for _ in range(500):
        if sum(s.counts["succeeded"] for s in job.refresh().shards) >= 2:
            break
        time.sleep(0.02)
    job.cancel()
    job.wait(poll_interval=0.05, timeout=60)
    canceled = _failed_positions(job, ("canceled",))
    assert canceled and len(canceled) < 12
    assert job.retry() == len(canceled) and sent_positions(job, 2) == canceled
    assert job.manifest["attempts"][1]["replaces"] == {"canceled": len(canceled)}
    job.wait(poll_interval=0.05, timeout=60)
    merged = df.batch.merge(job)
    assert (merged["llm_status"] == "succeeded").all() and merged["llm_text"].tolist() == df["q"].tolist()
    lines = harvested(job)
    wins = lines[lines["status"] == "succeeded"].groupby("position").size()
    assert len(wins) == 12 and (wins == 1).all()  # every row succeeded exactly once over all attempts
    assert sorted(lines.loc[lines["attempt"] == 2, "position"]) == canceled
