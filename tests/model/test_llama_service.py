"""A 20-request Message Batch answered by SmolLM2 through the local service, driven by the official SDK."""

from __future__ import annotations

import time

import anthropic
import jsonschema
import pytest
from model_helpers import MODEL, chatml

pytestmark = pytest.mark.model

QUESTIONS = [
    "What is the capital of France?", "What is 2+2?", "Name the largest ocean on Earth.",
    "What colour is the sky on a clear day?", "Say hello.", "What do bees make?",
    "Name a fruit that is yellow.", "How many days are in a week?", "What is water made of?",
    "Translate 'thank you' into French.", "What is the opposite of hot?", "Name a planet.",
    "What animal says moo?", "What is the boiling point of water in Celsius?",
]
REVIEW_TOOL = {
    "name": "record_review",
    "description": "Record the sentiment of a product review",
    "input_schema": {
        "type": "object",
        "properties": {
            "sentiment": {"type": "string", "enum": ["positive", "negative", "neutral"]},
            "stars": {"type": "integer", "minimum": 1, "maximum": 5},
            "product": {"type": "string", "maxLength": 40},
        },
        "required": ["sentiment", "stars", "product"],
        "additionalProperties": False,
    },
}


def body(text: str, *, model: str = MODEL, max_tokens: int = 40, **params) -> dict:
    return {"model": model, "max_tokens": max_tokens, "temperature": 0,
            "messages": [{"role": "user", "content": text}], **params}


def twenty_requests() -> dict[str, dict]:
    requests = {f"q-{i:02d}": body(q) for i, q in enumerate(QUESTIONS)}
    requests["sys"] = body("What is the capital of Italy?", system="Answer in one short sentence.")
    requests["claude-id"] = body("What is the capital of Spain?", model="claude-haiku-4-5")
    requests["long"] = body("Tell me a long story about a dragon and a knight.", max_tokens=6)
    requests["stop"] = body("Count from 1 to 10, separated by commas.", stop_sequences=["7"])
    requests["tool"] = body("Review: 'This kettle is wonderful, it boils fast. Five stars!'", max_tokens=80,
                            tools=[REVIEW_TOOL], tool_choice={"type": "tool", "name": "record_review"})
    requests["tool-any"] = body("Review: 'The toaster broke after a day. Awful.'", max_tokens=80,
                                tools=[REVIEW_TOOL], tool_choice={"type": "any"})
    assert len(requests) == 20
    return requests


@pytest.fixture(scope="module")
def llama_service(tmp_path_factory):
    from batchframe.server import serve_in_thread

    service = serve_in_thread(data_dir=tmp_path_factory.mktemp("llama-service"), engine="llama")
    yield service
    service.stop()


@pytest.fixture
def client(llama_service):
    sdk = anthropic.Anthropic(base_url=llama_service.base_url, api_key="test-key", max_retries=0)
    yield sdk
    sdk.close()


def run_batch(client: anthropic.Anthropic, requests: dict[str, dict], timeout: float = 150.0) -> dict:
    batch = client.messages.batches.create(
        requests=[{"custom_id": cid, "params": params} for cid, params in requests.items()])
    deadline = time.monotonic() + timeout
    while batch.processing_status != "ended":
        assert time.monotonic() < deadline, f"batch still {batch.processing_status}: {batch.request_counts}"
        time.sleep(0.25)
        batch = client.messages.batches.retrieve(batch.id)
    assert batch.request_counts.succeeded == len(requests), batch.request_counts
    return {r.custom_id: r.result.message for r in client.messages.batches.results(batch.id)}


def test_a_twenty_request_batch_ends_with_real_answers(client, tokenizer):
    requests = twenty_requests()
    messages = run_batch(client, requests)
    assert set(messages) == set(requests)

    exact = 0
    for cid in [c for c in requests if c.startswith("q-") or c in ("sys", "claude-id")]:
        message, params = messages[cid], requests[cid]
        (block,) = message.content
        assert block.type == "text" and any(ch.isalpha() for ch in block.text), (cid, block.text)
        assert message.model == MODEL
        # usage: the chat-templated prompt and the answer, counted with the model's own tokenizer
        expected = chatml(params.get("system"), ("user", params["messages"][0]["content"]))
        assert message.usage.input_tokens == tokenizer(expected), cid
        # output_tokens counts the tokens sampled; re-tokenizing the text gives the same count unless the
        # model sampled a non-canonical split of a word (e.g. "Españ" + "a"), which adds a token or two
        retokenized = tokenizer(block.text)
        exact += message.usage.output_tokens == retokenized
        assert 0 <= message.usage.output_tokens - retokenized <= 3, (cid, block.text)
        # a 135M model sometimes rambles: an answer either ended its turn early or used every token
        if message.stop_reason == "end_turn":
            assert message.usage.output_tokens < params["max_tokens"], cid
        else:
            assert (message.stop_reason, message.usage.output_tokens) == ("max_tokens", params["max_tokens"])
    assert exact >= 12, exact
    ended = [cid for cid, m in messages.items() if m.stop_reason == "end_turn"]
    assert {"q-01", "sys"} <= set(ended) and len(ended) >= 8, ended
    assert "4" in messages["q-01"].content[0].text
    assert "Rome" in messages["sys"].content[0].text

    long = messages["long"]
    assert long.stop_reason == "max_tokens" and long.usage.output_tokens == 6
    assert tokenizer(long.content[0].text) == 6

    stop = messages["stop"]
    assert stop.stop_reason == "stop_sequence" and stop.stop_sequence == "7"
    assert stop.content[0].text == "1, 2, 3, 4, 5, 6, "

    for cid in ("tool", "tool-any"):
        message = messages[cid]
        (block,) = message.content
        assert message.stop_reason == "tool_use" and block.type == "tool_use", (cid, message.content)
        assert block.name == "record_review" and block.id.startswith("toolu_")
        jsonschema.validate(block.input, REVIEW_TOOL["input_schema"])
    assert messages["tool"].content[0].input["sentiment"] == "positive"


def test_count_tokens_and_a_synchronous_message_use_the_model_tokenizer(client, tokenizer):
    params = body("What is the capital of France? Answer in one sentence.", system="Be brief.")
    counted = client.messages.count_tokens(model=MODEL, system="Be brief.", messages=params["messages"])
    text = params["messages"][0]["content"]
    assert counted.input_tokens == tokenizer(chatml("Be brief.", ("user", text)))
    # SDK 2.x has no sampling arguments; the service still honours the API's temperature field
    message = client.messages.create(model=MODEL, max_tokens=40, system="Be brief.",
                                     messages=params["messages"], extra_body={"temperature": 0})
    assert message.usage.input_tokens == counted.input_tokens
    assert message.usage.output_tokens == tokenizer(message.content[0].text)
    assert "Paris" in message.content[0].text
