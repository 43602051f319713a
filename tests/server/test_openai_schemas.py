"""Every OpenAI response body the service produces validates against the OpenAI spec (``$ref``s resolved)."""

from __future__ import annotations

import json
import time

import httpx
import openai
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion
from openai_helpers import (
    CHAT,
    EMBEDDINGS,
    chat_line,
    embedding_line,
    jsonl,
    validate,
    validate_error,
)

AUTH = {"authorization": "Bearer test-key"}


def _upload(http: httpx.Client, lines: list[dict]) -> dict:
    answer = http.post("/v1/files", files={"file": ("in.jsonl", jsonl(lines))}, data={"purpose": "batch"})
    assert answer.status_code == 200, answer.text
    validate(answer.json(), "OpenAIFile")
    return answer.json()


def _create(http: httpx.Client, lines: list[dict], endpoint: str = CHAT, **extra) -> dict:
    file = _upload(http, lines)
    answer = http.post("/v1/batches", json={"input_file_id": file["id"], "endpoint": endpoint,
                                            "completion_window": "24h", **extra})
    assert answer.status_code == 200, answer.text
    validate(answer.json(), "Batch")
    return answer.json()


def _wait(http: httpx.Client, batch_id: str, statuses=("completed", "failed", "cancelled")) -> dict:
    deadline = time.monotonic() + 30
    while True:
        batch = http.get(f"/v1/batches/{batch_id}").json()
        validate(batch, "Batch")  # every state on the way, too
        if batch["status"] in statuses:
            return batch
        assert time.monotonic() < deadline, batch
        time.sleep(0.02)


def _lines(http: httpx.Client, file_id: str) -> list[dict]:
    answer = http.get(f"/v1/files/{file_id}/content")
    assert answer.status_code == 200
    lines = [json.loads(line) for line in answer.content.split(b"\n") if line]
    for line in lines:
        validate(line, "BatchRequestOutput")
    return lines


def test_files_batches_lists_and_result_lines_validate(service_factory):
    service = service_factory(engine_options={"latency": 0.01}, workers=2)
    with httpx.Client(base_url=service.base_url, headers=AUTH, timeout=30) as http:
        empty = http.get("/v1/batches").json()
        validate(empty, "ListBatchesResponse")
        assert empty == {"object": "list", "data": [], "has_more": False}

        chat = _create(http, [chat_line("ok", "one two"), chat_line("bad", messages="nope")],
                       metadata={"k": "v"})
        assert chat["status"] == "validating" and chat["metadata"] == {"k": "v"}
        done = _wait(http, chat["id"])
        assert done["status"] == "completed" and done["request_counts"] == {"total": 2, "completed": 1, "failed": 1}
        [ok] = _lines(http, done["output_file_id"])
        ChatCompletion.model_validate(ok["response"]["body"])  # the spec subset has no chat schema: the SDK's
        assert ok["response"]["body"]["choices"][0]["message"]["content"] == "one two"
        [bad] = _lines(http, done["error_file_id"])
        assert validate_error(bad["response"]["body"])["code"] == "invalid_type"

        embeddings = _wait(http, _create(http, [embedding_line("e", "x", dimensions=2)], EMBEDDINGS)["id"])
        [line] = _lines(http, embeddings["output_file_id"])
        assert CreateEmbeddingResponse.model_validate(line["response"]["body"]).data[0].embedding is not None

        failed = _wait(http, _create(http, [chat_line("x"), chat_line("x")])["id"])
        assert failed["status"] == "failed" and failed["errors"]["data"][0]["code"] == "duplicate_custom_id"

        slow = _create(http, [chat_line(f"c{i}") for i in range(60)])
        cancelling = http.post(f"/v1/batches/{slow['id']}/cancel").json()
        validate(cancelling, "Batch")
        assert cancelling["status"] == "cancelling"
        cancelled = _wait(http, slow["id"])
        assert cancelled["status"] == "cancelled"
        assert {line["error"]["code"] for line in _lines(http, cancelled["error_file_id"])} == {"batch_cancelled"}

        page = http.get("/v1/batches", params={"limit": 2}).json()
        validate(page, "ListBatchesResponse")
        assert len(page["data"]) == 2 and page["has_more"] and page["last_id"] == page["data"][1]["id"]
        files = http.get("/v1/files", params={"limit": 3, "purpose": "batch_output"}).json()
        validate(files, "ListFilesResponse")
        assert {f["purpose"] for f in files["data"]} == {"batch_output"} and files["has_more"]
        deleted = http.delete(f"/v1/files/{done['output_file_id']}").json()
        validate(deleted, "DeleteFileResponse")
        assert deleted == {"id": done["output_file_id"], "object": "file", "deleted": True}


def test_create_request_bodies_and_input_lines_follow_the_spec(service):
    # What the tests send is itself what the spec describes: a check on the tests, and on the service's reading.
    for line in (chat_line("a"), embedding_line("b")):
        validate(line, "BatchRequestInput")
    validate({"input_file_id": "file-1", "endpoint": CHAT, "completion_window": "24h", "metadata": {"a": "b"}},
             "CreateBatchRequest")
    with openai.OpenAI(base_url=f"{service.base_url}/v1", api_key="k", max_retries=0) as client:
        file = client.files.create(file=("x.jsonl", jsonl([chat_line("a")])), purpose="batch",
                                   expires_after={"anchor": "created_at", "seconds": 3600})
    assert file.expires_at == file.created_at + 3600
