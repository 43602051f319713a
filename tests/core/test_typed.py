"""Typed columns from a JSON schema, and each answer parsed into them: pure functions, no network."""

from __future__ import annotations

import pyarrow as pa
import pytest

from batchframe import InputError, to_text
from batchframe.progress.render import to_html
from batchframe.providers.openai.codec import strict_schema
from batchframe.results.typed import arrow_schema, parse_answers, typed_columns
from batchframe.types import JobStatus

SCHEMA = {
    "type": "object",
    "required": ["name", "stars", "tags", "address", "kind"],
    "properties": {
        "name": {"type": "string"},
        "stars": {"type": "integer", "minimum": 1, "maximum": 5},
        "score": {"type": ["number", "null"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "kind": {"$ref": "#/$defs/Kind"},
        "address": {"type": "object", "required": ["city"],
                    "properties": {"city": {"type": "string"}, "geo": {"type": "object", "properties": {
                        "lat": {"type": "number"}}}}},
        "items": {"type": "array", "items": {"type": "object", "properties": {"sku": {"type": "string"},
                                                                            "n": {"type": "integer"}}}},
        "extra": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
    },
    "$defs": {"Kind": {"enum": ["a", "b"], "type": "string"}},
}


def answers(*texts, stop="end_turn", status="succeeded"):
    n = len(texts)
    return pa.table({"status": [status] * n, "stop_reason": [stop] * n, "text": list(texts),
                     "tool_use": pa.nulls(n, pa.string())})


def parsed(*texts, **kwargs):
    return parse_answers(answers(*texts, **kwargs), {"via": "output_config", "schema": SCHEMA}).to_pylist()


GOOD = ('{"name": "x", "stars": 4, "score": 0.5, "tags": ["t"], "kind": "a", "address": {"city": "Oslo", '
        '"geo": {"lat": 59.9}}, "items": [{"sku": "s1", "n": 2.0}], "extra": 3}')


def test_columns_types_and_nullability_come_from_the_schema():
    got = {f.name: (str(f.type), f.nullable) for f in arrow_schema(SCHEMA, "llm_")}
    assert got == {
        "llm_name": ("string", False), "llm_stars": ("int64", False), "llm_score": ("double", True),
        "llm_tags": ("list<item: string>", False), "llm_kind": ("string", False),
        "llm_address.city": ("string", False), "llm_address.geo.lat": ("double", True),
        "llm_items": ("list<item: struct<sku: string, n: int64>>", True), "llm_extra": ("string", True),
    }


def test_a_valid_answer_fills_every_column():
    row = parsed(GOOD)[0]
    assert row["parse_status"] == "ok" and row["parse_error"] is None and row["json"] == GOOD
    assert (row["name"], row["stars"], row["score"], row["tags"], row["kind"]) == ("x", 4, 0.5, ["t"], "a")
    assert (row["address.city"], row["address.geo.lat"]) == ("Oslo", 59.9)
    assert row["items"] == [{"sku": "s1", "n": 2}] and row["extra"] == "3"  # a union is kept as JSON text


@pytest.mark.parametrize(("text", "status", "error"), [
    ('{"name": "x",', "invalid_json", "invalid JSON at char"),
    ("Sure! Here it is", "invalid_json", "invalid JSON at char 0"),
    (GOOD.replace('"stars": 4', '"stars": 9'), "schema_mismatch", "$.stars: 9 is out of range (maximum 5)"),
    (GOOD.replace('"kind": "a"', '"kind": "c"'), "schema_mismatch", "$.kind: string 'c' is not one of ['a', 'b']"),
    (GOOD.replace('"city": "Oslo"', '"city": 3'), "schema_mismatch", "$.address.city: expected string, got integer 3"),
    (GOOD.replace('"tags": ["t"]', '"tags": ["t", 1]'), "schema_mismatch", "$.tags[1]: expected string"),
    (GOOD.replace('"name": "x", ', ""), "schema_mismatch", "$: missing required property 'name'"),
    (GOOD.replace('"name": "x"', '"name": null'), "schema_mismatch", "$.name: expected string, got null"),
])
def test_a_failed_answer_says_why_and_leaves_every_typed_column_null(text, status, error):
    row = parsed(text)[0]
    assert row["parse_status"] == status and error in row["parse_error"]
    assert all(row[c.name] is None for c in typed_columns(SCHEMA)) and row["json"] == text


def test_null_for_an_optional_property_reads_as_absent():
    row = parsed(GOOD.replace('"score": 0.5', '"score": null').replace('"extra": 3', '"extra": null'))[0]
    assert row["parse_status"] == "ok" and row["score"] is None and row["extra"] is None


def test_truncated_refusal_and_unsent_rows():
    cut = parsed(GOOD[:30], stop="max_tokens")[0]
    assert cut["parse_status"] == "truncated" and "cut at max_tokens" in cut["parse_error"]
    whole = parsed(GOOD, stop="max_tokens")[0]  # cut exactly at its end: it parses and validates
    assert whole["parse_status"] == "ok"
    refused = parsed("I can't help with that.", stop="refusal")[0]
    assert refused["parse_status"] == "refusal" and "can't help" in refused["parse_error"]
    errored = parsed(None, status="errored")[0]
    assert errored["parse_status"] is None and errored["json"] is None and errored["name"] is None


def test_a_forced_tool_is_read_from_tool_use():
    table = pa.table({"status": ["succeeded"], "stop_reason": ["tool_use"], "text": [None], "tool_use": [GOOD]})
    out = parse_answers(table, {"via": "tool", "schema": SCHEMA}).to_pylist()[0]
    assert out["parse_status"] == "ok" and out["stars"] == 4


def test_a_field_named_like_a_result_column_is_refused():
    with pytest.raises(InputError, match=r"\['status'\].*rename"):
        typed_columns({"type": "object", "properties": {"status": {"type": "string"}}})
    with pytest.raises(InputError, match="not local"):
        typed_columns({"type": "object", "properties": {"x": {"$ref": "https://example.com/x.json"}}})


def test_strict_mode_requires_everything_and_reports_changes_of_meaning():
    strict, changes = strict_schema({**SCHEMA, "additionalProperties": True})
    assert strict["required"] == list(SCHEMA["properties"]) and strict["additionalProperties"] is False
    assert strict["properties"]["score"] == {"type": ["number", "null"]}  # already nullable: unchanged
    items = strict["properties"]["items"]  # optional, so wrapped as nullable
    assert items["anyOf"][1] == {"type": "null"} and items["anyOf"][0]["items"]["additionalProperties"] is False
    assert strict["properties"]["address"]["properties"]["geo"]["anyOf"][0]["required"] == ["lat"]
    assert sorted(changes) == sorted(["$.address.geo was optional: it is now required and may be null",
                       "$.address.geo.lat was optional: it is now required and may be null",
                       "$.items[].sku was optional: it is now required and may be null",
                       "$.items[].n was optional: it is now required and may be null",
                       "$.items was optional: it is now required and may be null",
                       "$.extra was optional: it is now required and may be null",
                       "$ allowed extra properties: they are now forbidden"])
    assert strict_schema(strict)[1] == []  # a strict schema is its own strict form


def test_the_text_and_html_views_show_parse_failures_next_to_request_failures():
    status = JobStatus("j", "local", "m", "ended", (), n_rows=5, row_counts={"succeeded": 4, "errored": 1},
                       parse_counts={"ok": 2, "truncated": 1, "invalid_json": 1})
    text = to_text(status)
    assert "errored 1" in text and "parse failures 2 of 4 answers (invalid_json 1, truncated 1)" in text
    assert 'class="bf-parse" data-failures="2"' in to_html(status)
    plain = JobStatus("j", "local", "m", "ended", (), n_rows=1, row_counts={"succeeded": 1})
    assert "parse" not in to_text(plain) and "bf-parse" not in to_html(plain)
