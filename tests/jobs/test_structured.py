"""``schema=``: typed result columns, the same through the Anthropic and the OpenAI protocol, with parse failures
kept as data and re-asked alone. Against the real local service over loopback (echo engine)."""

from __future__ import annotations

import enum
import json
import warnings
from functools import cache
from pathlib import Path

import orjson
import pandas as pd
import pydantic
import pytest
from jsonschema import Draft202012Validator

import batchframe
from batchframe.jobs.bodies import read_bodies
from batchframe.providers.openai.codec import strict_schema
from loopback import list_batches

ANTHROPIC_KEY = "sk-test-key-0123456789"
OPENAI_KEY = "sk-openai-test-0123456789"
FAST = batchframe.RetryPolicy(max_retries=8, backoff=0.01, max_backoff=0.05)
SPEC = Path(__file__).resolve().parents[3] / "shared" / "specs" / "anthropic-openapi.json"


class Sentiment(enum.StrEnum):
    positive = "positive"
    negative = "negative"
    mixed = "mixed"


class Address(pydantic.BaseModel):
    city: str
    zip: int


class Review(pydantic.BaseModel):
    sentiment: Sentiment
    stars: int
    score: float
    recommended: bool
    tags: list[str]
    address: Address


TYPED = {"sentiment": "string", "stars": "int64", "score": "double", "recommended": "bool",
         "tags": "list<item: string>", "address.city": "string", "address.zip": "int64"}


def submit(df, service, protocol, **kwargs):
    """``df.batch.submit`` to the service through ``protocol`` (``anthropic`` or ``openai``), as user code would."""
    kwargs.setdefault("prompt", "q")
    kwargs.setdefault("max_tokens", 400)
    if protocol == "openai":
        kwargs.setdefault("model", "gpt-4o-mini")
        return df.batch.submit(provider="openai", api_key=OPENAI_KEY, base_url=f"{service.base_url}/v1",
                               retry=FAST, **kwargs)
    kwargs.setdefault("model", "claude-haiku-4-5")
    return df.batch.submit(provider="anthropic", api_key=ANTHROPIC_KEY, base_url=service.base_url, retry=FAST,
                           **kwargs)


def frame(n=5):
    return pd.DataFrame({"q": [f"review number {i}: works well, arrived late" for i in range(n)]},
                        index=pd.Index([f"k{i}" for i in range(n)], name="key"))


def run(df, service, protocol, **kwargs):
    job = submit(df, service, protocol, **kwargs)
    job.wait(poll_interval=0.05, timeout=60)
    return job, df.batch.merge(job)


def as_model(merged: pd.DataFrame, prefix="llm_") -> list[Review]:
    """Each row's typed columns, nested back into the model's shape and validated by it."""
    rows = []
    for _, row in merged.iterrows():
        answer: dict = {}
        for name in TYPED:
            value = row[prefix + name]
            value = value.tolist() if hasattr(value, "tolist") else value
            head, _, tail = name.partition(".")
            if tail:
                answer.setdefault(head, {})[tail] = value
            else:
                answer[name] = value
        rows.append(Review.model_validate(answer))
    return rows


def test_one_model_gives_the_same_typed_columns_through_both_protocols(service):
    df = frame()
    results = {}
    for protocol in ("anthropic", "openai"):
        job, merged = run(df, service, protocol, schema=Review, name=f"typed-{protocol}")
        assert set(merged["llm_parse_status"]) == {"ok"} and merged["llm_parse_error"].isna().all()
        assert {n: str(merged[f"llm_{n}"].dtype.pyarrow_dtype) for n in TYPED} == TYPED
        models = as_model(merged)
        assert [m.model_dump(mode="json") for m in models] == [json.loads(t) for t in merged["llm_json"]]
        results[protocol] = merged
        assert job.manifest["request"]["structured"]["via"] == (
            "response_format" if protocol == "openai" else "output_config")
        assert job.status.parse_counts == {"ok": len(df)} and "parse failures 0 of 5" in batchframe.to_text(job.status)
    anthropic, openai = results["anthropic"], results["openai"]
    typed = [c for c in anthropic.columns if c.startswith("llm_") and c[4:] in TYPED]
    assert typed == [f"llm_{n}" for n in TYPED]
    assert typed == [c for c in openai.columns if c.startswith("llm_") and c[4:] in TYPED]
    assert (anthropic[typed].dtypes == openai[typed].dtypes).all()


