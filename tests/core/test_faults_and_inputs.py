"""Injected faults, per-row errors and named bad inputs, against the local service over HTTP."""

import json

import pandas as pd
import pytest
from helpers import KEY, remote_batches, submit, values

import batchframe
from batchframe.server import Faults

TERMINAL = {"succeeded", "errored", "canceled", "expired", "skipped"}


def test_http_errors_and_a_cut_results_stream_still_end_with_every_row_once(service_factory):
    faults = Faults(
        http_error_rate=0.2,
        http_error_statuses=(429, 529, 500),
        retry_after_seconds=0.01,
        cut_results_after_bytes=1500,
        seed=7,
    )
    service = service_factory(faults=faults)
    df = pd.DataFrame(
        {"q": [f"question {i} " + "pad " * 20 for i in range(120)]},
        index=pd.Index([f"k{i}" for i in range(120)]),
    )
    job = submit(df, service, max_batch_requests=50)
    with pytest.raises(batchframe.TransportError, match="incomplete|cut"):
        job.wait(poll_interval=0.05, timeout=60)
    # nothing half-downloaded was taken for a result: the cut shard is not harvested
    assert not any(
        s["state"] == "harvested" and s["n_results"] < s["n_requests"] for s in job.manifest["attempts"][0]["shards"]
    )
    service.set_faults(
        Faults(http_error_rate=0.2, http_error_statuses=(429, 529, 500), retry_after_seconds=0.01, seed=8)
    )
    status = job.wait(poll_interval=0.05, timeout=60)
    merged = df.batch.merge(job)
    assert status.ended and set(merged["llm_status"]) <= TERMINAL
    assert (merged["llm_text"] == merged["q"]).all()
    assert merged["llm_custom_id"].is_unique and len(merged) == 120
    assert len(remote_batches(service)) == 3


def test_wait_rides_out_a_few_failed_polls(service_factory):
    import threading

    service = service_factory(faults=Faults(cut_results_after_bytes=300))
    df = pd.DataFrame({"q": [f"question {i} " + "pad " * 20 for i in range(20)]})
    job = submit(df, service)
    fixed = threading.Timer(0.3, service.set_faults, args=(Faults(),))
    fixed.start()
    try:
        status = job.wait(poll_interval=0.05, timeout=60)
    finally:
        fixed.join()
    assert status.ended and (job.results()["llm_text"] == df["q"]).all()


def test_create_answers_lost_after_the_batch_was_made_never_pay_twice(service_factory):
    faults = Faults(
        http_error_rate=0.5,
        http_error_statuses=(500, 529, 429),
        http_errors_after_processing=True,
        retry_after_seconds=0.01,
        seed=5,
    )
    service = service_factory(faults=faults)
    df = pd.DataFrame({"q": [f"q{i}" for i in range(60)]})
    job = submit(df, service, max_batch_requests=10)
    adopted = [s for s in job.manifest["attempts"][0]["shards"] if s.get("adopted")]
    assert adopted  # some answers were lost, and their batches were found instead of created again
    service.set_faults(Faults())
    assert len(remote_batches(service)) == 6
    job.wait(poll_interval=0.05, timeout=60)
    merged = df.batch.merge(job)
    assert (merged["llm_text"] == merged["q"]).all() and merged["llm_batch_id"].nunique() == 6


def test_errored_rows_keep_error_type_and_message(service_factory):
    service = service_factory(faults=Faults(request_error_rate=0.5, request_error_type="overloaded_error", seed=3))
    df = pd.DataFrame({"q": [f"q{i}" for i in range(40)]})
    job = submit(df, service)
    job.wait(poll_interval=0.05, timeout=60)
    merged = df.batch.merge(job)
    errored = merged[merged["llm_status"] == "errored"]
    assert 0 < len(errored) < 40
    assert (errored["llm_error_type"] == "overloaded_error").all()
    assert errored["llm_error_message"].str.len().min() > 0 and errored["llm_text"].isna().all()
    assert errored["llm_input_tokens"].isna().all() and errored["llm_cost_usd"].isna().all()
    ok = merged[merged["llm_status"] == "succeeded"]
    assert (ok["llm_text"] == ok["q"]).all() and ok["llm_error_type"].isna().all()


