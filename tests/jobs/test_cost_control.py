"""Know the cost before paying, cap it, and cut it with prompt caching (issue 17), against the real local
service on loopback: estimate accuracy, budget refusal, waves, cache breakpoints and cache pricing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import batchframe
from batchframe import BudgetError, PromptCacheWarning
from batchframe.jobs.waves import next_wave, stalled
from batchframe.providers.anthropic.pricing import batch_price_for
from batchframe.server.validation import check_params
from core.helpers import FAST, remote_batches

MODEL = "claude-haiku-4-5"


def local(df, service, method="submit", **kwargs):
    """``df.batch.<method>`` on the ``local`` provider at ``service`` (priced as the model named)."""
    kwargs.setdefault("prompt", "q")
    kwargs.setdefault("model", MODEL)
    kwargs.setdefault("max_tokens", 64)
    kwargs.setdefault("retry", FAST)
    return getattr(df.batch, method)(provider="local", base_url=service.base_url, **kwargs)


def varied_frame(n: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    words = np.array("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split())
    lengths = np.concatenate([rng.integers(1, 15, n // 2), rng.integers(40, 400, n - n // 2)])
    rng.shuffle(lengths)
    return pd.DataFrame({"q": [f"row {i}: " + " ".join(rng.choice(words, size=k)) for i, k in enumerate(lengths)]})


def test_a_sampled_estimate_is_within_10_percent_and_its_worst_case_bounds_the_cost(service):
    df = varied_frame(3000)
    est = local(df, service, "estimate", max_tokens=32)
    assert remote_batches(service) == []  # nothing billable was sent
    assert not est.input_exact and est.n_counted <= 220 and est.n_requests == 3000
    assert "stratified sample" in est.input_basis and est.input_error_bound > 0
    assert est.max_output_tokens == 3000 * 32 and "50% of max_tokens" in est.output_basis
    job = local(df, service, max_tokens=32, name="accuracy")
    job.wait(poll_interval=0.05, timeout=120)
    out = df.batch.merge(job)
    actual = int(out["llm_input_tokens"].sum())
    error = abs(est.input_tokens - actual) / actual
    print(f"estimated {est.input_tokens} input tokens, job reported {actual}: error {error:.2%}")
    assert error < 0.10
    assert abs(est.input_tokens - actual) <= est.input_error_bound  # the stated bound holds here too
    assert job.status.cost_usd is not None and est.worst_case_usd >= job.status.cost_usd
    assert est.worst_case_usd >= float(out["llm_cost_usd"].sum())


def test_an_exact_estimate_counts_every_row_and_learns_output_from_finished_jobs(service):
    df = varied_frame(60)
    est = local(df, service, "estimate", exact=True, prompt="q")
    assert est.input_exact and est.input_error_bound == 0 and est.n_counted == 60
    job = local(df, service, name="first")
    job.wait(poll_interval=0.05, timeout=60)
    assert est.input_tokens == int(df.batch.merge(job)["llm_input_tokens"].sum())
    again = local(df, service, "estimate")
    assert again.n_in_ledger == 60 and again.n_requests == 0 and again.n_shards == 0  # paid once
    other = local(varied_frame(20, seed=3), service, "estimate")
    assert "finished job(s) of the store" in other.output_basis


def test_the_estimate_shows_a_table_by_shard(service):
    est = local(varied_frame(30), service, "estimate", max_batch_requests=10)
    assert est.n_shards == 3 and [s.n_requests for s in est.shards] == [10, 10, 10]
    assert sum(s.worst_case_usd for s in est.shards) == pytest.approx(est.worst_case_usd)
    text = repr(est)
    assert "shard 2" in text and "total" in text and "worst_case_usd" in text
    assert "<table" in est._repr_html_() and "shard 0" in est._repr_html_()
    assert batchframe.estimate(varied_frame(30), prompt="q", model=MODEL, max_tokens=64, provider="local",
                               base_url=service.base_url).n_requests == 30


def test_an_over_budget_submit_creates_nothing(service):
    df = varied_frame(50)
    before = remote_batches(service)
    with pytest.raises(BudgetError) as caught:
        local(df, service, max_tokens=1000, budget_usd=0.0001, name="too-dear")
    message = str(caught.value)
    assert "worst case" in message and "budget_usd" in message and "max_tokens" in message
    assert caught.value.cap_usd == 0.0001 and caught.value.worst_case_usd > 0.0001
    assert remote_batches(service) == before
    assert not batchframe.Store().exists("too-dear")


def test_a_budget_that_covers_the_worst_case_records_it_and_completes(service):
    df = varied_frame(40)
    est = local(df, service, "estimate", max_batch_requests=20)
    job = local(df, service, max_batch_requests=20, budget_usd=est.worst_case_usd * 1.01, name="capped")
    status = job.wait(poll_interval=0.05, timeout=60)
    assert status.counts["succeeded"] == 40 and status.budget_usd == pytest.approx(est.worst_case_usd * 1.01)
    assert all(s.get("worst_usd") for a in job.manifest["attempts"] for s in a["shards"])
    assert status.cost_usd <= status.budget_usd and status.committed_usd == 0
    assert "budget: spent" in batchframe.to_text(status) and "cap" in batchframe.to_text(status)


def _overlap(batches):
    spans = sorted((b["created_at"], b["ended_at"]) for b in batches)
    return any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:], strict=False))


def test_max_in_flight_sends_one_shard_at_a_time_and_completes(service_factory):
    service = service_factory(engine_options={"latency": 0.2})
    df = varied_frame(30)
    job = local(df, service, max_in_flight=10, name="waves")
    assert len(job.manifest["attempts"][0]["shards"]) == 3  # shards cut to fit the queue limit
    assert len(remote_batches(service)) == 1  # the others wait, planned
    status = job.wait(poll_interval=0.05, timeout=120)
    assert status.counts["succeeded"] == 30
    batches = remote_batches(service)
    assert len(batches) == 3 and not _overlap(batches)  # never two shards in flight


def test_the_wave_gate_holds_a_shard_whose_worst_case_would_pass_the_cap():
    shard = lambda i, state, **kw: {"index": i, "n_requests": 5, "state": state, **kw}  # noqa: E731
    manifest = {"waves": {"budget_usd": 1.0}, "attempts": [{"attempt": 1, "shards": [
        shard(0, "submitted", worst_usd=0.6), shard(1, "planned", worst_usd=0.6)]}]}
    assert next_wave(manifest) == []  # 0.6 committed + 0.6 > 1.0
    manifest["attempts"][0]["shards"][0].update(state="harvested", cost_usd=0.1)
    assert [s["index"] for _, s in next_wave(manifest)] == [1]  # 0.1 spent + 0.6 <= 1.0
    manifest["attempts"][0]["shards"][0]["cost_usd"] = 0.5
    assert next_wave(manifest) == [] and stalled(manifest)  # nothing in flight will free room


def test_cache_auto_bodies_carry_the_breakpoint_and_pass_the_spec(service):
    df = pd.DataFrame({"review": ["great value", "broke after a week", "fine"]})
    system = "You label product reviews. " * 5
    preview = df.batch.requests(prompt="Label this review: {review}", model=MODEL, max_tokens=8,
                                system=system, cache="auto")
    for params in preview["params"]:
        content = params["messages"][0]["content"]
        assert content[0] == {"type": "text", "text": "Label this review: ",
                              "cache_control": {"type": "ephemeral", "ttl": "1h"}}
        assert params["system"] == system and "cache_control" not in content[1]
        check_params(params, ("echo",), batch=True)
    by_column = df.batch.requests(prompt="review", model=MODEL, max_tokens=8, system=system, cache="auto")
    params = by_column["params"].iloc[0]
    assert params["system"] == [{"type": "text", "text": system, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    check_params(params, ("echo",), batch=True)


def test_cache_tokens_are_reported_and_priced_per_row_and_in_total(service):
    df = pd.DataFrame({"review": [f"review number {i} says it is fine" for i in range(12)]})
    system = "You label product reviews as positive, negative or neutral. " * 4
    with pytest.warns(PromptCacheWarning, match="shorter than"):
        job = local(df, service, prompt="review", system=system, cache="auto", prime_cache=True, name="cached")
    shards = job.manifest["attempts"][0]["shards"]
    assert [s["n_requests"] for s in shards] == [1, 11]  # the priming request alone first
    status = job.wait(poll_interval=0.05, timeout=60)
    out = df.batch.merge(job)
    assert out["llm_cache_creation_input_tokens"].iloc[0] > 0 and out["llm_cache_read_input_tokens"].iloc[0] == 0
    assert (out["llm_cache_read_input_tokens"].iloc[1:] == out["llm_cache_creation_input_tokens"].iloc[0]).all()
    assert (out["llm_cache_creation_1h_input_tokens"].iloc[0]) == out["llm_cache_creation_input_tokens"].iloc[0]
    price = batch_price_for(MODEL)
    expected = (out["llm_input_tokens"] * price.input + out["llm_output_tokens"] * price.output
                + out["llm_cache_creation_1h_input_tokens"] * price.cache_write_1h
                + out["llm_cache_read_input_tokens"] * price.cache_read) / 1e6
    assert out["llm_cost_usd"].tolist() == pytest.approx(expected.astype(float).tolist(), rel=1e-9)
    assert status.cost_usd == pytest.approx(float(expected.sum()), rel=1e-9)
    batches = remote_batches(service)
    assert len(batches) == 2 and not _overlap(batches)  # the rest went after the priming batch ended


def test_local_costs_are_an_estimate_for_the_model_named(service):
    df = pd.DataFrame({"q": ["a b c", "d e"]})
    job = local(df, service, name="priced")
    status = job.wait(poll_interval=0.05, timeout=60)
    out = df.batch.merge(job)
    assert out["llm_model"].tolist() == ["echo", "echo"] and out["llm_cost_usd"].notna().all()
    assert status.cost_basis and MODEL in status.cost_basis and "estimate" in status.cost_basis
    assert "estimate" in job.export_metadata()["cost_basis"] and "(est.)" in batchframe.to_text(status)
    price = batch_price_for(MODEL)
    first = (out["llm_input_tokens"].iloc[0] * price.input + out["llm_output_tokens"].iloc[0] * price.output) / 1e6
    assert out["llm_cost_usd"].iloc[0] == pytest.approx(float(first))


def test_estimate_and_submit_price_cache_writes_and_reads_apart(service):
    df = pd.DataFrame({"q": [f"item {i}" for i in range(8)]})
    long_system = "Answer in one word. " * 3000  # over the model's minimum cacheable length
    est = local(df, service, "estimate", system=long_system, cache="auto", exact=True)
    plain = local(df, service, "estimate", system=long_system, exact=True)
    assert est.cache_prefix_tokens == 4 * 3000
    assert est.expected_usd < plain.expected_usd  # reads cost a tenth of input
    assert est.worst_case_usd > plain.worst_case_usd  # every request might write the cache