@pytest.mark.parametrize("protocol", ["anthropic", "openai"])
def test_truncated_answers_are_null_and_retry_fixes_exactly_those_rows(service, protocol):
    df = frame(6).assign(limit=[400, 3, 400, 5, 400, 400])  # rows k1 and k3 are cut at max_tokens
    job, merged = run(df, service, protocol, schema=Review, max_tokens="limit", name=f"cut-{protocol}")
    cut = ["k1", "k3"]
    assert merged.loc[cut, "llm_parse_status"].tolist() == ["truncated", "truncated"]
    assert merged.loc[cut, "llm_stop_reason"].tolist() == ["max_tokens", "max_tokens"]
    assert merged.loc[cut, "llm_parse_error"].str.contains("cut at max_tokens").all()
    assert merged.loc[cut, [f"llm_{n}" for n in TYPED]].isna().all().all()  # nothing partial
    assert merged.loc[cut, "llm_json"].notna().all()  # the raw text is kept
    assert set(merged.drop(cut)["llm_parse_status"]) == {"ok"}
    assert job.status.parse_failures == 2 and "truncated 2" in batchframe.to_text(job.status)

    assert job.retry(parse_failures=True, max_tokens=400) == 2
    job.wait(poll_interval=0.05, timeout=60)
    after = df.batch.merge(job)
    assert set(after["llm_parse_status"]) == {"ok"} and len(as_model(after)) == 6
    assert after["llm_attempt"].tolist() == [1, 2, 1, 2, 1, 1]
    attempt = job.manifest["attempts"][-1]
    assert (attempt["reason"], attempt["max_tokens"], attempt["replaces_parse"]) == (
        "parse_failures", 400, {"truncated": 2})
    assert job.status.parse_failures == 0 and job.status.counts["succeeded"] == 6
    assert job.retry(parse_failures=True) == 0  # nothing left to re-ask


@pytest.mark.parametrize("protocol", ["anthropic", "openai"])
def test_a_forced_tool_gives_typed_columns_without_schema(service, protocol):
    tool = {"name": "label", "description": "Label the review.", "input_schema": Review.model_json_schema()}
    job, merged = run(frame(3), service, protocol, tools=[tool], tool_choice={"type": "tool", "name": "label"},
                      name=f"tool-{protocol}")
    assert job.manifest["request"]["structured"]["source"] == "tool"
    assert set(merged["llm_stop_reason"]) == {"tool_use"} and set(merged["llm_parse_status"]) == {"ok"}
    assert {n: str(merged[f"llm_{n}"].dtype.pyarrow_dtype) for n in TYPED} == TYPED
    assert len(as_model(merged)) == 3


def test_a_model_without_structured_outputs_gets_a_forced_tool_and_the_same_columns(service):
    job, merged = run(frame(3), service, "anthropic", schema=Review, model="claude-3-haiku-20240307",
                      name="fallback")
    spec = job.manifest["request"]["structured"]
    assert (spec["via"], spec["tool"]) == ("tool", "structured_output")
    assert set(merged["llm_stop_reason"]) == {"tool_use"} and set(merged["llm_parse_status"]) == {"ok"}
    assert {n: str(merged[f"llm_{n}"].dtype.pyarrow_dtype) for n in TYPED} == TYPED
    assert len(as_model(merged)) == 3


def test_an_unsuccessful_request_has_no_parse_status(service):
    df = frame(2)
    job, merged = run(df, service, "anthropic", schema=Review, model="claude-nope", name="bad-model")
    assert set(merged["llm_status"]) == {"errored"} and merged["llm_parse_status"].isna().all()
    assert job.status.parse_counts == {}


# -- the request bodies pass the official specs ----------------------------------------------------------
@cache
def _components() -> dict:
    if not SPEC.exists():
        pytest.skip(f"OpenAPI spec not found at {SPEC}")
    return json.loads(SPEC.read_text())["components"]


def _validate_anthropic(line: dict) -> None:
    schema = {"$ref": "#/components/schemas/MessageBatchIndividualRequestParams", "components": _components()}
    Draft202012Validator(schema).validate(line)