def test_unknown_model_is_an_errored_row_not_an_exception(service):
    job = submit(pd.DataFrame({"q": ["hi"]}), service, model="claude-does-not-exist-9")
    job.wait(poll_interval=0.05, timeout=60)
    row = job.results().iloc[0]
    assert row["llm_status"] == "errored" and row["llm_error_type"] == "not_found_error"
    assert "claude-does-not-exist-9" in row["llm_error_message"]


def test_missing_column_is_named_and_nothing_is_sent(service):
    with pytest.raises(batchframe.InputError, match="'body'"):
        submit(pd.DataFrame({"title": ["x"]}), service, prompt="{title}: {body}")
    assert remote_batches(service) == [] and batchframe.Store().names() == []


def test_nan_and_empty_prompts_are_skipped_and_not_sent(service):
    df = pd.DataFrame({"q": ["a", float("nan"), None, "  ", "b"]})
    job = submit(df, service)
    assert sum(remote_batches(service)[0]["request_counts"].values()) == 2
    job.wait(poll_interval=0.05, timeout=60)
    assert job.results()["llm_status"].tolist() == ["succeeded", "skipped", "skipped", "skipped", "succeeded"]


def test_all_prompts_empty_is_an_input_error(service):
    with pytest.raises(batchframe.InputError, match="no row to send"):
        submit(pd.DataFrame({"q": [None, ""]}), service)


def test_duplicate_index_labels_are_keyed_by_position(service):
    df = pd.DataFrame({"q": ["first", "second", "third"]}, index=["dup", "dup", "solo"])
    job = submit(df, service)
    job.wait(poll_interval=0.05, timeout=60)
    merged = df.batch.merge(job)
    assert values(merged["llm_text"]) == ["first", "second", "third"]
    with pytest.raises(batchframe.InputError, match="duplicate labels"):
        df.iloc[[2, 0, 1]].batch.merge(job)


def test_a_row_over_the_byte_limit_is_refused_before_sending(service):
    df = pd.DataFrame({"q": ["short", "long " * 5000]}, index=["ok", "huge"])
    with pytest.raises(batchframe.LimitError, match="request 1 .* over the shard limit"):
        submit(df, service, max_batch_bytes=10_000)
    assert remote_batches(service) == []


def test_a_body_over_the_service_limit_is_a_request_too_large_error(service_factory):
    service = service_factory(max_body_bytes=5_000)
    df = pd.DataFrame({"q": [f"row {i}: " + "word " * 400 for i in range(10)]})  # distinct: each one is sent
    with pytest.raises(batchframe.RequestTooLargeError) as info:
        submit(df, service)
    assert info.value.status == 413
    job = batchframe.Job.open(batchframe.Store().names()[0])
    assert job.manifest["attempts"][0]["shards"][0]["state"] == "failed"
    assert remote_batches(service) == []
    # re-run with a lower limit: the same job (same bodies), re-planned since nothing was ever created
    again = submit(df, service, max_batch_bytes=4_000)
    assert again.name == job.name and len(again.status.shards) == len(remote_batches(service)) > 1
    again.wait(poll_interval=0.05, timeout=60)
    assert (again.results()["llm_status"] == "succeeded").all()


def test_retries_give_up_with_the_mapped_error_and_honour_retry_after(service_factory):
    import time

    service = service_factory(faults=Faults(http_error_rate=1.0, http_error_statuses=(429,), retry_after_seconds=0.2))
    started = time.monotonic()
    with pytest.raises(batchframe.RateLimitError) as info:
        submit(pd.DataFrame({"q": ["a"]}), service, retry=batchframe.RetryPolicy(max_retries=2, backoff=0.001))
    assert time.monotonic() - started >= 0.4  # two waits of retry-after, not the 1 ms backoff
    assert info.value.status == 429 and info.value.error_type == "rate_limit_error" and info.value.request_id
    service.set_faults(Faults(http_error_rate=1.0, http_error_statuses=(529,)))
    with pytest.raises(batchframe.OverloadedError):
        submit(pd.DataFrame({"q": ["a"]}), service, retry=batchframe.RetryPolicy(max_retries=1, backoff=0.001))
    assert remote_batches_after_faults_off(service) == []


