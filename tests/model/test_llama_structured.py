"""Structured outputs on the llama engine (SmolLM2-135M-Instruct): the format's schema becomes a grammar."""

from __future__ import annotations

import json

import jsonschema
import pytest
from model_helpers import MODEL

from batchframe.server.engines import EngineError

pytestmark = pytest.mark.model

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["sentiment", "stars", "recommend", "product"],
    "properties": {
        "sentiment": {"type": "string", "enum": ["positive", "negative", "neutral"]},
        "stars": {"type": "integer", "minimum": 1, "maximum": 5},
        "recommend": {"type": "boolean"},
        "product": {"type": "object", "additionalProperties": False, "required": ["kind", "words"],
                    "properties": {"kind": {"type": "string", "maxLength": 12},
                                   "words": {"type": "array", "maxItems": 2,
                                             "items": {"type": "string", "maxLength": 10}}}},
    },
}
REVIEW = "Review: 'Great blender, works perfectly, five stars.' Summarise this review."


def ask(text: str, **params) -> dict:
    return {"model": MODEL, "max_tokens": 96, "temperature": 0,
            "messages": [{"role": "user", "content": text}], **params}


def test_a_format_schema_constrains_the_answer(llama_engine):
    fmt = {"type": "json_schema", "schema": SCHEMA}
    ga, beta, cut = llama_engine.complete_many([
        ask(REVIEW, output_config={"format": fmt}),
        ask("Review: 'Broke after a day.' Summarise this review.", output_format=fmt, temperature=0.7),
        ask(REVIEW, output_config={"format": fmt}, max_tokens=4),
    ])
    for answer in (ga, beta):
        assert not isinstance(answer, EngineError), answer
        [block] = answer.content
        assert block["type"] == "text" and answer.stop_reason == "end_turn", answer
        jsonschema.validate(json.loads(block["text"]), SCHEMA)
    assert not isinstance(cut, EngineError)
    assert cut.stop_reason == "max_tokens" and cut.output_tokens == 4
    assert ga.content[0]["text"].startswith(cut.content[0]["text"])  # same request, greedy: a prefix


def test_a_schema_the_converter_cannot_express_fails_only_its_request(llama_engine):
    bad = {"type": "json_schema", "schema": {"type": "object", "properties": {"x": {"$ref": "#/nowhere"}},
                                             "required": ["x"]}}
    refused, fine = llama_engine.complete_many([ask("hi", max_tokens=8, output_config={"format": bad}),
                                                ask("Say hi", max_tokens=8)])
    assert isinstance(refused, EngineError) and refused.error_type == "invalid_request_error"
    assert refused.message.startswith("output_config.format.schema")
    assert not isinstance(fine, EngineError) and fine.content[0]["text"]
