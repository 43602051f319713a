"""The llama engine on SmolLM2-135M-Instruct, called directly: stop reasons, usage, tools, options."""

from __future__ import annotations

import jsonschema
import pytest
from model_helpers import MODEL, chatml, model_file

from batchframe.server.engines import EngineError, make_engine
from batchframe.server.errors import ServiceError

pytestmark = pytest.mark.model

SENTIMENT = {
    "name": "record_sentiment",
    "description": "Record the sentiment of a product review",
    "input_schema": {
        "type": "object",
        "properties": {
            "sentiment": {"type": "string", "enum": ["positive", "negative", "neutral"]},
            "stars": {"type": "integer", "minimum": 1, "maximum": 5},
            "summary": {"type": "string", "maxLength": 60},
        },
        "required": ["sentiment", "stars"],
    },
}
WEATHER = {"name": "get_weather", "input_schema": {
    "type": "object", "properties": {"city": {"type": "string", "maxLength": 40}}, "required": ["city"]}}


def ask(text: str, **params) -> dict:
    return {"model": MODEL, "max_tokens": 48, "temperature": 0,
            "messages": [{"role": "user", "content": text}], **params}


def test_answers_in_text_and_counts_tokens_with_the_model_tokenizer(llama_engine, tokenizer):
    params = ask("What is the capital of France? Answer in one sentence.", system="Be brief.")
    done = llama_engine.complete(params)
    text = done.content[0]["text"]
    assert done.stop_reason == "end_turn" and "Paris" in text
    assert done.input_tokens == tokenizer(chatml("Be brief.", ("user", params["messages"][0]["content"])))
    assert done.input_tokens == llama_engine.count_tokens(params)
    assert done.output_tokens == tokenizer(text)


def test_max_tokens_and_stop_sequences(llama_engine, tokenizer):
    long, stopped = llama_engine.complete_many([
        ask("Tell me a long story about dragons.", max_tokens=5),
        ask("Count from 1 to 10, separated by commas.", stop_sequences=["7", "never"]),
    ])
    assert long.stop_reason == "max_tokens" and long.output_tokens == 5
    assert tokenizer(long.content[0]["text"]) == 5
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == "7"
    assert stopped.content[0]["text"] == "1, 2, 3, 4, 5, 6, "
    # the tokens sampled include the one that carried the stop sequence
    assert stopped.output_tokens == tokenizer("1, 2, 3, 4, 5, 6, 7")


def test_a_forced_tool_gets_input_that_validates(llama_engine):
    review = "Review: 'Great blender, works perfectly, five stars.'"
    done = llama_engine.complete(ask(review, max_tokens=64, tools=[SENTIMENT],
                                     tool_choice={"type": "tool", "name": "record_sentiment"}))
    (block,) = done.content
    assert done.stop_reason == "tool_use" and block["type"] == "tool_use"
    assert block["name"] == "record_sentiment" and block["id"].startswith("toolu_")
    jsonschema.validate(block["input"], SENTIMENT["input_schema"])
    assert done.output_tokens > 0


def test_a_tool_input_cut_by_max_tokens_is_no_tool_use(llama_engine):
    done = llama_engine.complete(ask("Weather in Paris?", max_tokens=3, tools=[WEATHER],
                                     tool_choice={"type": "tool", "name": "get_weather"}))
    assert done.stop_reason == "max_tokens" and done.output_tokens == 3
    (block,) = done.content
    assert block["type"] == "text" and block["text"].startswith("{")


def test_the_tool_grammar_keeps_control_characters_out_of_json_strings():
    # llama-cpp-python's JSON-schema converter lets a string hold a raw newline; JSON forbids it
    from batchframe.server.engines.llama import _grammar

    grammar = _grammar(WEATHER, False)
    (char_rule,) = [line for line in grammar.splitlines() if line.startswith("char ::=")]
    assert char_rule.startswith(r'char ::= [^"\\\x7F\x00-\x1F] |'), char_rule


def test_tool_choice_any_picks_one_of_several_tools(llama_engine):
    done = llama_engine.complete(ask("What is the weather in Paris?", max_tokens=64,
                                     tools=[SENTIMENT, WEATHER], tool_choice={"type": "any"}))
    (block,) = done.content
    assert done.stop_reason == "tool_use"
    schema = {"record_sentiment": SENTIMENT, "get_weather": WEATHER}[block["name"]]["input_schema"]
    jsonschema.validate(block["input"], schema)


def test_tool_choice_auto_answers_in_text(llama_engine):
    done = llama_engine.complete(ask("Say hello.", tools=[WEATHER], tool_choice={"type": "auto"}))
    assert done.content[0]["type"] == "text" and done.stop_reason in ("end_turn", "max_tokens")


def test_assistant_prefill_is_continued(llama_engine, tokenizer):
    params = ask("Name a fruit.")
    params["messages"].append({"role": "assistant", "content": "A fruit I like is"})
    done = llama_engine.complete(params)
    assert done.content[0]["text"].strip()
    assert done.input_tokens == tokenizer(chatml(None, ("user", "Name a fruit.")) + "A fruit I like is")


def test_sampling_is_reproducible_per_request_and_honours_top_k(llama_engine):
    params = ask("Write one sentence about the sea.", max_tokens=16, temperature=1.0, top_p=0.9)
    first, second = llama_engine.complete(params), llama_engine.complete(params)
    assert first.content == second.content
    # top_k=1 keeps only the most likely token: the same answer as greedy decoding
    sea = "Write one sentence about the sea."
    greedy = llama_engine.complete(ask(sea, max_tokens=16))
    top_1 = llama_engine.complete(ask(sea, max_tokens=16, temperature=1.0, top_k=1))
    assert top_1.content == greedy.content


@pytest.mark.parametrize("bad", [{"temperature": 1.5}, {"top_p": -0.1}, {"top_k": -1}, {"temperature": "x"}])
def test_bad_sampling_options_are_invalid_requests(llama_engine, bad):
    with pytest.raises(EngineError) as caught:
        llama_engine.complete(ask("hi", **bad))
    assert caught.value.error_type == "invalid_request_error"
    assert next(iter(bad)) in caught.value.message


def test_errors_stay_on_their_own_request_in_a_chunk(llama_engine):
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
    answers = llama_engine.complete_many([
        ask("Say hello."),
        {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": [image]}]},
        ask("word " * 1100),
        ask("x", tools=[WEATHER], tool_choice={"type": "tool", "name": "missing"}),
        ask("What is 2+2?"),
    ])
    assert [type(a).__name__ for a in answers] == ["Completion", "EngineError", "EngineError", "EngineError",
                                                   "Completion"]
    assert "text only" in answers[1].message and "too long" in answers[2].message
    assert "missing" in answers[3].message
    assert "4" in answers[4].content[0]["text"]


def test_any_gguf_path_is_accepted_and_named_after_the_file(llama_engine):
    # also: one context using both threads (instead of one context per thread) answers the same
    engine = make_engine("llama", model_path=str(model_file()), n_parallel=2, n_ctx=256, threads_per_context=2)
    try:
        assert engine.model_ids == (model_file().stem.lower(),)
        done = engine.complete(ask("Say hello.", model=engine.model_ids[0], max_tokens=12))
        assert done.content == llama_engine.complete(ask("Say hello.", max_tokens=12)).content
    finally:
        engine.close()
    with pytest.raises(ServiceError, match="no GGUF model file"):
        make_engine("llama", model_path="/nonexistent/model.gguf")