def remote_batches_after_faults_off(service):
    service.set_faults(Faults())
    return remote_batches(service)


def test_wrong_key_is_an_authentication_error_without_the_key(service_factory):
    service = service_factory(api_key="the-right-key")
    secret = "sk-wrong-SECRET-4242"
    df = pd.DataFrame({"q": ["a"]})
    with pytest.raises(batchframe.AuthenticationError) as info:
        submit(df, service, api_key=secret)
    assert info.value.status == 401 and info.value.error_type == "authentication_error"
    assert secret not in str(info.value) and secret not in repr(info.value)
    store = batchframe.Store()
    for path in store.root.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes()
    job = batchframe.Job.open(store.names()[0])
    assert secret not in repr(job) and job.status.state == "unsent"
    # the same submit with the right key sends the refused shard, once
    resumed = submit(df, service, api_key="the-right-key")
    assert resumed.name == job.name and len(remote_batches(service, key="the-right-key")) == 1
    resumed.wait(poll_interval=0.05, timeout=60)
    assert resumed.results()["llm_status"].tolist() == ["succeeded"]


def test_no_key_says_how_to_set_one_or_use_local():
    with pytest.raises(batchframe.ConfigError) as info:
        pd.DataFrame({"q": ["a"]}).batch.submit(prompt="q", model="claude-haiku-4-5", max_tokens=5)
    assert "ANTHROPIC_API_KEY" in str(info.value) and 'provider="local"' in str(info.value)


def test_job_names_cannot_escape_the_store(service):
    with pytest.raises(batchframe.InputError, match="not allowed"):
        submit(pd.DataFrame({"q": ["a"]}), service, name="../../etc")
    assert remote_batches(service) == []


def test_manifest_records_intent_and_batch_ids(service):
    job = submit(pd.DataFrame({"q": ["a", "b", "c"]}), service, name="named-job", max_batch_requests=2)
    manifest = json.loads((batchframe.Store().job_dir("named-job") / "manifest.json").read_text())
    shards = manifest["attempts"][0]["shards"]
    assert [s["state"] for s in shards] == ["submitted", "submitted"]
    assert all(s["intent_at"] and s["batch_id"].startswith("msgbatch_") for s in shards)
    assert manifest["fingerprint"] == job.manifest["fingerprint"] and KEY not in json.dumps(manifest)


def test_a_refused_job_takes_the_corrected_frame_under_the_same_name(service):
    df = pd.DataFrame({"q": ["a", "b"]})
    with pytest.raises(batchframe.APIError) as info:
        submit(df, service, name="typo", temprature=0.5)  # the whole batch is refused: nothing is created
    assert info.value.status == 400 and remote_batches(service) == []
    job = submit(df, service, name="typo", temperature=0.5)
    job.wait(poll_interval=0.05, timeout=60)
    assert job.name == "typo" and job.results()["llm_status"].tolist() == ["succeeded"] * 2
    assert len(remote_batches(service)) == 1
    other = submit(pd.DataFrame({"q": ["a", "other"]}), service, name="typo", temperature=0.5)  # a new revision
    other.wait(poll_interval=0.05, timeout=60)
    assert other.name == "typo" and other.manifest["revision"] == 2 and other.manifest["previous"] == "typo~r1"
    assert sum(b["request_counts"]["succeeded"] for b in remote_batches(service)) == 3  # only "other" was new
    assert other.results()["llm_text"].tolist() == job.results()["llm_text"].tolist()[:1] + ["other"]
