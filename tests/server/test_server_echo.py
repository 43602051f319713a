"""The echo engine: deterministic answers, max_tokens, stop sequences, system, tools, token rule."""

from __future__ import annotations

import jsonschema
import pytest

from batchframe.server.engines import make_engine
from batchframe.server.engines.echo import EchoEngine


def _params(text="alpha beta gamma delta", **extra):
    messages = [{"role": "user", "content": text}]
    return {"model": "claude-haiku-4-5", "max_tokens": 100, "messages": messages, **extra}


def test_answer_is_the_prompt_and_is_reproducible():
    engine = make_engine("echo")
    first, second = engine.complete(_params()), engine.complete(_params())
    assert first == second
    assert first.content == [{"type": "text", "text": "alpha beta gamma delta"}]
    assert (first.stop_reason, first.input_tokens, first.output_tokens) == ("end_turn", 4, 4)


def test_max_tokens_cuts_the_answer():
    answer = EchoEngine().complete(_params(max_tokens=2))
    assert answer.content[0]["text"] == "alpha beta"
    assert (answer.stop_reason, answer.output_tokens) == ("max_tokens", 2)


def test_earliest_stop_sequence_wins():
    answer = EchoEngine().complete(_params(stop_sequences=["delta", "gam"]))
    assert answer.content[0]["text"] == "alpha beta "
    assert (answer.stop_reason, answer.stop_sequence) == ("stop_sequence", "gam")


def test_system_prompt_shows_and_counts():
    answer = EchoEngine().complete(_params("hi", system=[{"type": "text", "text": "Be terse."}]))
    assert answer.content[0]["text"] == "[Be terse.] hi"
    assert answer.input_tokens == 3
    assert EchoEngine().count_tokens(_params("hi", system="Be terse.")) == 3


def test_last_user_message_and_blocks():
    params = _params(messages=[{"role": "user", "content": "first"}, {"role": "assistant", "content": "ok"},
                               {"role": "user", "content": [{"type": "text", "text": "second"},
                                                            {"type": "text", "text": "part"}]}])
    assert EchoEngine().complete(params).content[0]["text"] == "second\npart"


SCHEMAS = [
    {"type": "object", "properties": {"sentiment": {"type": "string", "enum": ["pos", "neg", "neutral"]},
                                      "score": {"type": "number", "minimum": 0, "maximum": 1}},
     "required": ["sentiment", "score"], "additionalProperties": False},
    {"type": "object", "properties": {
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 3}, "minItems": 2, "maxItems": 4},
        "count": {"type": "integer", "exclusiveMinimum": 10, "multipleOf": 5},
        "when": {"type": "string", "format": "date-time"},
        "nested": {"type": "object", "required": ["ok"],
                   "properties": {"ok": {"type": "boolean"}, "n": {"type": ["null", "integer"]}}},
        "code": {"type": "string", "minLength": 40},
        "choice": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
        "ref": {"$ref": "#/$defs/thing"}},
     "required": ["tags", "count", "when", "nested", "code", "choice", "ref"],
     "$defs": {"thing": {"type": "object", "properties": {"k": {"const": "v"}}, "required": ["k"]}}},
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_forced_tool_use_input_satisfies_the_schema(schema):
    tools = [{"name": "other", "input_schema": {"type": "object"}},
             {"name": "record", "description": "Record it", "input_schema": schema}]
    answer = EchoEngine().complete(_params(tools=tools, tool_choice={"type": "tool", "name": "record"}))
    [block] = answer.content
    assert block["type"] == "tool_use" and block["name"] == "record" and answer.stop_reason == "tool_use"
    jsonschema.validate(block["input"], schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    assert block["id"].startswith("toolu_") and answer.output_tokens >= 1


def test_tool_choice_auto_any_none():
    tools = [{"name": "lookup", "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}},
             {"name": "save", "input_schema": {"type": "object"}}]
    engine = EchoEngine()
    assert engine.complete(_params("plain text", tools=tools)).stop_reason == "end_turn"
    named = engine.complete(_params("please save this", tools=tools))
    assert named.content[0]["name"] == "save"
    any_tool = engine.complete(_params("x", tools=tools, tool_choice={"type": "any"}))
    assert any_tool.content[0]["name"] == "lookup"
    none = engine.complete(_params("please save", tools=tools, tool_choice={"type": "none"}))
    assert none.content[0]["type"] == "text"
    forced = {"type": "tool", "name": "lookup"}
    lookup = engine.complete(_params("lookup cats", tools=tools, tool_choice=forced))
    assert lookup.content[0]["input"] == {"q": "lookup cats"}


def test_latency_is_paid_once_per_chunk(monkeypatch):
    naps = []
    monkeypatch.setattr("batchframe.server.engines.echo.time.sleep", naps.append)
    answers = EchoEngine(latency=0.5).complete_many([_params("a"), _params("b")])
    assert [a.content[0]["text"] for a in answers] == ["a", "b"] and naps == [0.5]
