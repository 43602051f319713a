"""The official ``openai`` SDK drives the local service through every Files and Batches operation."""

from __future__ import annotations

import math

import openai
import pytest
from openai_helpers import (
    CHAT,
    EMBEDDINGS,
    chat_line,
    embedding_line,
    jsonl,
    make_client,
    read_lines,
    submit,
    upload,
    wait_done,
    wait_until,
)


@pytest.fixture
def client(service):
    with make_client(service.base_url) as sdk:
        yield sdk


def test_files_upload_retrieve_download_list_and_delete(client):
    data = jsonl([chat_line("a", "über café"), chat_line("b")])
    created = client.files.create(file=("rows.jsonl", data), purpose="batch")
    assert (created.object, created.filename, created.purpose, created.bytes) == ("file", "rows.jsonl", "batch",
                                                                                   len(data))
    assert created.id.startswith("file-") and created.expires_at == created.created_at + 30 * 86400
    assert client.files.retrieve(created.id) == created
    assert client.files.content(created.id).content == data  # byte for byte

    others = [upload(client, [chat_line(f"x{i}")], name=f"f{i}.jsonl") for i in range(3)]
    newest_first = [f.id for f in client.files.list(limit=2)]  # the SDK pages through with `after`
    assert newest_first == [f.id for f in reversed([created, *others])]
    first_page = client.files.list(limit=2, order="asc")
    assert [f.id for f in first_page.data] == [created.id, others[0].id] and first_page.has_more
    assert [f.id for f in client.files.list(purpose="batch", order="asc", after=others[1].id)] == [others[2].id]

    deleted = client.files.delete(created.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (created.id, "file", True)
    for call in (client.files.retrieve, client.files.content, client.files.delete):
        with pytest.raises(openai.NotFoundError):
            call(created.id)
    assert created.id not in [f.id for f in client.files.list()]


def test_chat_batch_with_a_bad_row_writes_output_and_error_files_and_keeps_metadata(client):
    lines = [chat_line(f"row-{i}", f"prompt number {i}") for i in range(5)]
    lines.append(chat_line("bad-row", max_tokens=0))  # a bad row: its own 400 line, never the batch's failure
    metadata = {"job": "nightly", "owner": "tests"}
    created = submit(client, lines, metadata=metadata)
    assert (created.status, created.endpoint, created.completion_window, created.metadata) == (
        "validating", CHAT, "24h", metadata)
    assert created.output_file_id is None and created.in_progress_at is None

    done = wait_done(client, created.id)
    assert done.status == "completed" and done.model == "gpt-4o-mini" and done.metadata == metadata
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (6, 5, 1)
    assert done.created_at <= done.in_progress_at <= done.finalizing_at <= done.completed_at
    assert done.failed_at is done.cancelled_at is done.errors is None

    output = read_lines(client, done.output_file_id)
    assert sorted(line["custom_id"] for line in output) == [f"row-{i}" for i in range(5)]
    for line in output:
        assert line["error"] is None and line["response"]["status_code"] == 200
        assert line["id"].startswith("batch_req_") and line["response"]["request_id"].startswith("req_")
        body = line["response"]["body"]
        assert body["object"] == "chat.completion" and body["choices"][0]["finish_reason"] == "stop"
        assert body["choices"][0]["message"]["content"] == "prompt number " + line["custom_id"][-1]  # echo
        assert body["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
        assert body["usage"]["total_tokens"] == 6
    [error] = read_lines(client, done.error_file_id)
    assert error["custom_id"] == "bad-row" and error["error"] is None
    assert error["response"]["status_code"] == 400
    assert error["response"]["body"]["error"] == {
        "message": "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got 0 instead.",
        "type": "invalid_request_error", "param": "max_tokens", "code": "integer_below_min_value"}
    assert done.usage.input_tokens == done.usage.output_tokens == 15 and done.usage.total_tokens == 30

    output_file = client.files.retrieve(done.output_file_id)
    assert output_file.purpose == "batch_output" and output_file.filename == f"{done.id}_output.jsonl"
    assert [b.metadata for b in client.batches.list() if b.id == done.id] == [metadata]


def test_embeddings_batch_output_matches_the_synchronous_endpoint(client):
    lines = [embedding_line("one", "a red fox"), embedding_line("many", ["x y", "z"], dimensions=8),
             embedding_line("tokens", [[1, 2, 3]], dimensions=3)]
    done = wait_done(client, submit(client, lines, endpoint=EMBEDDINGS).id)
    assert done.status == "completed" and done.endpoint == EMBEDDINGS and done.error_file_id is None
    assert (done.request_counts.completed, done.request_counts.failed) == (3, 0)
    by_id = {line["custom_id"]: line["response"]["body"] for line in read_lines(client, done.output_file_id)}
    assert [len(d["embedding"]) for d in by_id["one"]["data"]] == [1536]
    assert [len(d["embedding"]) for d in by_id["many"]["data"]] == [8, 8]
    assert by_id["many"]["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    assert by_id["tokens"]["usage"]["prompt_tokens"] == 3
    for body in by_id.values():
        assert body["object"] == "list"
        for i, item in enumerate(body["data"]):
            assert item["index"] == i and math.isclose(math.fsum(x * x for x in item["embedding"]), 1.0)

    # The SDK asks for base64 by default and decodes it: the same vectors as the batch (float32 precision).
    sync = client.embeddings.create(model="text-embedding-3-small", input="a red fox")
    assert sync.data[0].embedding == pytest.approx(by_id["one"]["data"][0]["embedding"], abs=1e-6)
    large = client.embeddings.create(model="text-embedding-3-large", input="a red fox", encoding_format="float")
    assert len(large.data[0].embedding) == 3072
    short = client.embeddings.create(model="text-embedding-3-large", input="a red fox", dimensions=16,
                                     encoding_format="float").data[0].embedding
    prefix = large.data[0].embedding[:16]
    norm = math.sqrt(math.fsum(x * x for x in prefix))
    assert short == pytest.approx([x / norm for x in prefix])  # shortened = cut and renormalised


def test_a_completed_batch_whose_every_row_failed_has_only_an_error_file(client):
    lines = [chat_line("a", messages=[]), chat_line("b", temperature=3)]
    done = wait_done(client, submit(client, lines).id)
    assert done.status == "completed" and done.output_file_id is None and done.error_file_id
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (2, 0, 2)
    errors = {line["custom_id"]: line["response"]["body"]["error"] for line in read_lines(client, done.error_file_id)}
    assert errors["a"]["code"] == "empty_array" and errors["b"]["param"] == "temperature"


def test_list_pages_newest_first_with_after_and_limit(client):
    ids = [submit(client, [chat_line("a")], metadata={"n": str(i)}).id for i in range(5)]
    page = client.batches.list(limit=2)
    assert [b.id for b in page.data] == ids[:2:-1][:2] and page.has_more
    assert [b.id for b in client.batches.list(limit=2, after=ids[3]).data] == [ids[2], ids[1]]
    assert [b.id for b in client.batches.list(limit=2)] == ids[::-1]  # auto-paging follows last_id
    assert [b.metadata["n"] for b in client.batches.list(limit=100)] == ["4", "3", "2", "1", "0"]
    assert client.batches.list(after=ids[0]).data == []


def test_cancel_moves_through_cancelling_to_cancelled_and_keeps_partial_output(service_factory):
    service = service_factory(engine_options={"latency": 0.05}, workers=1)
    with make_client(service.base_url) as client:
        # 200 requests at 0.05 s each, one at a time: a 10 s window to cancel in, even on a busy machine.
        created = submit(client, [chat_line(f"r{i:03d}", f"text {i}") for i in range(200)])
        deadline_batch = wait_until(client, created.id, lambda b: b.request_counts.completed >= 2)
        cancelling = client.batches.cancel(created.id)
        assert cancelling.status == "cancelling" and cancelling.cancelling_at >= deadline_batch.created_at
        done = wait_done(client, created.id)
        assert done.status == "cancelled" and done.cancelled_at >= done.cancelling_at
        assert done.completed_at is None
        finished = done.request_counts.completed
        assert 2 <= finished < 200 and done.request_counts.failed == 0
        assert len(read_lines(client, done.output_file_id)) == finished
        unfinished = read_lines(client, done.error_file_id)
        assert len(unfinished) == 200 - finished
        assert {(line["response"], line["error"]["code"]) for line in unfinished} == {(None, "batch_cancelled")}
        with pytest.raises(openai.ConflictError):
            client.batches.cancel(created.id)  # already over


def test_a_bad_input_file_fails_the_batch_with_errors(client):
    duplicate = wait_done(client, submit(client, [chat_line("same"), chat_line("same")]).id)
    assert duplicate.status == "failed" and duplicate.failed_at and duplicate.output_file_id is None
    [error] = duplicate.errors.data
    assert (error.code, error.line, error.param) == ("duplicate_custom_id", 2, "custom_id")
    mixed = wait_done(client, submit(client, [chat_line("a"), chat_line("b", model="gpt-4.1-mini")]).id)
    assert mixed.errors.data[0].code == "model_mismatch"
    wrong_url = wait_done(client, submit(client, [embedding_line("a")]).id)
    assert wrong_url.errors.data[0].code == "url_mismatch"


def test_synchronous_chat_completions(client):
    answer = client.chat.completions.create(
        model="gpt-5-mini", messages=[{"role": "developer", "content": "Be brief."},
                                      {"role": "user", "content": "one two three four"}], max_completion_tokens=3)
    assert answer.object == "chat.completion" and answer.model == "echo"
    assert answer.choices[0].message.content == "[Be brief.] one"
    assert answer.choices[0].finish_reason == "length"
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (6, 3)  # "[Be" "brief.]" "one"
    assert answer.usage.prompt_tokens_details.cached_tokens == 0
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-nope", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.code == "model_not_found"