def test_anthropic_request_lines_pass_the_openapi_spec(service):
    df = frame(2)
    for model in ("claude-haiku-4-5", "claude-3-haiku-20240307"):  # output_config, and the forced-tool fallback
        job = submit(df, service, "anthropic", schema=Review, model=model, name=f"spec-{model}")
        lines = [orjson.loads(b) for b in read_bodies(job.store, job.name)]
        for line in lines:
            _validate_anthropic(line)
        params = lines[0]["params"]
        if model == "claude-haiku-4-5":
            assert params["output_config"]["format"] == {"type": "json_schema", "schema": Review.model_json_schema()}
        else:
            assert params["tool_choice"] == {"type": "tool", "name": "structured_output"}
            assert params["tools"][-1]["input_schema"] == Review.model_json_schema()
        job.wait(poll_interval=0.05, timeout=60)


def test_openai_request_bodies_pass_the_sdk_types(service):
    from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming
    from openai.types.shared_params.response_format_json_schema import ResponseFormatJSONSchema

    job = submit(frame(2), service, "openai", schema=Review, name="spec-openai", new=True)
    bodies = [orjson.loads(b)["body"] for b in read_bodies(job.store, job.name)]
    for body in bodies:
        pydantic.TypeAdapter(CompletionCreateParamsNonStreaming).validate_python(body)
        fmt = pydantic.TypeAdapter(ResponseFormatJSONSchema).validate_python(body["response_format"])
        assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
        sent = fmt["json_schema"]["schema"]
        assert sent == strict_schema(Review.model_json_schema())[0]
        for node in (sent, sent["$defs"]["Address"]):
            assert node["additionalProperties"] is False and node["required"] == list(node["properties"])
    job.wait(poll_interval=0.05, timeout=60)


def test_strict_mode_warns_when_it_changes_the_schema(service):
    class Loose(pydantic.BaseModel):
        name: str
        stars: int = 3  # optional, not nullable: strict mode makes it required and nullable
        note: str | None = None  # already nullable: no change of meaning

    with pytest.warns(batchframe.SchemaWarning, match=r"\$\.stars was optional") as caught:
        job = submit(frame(3), service, "openai", schema=Loose, name="loose")
    assert len([w for w in caught if issubclass(w.category, batchframe.SchemaWarning)]) == 1  # once, not per row
    assert "note" not in str(caught[0].message)
    job.wait(poll_interval=0.05, timeout=60)
    merged = frame(3).batch.merge(job)
    assert set(merged["llm_parse_status"]) == {"ok"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        submit(frame(2), service, "anthropic", schema=Loose, name="loose-anthropic")  # sent as given: no warning


def test_schema_is_checked_before_anything_is_sent(service):
    with pytest.raises(batchframe.InputError, match="result column"):
        submit(frame(2), service, "anthropic", name="clash",
               schema={"type": "object", "properties": {"status": {"type": "string"}}})
    with pytest.raises(batchframe.InputError, match="Pydantic model class or a JSON-schema dict"):
        submit(frame(2), service, "anthropic", schema="Review")
    with pytest.raises(batchframe.InputError, match="tool_choice"):
        submit(frame(2), service, "anthropic", schema=Review, tools=[], tool_choice={"type": "auto"})
    assert list_batches(service.base_url, ANTHROPIC_KEY) == []


def test_requests_and_estimate_take_schema(service):
    df = frame(2)
    preview = df.batch.requests(prompt="q", model="claude-haiku-4-5", max_tokens=64, schema=Review)
    assert preview.iloc[0]["params"]["output_config"]["format"]["schema"]["title"] == "Review"
    est = df.batch.estimate(prompt="q", model="claude-haiku-4-5", max_tokens=64, provider="anthropic",
                            api_key=ANTHROPIC_KEY, base_url=service.base_url, schema=Review)
    assert est.n_requests == 2 and est.input_tokens > 0
    with pytest.raises(batchframe.InputError, match="result column"):  # checked by the estimate too
        df.batch.estimate(prompt="q", model="claude-haiku-4-5", max_tokens=64, provider="anthropic",
                          api_key=ANTHROPIC_KEY, base_url=service.base_url,
                          schema={"type": "object", "properties": {"text": {"type": "string"}}})
    assert list_batches(service.base_url, ANTHROPIC_KEY) == []


def test_answers_taken_from_the_ledger_are_typed_and_counted(service):
    df = frame(3)
    run(df, service, "anthropic", schema=Review, name="first")
    job, merged = run(df, service, "anthropic", schema=Review, name="second")  # same requests: paid once
    assert merged["llm_reused"].all() and set(merged["llm_parse_status"]) == {"ok"} and len(as_model(merged)) == 3
    assert job.status.parse_counts == {"ok": 3}
    assert len(list_batches(service.base_url, ANTHROPIC_KEY)) == 1
