"""The official anthropic SDK drives every operation of the local service over loopback HTTP."""

from __future__ import annotations

import anthropic
import pytest
from server_helpers import MODEL, make_sdk, request, wait_ended

from batchframe.server import Faults


def test_create_retrieve_and_iterate_results(sdk, service):
    batch = sdk.messages.batches.create(requests=[request(f"row-{i}", f"answer {i}") for i in range(5)])
    assert batch.id.startswith("msgbatch_") and batch.processing_status == "in_progress"
    assert batch.request_counts.processing == 5 and batch.results_url is None

    ended = wait_ended(sdk, batch.id)
    assert ended.request_counts.succeeded == 5 and ended.request_counts.processing == 0
    assert ended.results_url == f"{service.base_url}/v1/messages/batches/{batch.id}/results"
    results = {r.custom_id: r.result for r in sdk.messages.batches.results(batch.id)}
    assert sorted(results) == [f"row-{i}" for i in range(5)]
    assert results["row-3"].type == "succeeded"
    assert results["row-3"].message.content[0].text == "answer 3"
    assert results["row-3"].message.usage.service_tier == "batch"


def test_errored_lines_surface_as_typed_results(sdk):
    batch = sdk.messages.batches.create(requests=[
        request("ok", "fine"),
        request("bad-model", model="claude-does-not-exist-9"),
        request("too-many", max_tokens=9_999_999),
    ])
    wait_ended(sdk, batch.id)
    results = {r.custom_id: r.result for r in sdk.messages.batches.results(batch.id)}
    assert results["ok"].type == "succeeded"
    assert results["bad-model"].type == "errored"
    assert results["bad-model"].error.error.type == "not_found_error"
    assert results["bad-model"].error.error.message == "model: claude-does-not-exist-9"
    assert results["too-many"].error.error.message == (
        "max_tokens: 9999999 > 64000, which is the maximum allowed number of output tokens for "
        "claude-haiku-4-5-20251001")


def test_cancel_then_delete(service_factory):
    service = service_factory(engine_options={"latency": 0.05}, workers=1)
    with make_sdk(service.base_url) as sdk:
        batch = sdk.messages.batches.create(requests=[request(f"r{i}") for i in range(40)])
        canceled = sdk.messages.batches.cancel(batch.id)
        assert canceled.processing_status == "canceling" and canceled.request_counts.processing >= 30
        assert canceled.cancel_initiated_at is not None and canceled.results_url is None
        ended = wait_ended(sdk, batch.id)
        counts = ended.request_counts
        assert counts.canceled >= 30 and counts.succeeded + counts.canceled == 40
        kinds = [r.result.type for r in sdk.messages.batches.results(batch.id)]
        assert sorted(set(kinds)) <= ["canceled", "succeeded"] and kinds.count("canceled") == counts.canceled

        deleted = sdk.messages.batches.delete(batch.id)
        assert deleted.id == batch.id and deleted.type == "message_batch_deleted"
        with pytest.raises(anthropic.NotFoundError):
            sdk.messages.batches.retrieve(batch.id)


def test_delete_in_progress_is_a_bad_request(service_factory):
    service = service_factory(engine_options={"latency": 0.5}, workers=1)
    with make_sdk(service.base_url) as sdk:
        batch = sdk.messages.batches.create(requests=[request(f"r{i}") for i in range(3)])
        with pytest.raises(anthropic.BadRequestError) as info:
            sdk.messages.batches.delete(batch.id)
        assert info.value.body["error"]["message"] == (
            "In progress batches cannot be deleted. Consider canceling the batch instead.")
        sdk.messages.batches.cancel(batch.id)


def test_list_auto_paginates_newest_first(sdk):
    ids = [sdk.messages.batches.create(requests=[request("only")]).id for _ in range(5)]
    first_page = sdk.messages.batches.list(limit=2)
    assert [b.id for b in first_page.data] == ids[::-1][:2] and first_page.has_more
    assert [b.id for b in sdk.messages.batches.list(limit=2)] == ids[::-1]  # iterating follows after_id


def test_not_found_and_bad_request(sdk):
    with pytest.raises(anthropic.NotFoundError) as info:
        sdk.messages.batches.retrieve("msgbatch_doesnotexist")
    assert info.value.body["error"]["message"] == "Message Batch msgbatch_doesnotexist not found."
    with pytest.raises(anthropic.BadRequestError) as info:
        sdk.messages.batches.create(requests=[request("dup"), request("dup")])
    assert info.value.body["error"]["message"] == (
        "requests: custom_id's must be unique within a batch. Duplicate custom_id found: dup")


def test_rate_limit_error_after_retries_are_exhausted(service_factory):
    service = service_factory(faults=Faults(http_error_rate=1.0, http_error_statuses=(429,),
                                            retry_after_seconds=0.01, seed=1))
    with make_sdk(service.base_url, max_retries=2) as sdk:
        with pytest.raises(anthropic.RateLimitError) as info:
            sdk.messages.batches.list()
    assert info.value.response.headers["retry-after-ms"] == "10"
    assert info.value.body["error"]["type"] == "rate_limit_error"


def test_count_tokens_and_messages(sdk):
    messages = [{"role": "user", "content": "one two three"}]
    params = {"model": MODEL, "system": "Be brief.", "messages": messages}
    counted = sdk.messages.count_tokens(**params)
    assert counted.input_tokens == 5
    message = sdk.messages.create(max_tokens=2, **params)
    assert message.usage.input_tokens == counted.input_tokens
    assert message.content[0].text == "[Be brief.]"
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 2


def test_legacy_beta_namespace(sdk):
    batch = sdk.beta.messages.batches.create(requests=[request("b1", "via beta")])
    wait_ended(sdk, batch.id)
    assert sdk.beta.messages.batches.retrieve(batch.id).request_counts.succeeded == 1
    [line] = list(sdk.beta.messages.batches.results(batch.id))
    assert line.custom_id == "b1" and line.result.message.content[0].text == "via beta"


def test_tool_use_in_a_batch(sdk):
    tool = {"name": "label", "description": "Label the text",
            "input_schema": {"type": "object", "required": ["sentiment", "confidence"], "properties": {
                "sentiment": {"enum": ["pos", "neg"]}, "confidence": {"type": "number", "minimum": 0.5}}}}
    batch = sdk.messages.batches.create(requests=[
        request("t1", "great stuff", tools=[tool], tool_choice={"type": "tool", "name": "label"})])
    wait_ended(sdk, batch.id)
    [line] = list(sdk.messages.batches.results(batch.id))
    block = line.result.message.content[0]
    assert block.type == "tool_use" and block.name == "label"
    assert block.input["sentiment"] in ("pos", "neg") and block.input["confidence"] >= 0.5
    assert line.result.message.stop_reason == "tool_use"
