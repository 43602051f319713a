"""remote_batches() with orphans flagged, job.delete(), and the cost column."""

import time

import anthropic
import pandas as pd
import pytest
from jobs_helpers import KEY, frame, service_batches, submit

import batchframe
from batchframe.providers.anthropic.pricing import BATCH_DISCOUNT, price_for
from batchframe.server.engines.base import register_engine
from batchframe.server.engines.echo import EchoEngine


@register_engine
class ClaudeNamedEcho(EchoEngine):
    """The echo engine reporting the Claude model it was asked for, as the real API does in ``model``."""

    name = "test-claude-named-echo"
    model_ids = ("claude-haiku-4-5-20251001",)


def _sdk_batch(service, n: int, prefix: str = "sdk") -> str:
    with anthropic.Anthropic(base_url=service.base_url, api_key=KEY) as sdk:
        return sdk.messages.batches.create(requests=[
            {"custom_id": f"{prefix}-{i}", "params": {"model": "claude-haiku-4-5", "max_tokens": 8,
                                                       "messages": [{"role": "user", "content": f"hi {i}"}]}}
            for i in range(n)]).id


def test_remote_batches_fetches_every_page_and_flags_an_sdk_orphan(service):
    job = submit(frame(5), service, name="mine", max_batch_requests=2)  # 3 batches
    orphan = _sdk_batch(service, 3)
    table = batchframe.remote_batches("anthropic", api_key=KEY, base_url=service.base_url, page_size=2)
    assert len(table) == 4 and table["id"].tolist() == [b["id"] for b in service_batches(service)]
    assert table.loc[table["orphan"], "id"].tolist() == [orphan]
    mine = table[~table["orphan"]].sort_values("shard")
    assert mine["job"].tolist() == ["mine"] * 3 and mine["shard"].tolist() == [0, 1, 2]
    assert mine["id"].tolist() == job.batch_ids() and mine["requests"].tolist() == [2, 2, 1]
    assert table.set_index("id").loc[orphan, "requests"] == 3
    assert pd.isna(table.set_index("id").loc[orphan, "suspected_job"])  # no interrupted job to suspect
    assert str(table["created_at"].dtype).startswith("datetime64")


def test_delete_removes_ended_batches_and_says_why_not_for_the_others(service_factory):
    service = service_factory(engine_options={"latency": 0.4, "max_concurrency": 1}, workers=1)
    df = frame(6)
    job = submit(df, service, name="to-delete", max_batch_requests=2)  # 3 shards, served in order
    for _ in range(500):
        if job.refresh().shards[0].processing_status == "ended":
            break
        time.sleep(0.02)
    first, *_, last = ids = job.batch_ids()
    report = job.delete(local=True)
    assert report["batch_id"].tolist() == ids
    assert report["deleted"].iloc[0] and not report["deleted"].iloc[-1]
    assert "still in_progress" in report["reason"].iloc[-1] and "cancel" in report["reason"].iloc[-1]
    assert report.attrs["local_files_removed"] is False and job.store.exists("to-delete")
    remaining = [b["id"] for b in service_batches(service)]
    assert first not in remaining and last in remaining  # the ended one is gone remotely
    assert job.results()["llm_text"].iloc[:2].tolist() == df["q"].iloc[:2].tolist()  # kept locally
    job.wait(poll_interval=0.05, timeout=60)
    report = job.delete(local=True)
    assert report["deleted"].all() and report["reason"].iloc[0].startswith("already deleted")
    assert report.attrs["local_files_removed"] is True and not job.store.exists("to-delete")
    assert service_batches(service) == []


def test_cost_is_usage_times_the_batch_price_of_the_answering_model(service_factory):
    service = service_factory(engine="test-claude-named-echo")
    df = pd.DataFrame({"q": ["one two three", "four five six seven eight nine ten", None]})
    job = submit(df, service)
    job.wait(poll_interval=0.05, timeout=60)
    merged = df.batch.merge(job)
    assert merged["llm_model"].iloc[0] == "claude-haiku-4-5-20251001"
    price = price_for("claude-haiku-4-5")
    usage = merged.iloc[:2]
    expected = (usage["llm_input_tokens"] * price.input + usage["llm_output_tokens"] * price.output
                + usage["llm_cache_creation_input_tokens"] * price.cache_write_5m
                + usage["llm_cache_read_input_tokens"] * price.cache_read) * BATCH_DISCOUNT / 1e6
    assert (usage["llm_output_tokens"] > 0).all()
    assert merged["llm_cost_usd"].iloc[:2].tolist() == pytest.approx(expected.astype(float).tolist(), rel=1e-12)
    assert pd.isna(merged["llm_cost_usd"].iloc[2])  # skipped: no usage, no cost
    assert job.status.cost_usd == pytest.approx(float(expected.sum()), rel=1e-12)
    assert batchframe.jobs()["cost_usd"].tolist() == pytest.approx([float(expected.sum())])


def test_cost_is_null_for_a_model_without_a_price(service):
    df = pd.DataFrame({"q": ["a b", "c"]})
    job = submit(df, service)  # the local echo engine answers and reports model "echo"
    job.wait(poll_interval=0.05, timeout=60)
    merged = df.batch.merge(job)
    assert merged["llm_model"].tolist() == ["echo", "echo"] and (merged["llm_input_tokens"] > 0).all()
    assert merged["llm_cost_usd"].isna().all() and job.status.cost_usd is None
