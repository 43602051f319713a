"""OpenAI routes answer errors in OpenAI's envelope, take a Bearer key, and see injected faults; the
Anthropic routes keep their own envelope, headers and batches."""

from __future__ import annotations

import httpx
import openai
import pytest
from openai_helpers import chat_line, jsonl, make_client, read_lines, submit, validate_error, wait_done
from server_helpers import HEADERS

from batchframe.server import Faults

AUTH = {"authorization": "Bearer test-key"}


def test_request_errors_are_openai_envelopes_with_param_and_code(service):
    with httpx.Client(base_url=service.base_url, headers=AUTH) as http:
        missing = http.post("/v1/batches", json={"endpoint": "/v1/chat/completions", "completion_window": "24h"})
        assert missing.status_code == 400
        assert validate_error(missing.json()) == {
            "message": "Missing required parameter: 'input_file_id'.", "type": "invalid_request_error",
            "param": "input_file_id", "code": "missing_required_parameter"}
        window = http.post("/v1/batches", json={"input_file_id": "file-x", "endpoint": "/v1/chat/completions",
                                                "completion_window": "48h"})
        assert validate_error(window.json())["param"] == "completion_window"
        unknown_file = http.post("/v1/batches", json={"input_file_id": "file-x", "endpoint": "/v1/embeddings",
                                                      "completion_window": "24h"})
        assert unknown_file.status_code == 404 and validate_error(unknown_file.json())["param"] == "input_file_id"
        assert validate_error(http.get("/v1/files/file-nope").json())["message"] == "No such File object: file-nope"
        assert http.get("/v1/batches", params={"limit": 101}).status_code == 400
        route = http.get("/v1/batches/x/results")
        assert route.status_code == 404 and validate_error(route.json())["message"].startswith("Invalid URL")
        not_json = http.post("/v1/chat/completions", content=b"{", headers={"content-type": "application/json"})
        assert not_json.status_code == 400 and validate_error(not_json.json())["code"] is None
        assert "x-request-id" in not_json.headers
        metadata = http.post("/v1/batches", json={"input_file_id": "file-x", "endpoint": "/v1/embeddings",
                                                  "completion_window": "24h",
                                                  "metadata": {str(i): "v" for i in range(17)}})
        assert validate_error(metadata.json())["param"] == "metadata"


def test_bearer_key_on_openai_routes_and_x_api_key_on_anthropic_routes(service_factory):
    service = service_factory(api_key="sk-local-secret")
    with httpx.Client(base_url=service.base_url) as http:
        none = http.get("/v1/batches")
        assert none.status_code == 401 and validate_error(none.json())["message"].startswith("You didn't provide")
        wrong = http.get("/v1/batches", headers={"authorization": "Bearer sk-wrong-key-123"})
        assert wrong.status_code == 401 and validate_error(wrong.json())["code"] == "invalid_api_key"
        assert "sk-wrong-key-123" not in wrong.text
        assert http.get("/v1/batches", headers={"authorization": "Bearer sk-local-secret"}).status_code == 200
        anthropic = http.get("/v1/messages/batches", headers={**HEADERS, "x-api-key": "sk-local-secret"})
        assert anthropic.status_code == 200
        refused = http.get("/v1/messages/batches", headers=HEADERS)
        assert refused.status_code == 401 and refused.json()["type"] == "error"  # Anthropic's envelope
    with make_client(service.base_url, api_key="sk-local-secret") as client:
        assert client.batches.list().data == []
    with make_client(service.base_url, api_key="nope") as client, pytest.raises(openai.AuthenticationError):
        client.files.list()


def test_anthropic_routes_do_not_see_openai_batches(service):
    with make_client(service.base_url) as client:
        batch = wait_done(client, submit(client, [chat_line("a")]).id)
    with httpx.Client(base_url=service.base_url, headers=HEADERS) as http:
        assert http.get("/v1/messages/batches").json()["data"] == []
        for response in (http.get(f"/v1/messages/batches/{batch.id}"),
                         http.post(f"/v1/messages/batches/{batch.id}/cancel"),
                         http.get(f"/v1/messages/batches/{batch.id}/results"),
                         http.delete(f"/v1/messages/batches/{batch.id}")):
            assert response.status_code == 404 and response.json()["error"]["type"] == "not_found_error"


def test_injected_http_errors_are_openai_shaped_and_the_sdk_retries_them(service_factory):
    service = service_factory(faults=Faults(http_error_rate=1.0, http_error_statuses=(429,),
                                            retry_after_seconds=0.01))
    with httpx.Client(base_url=service.base_url, headers=AUTH) as http:
        limited = http.get("/v1/files")
        assert limited.status_code == 429 and limited.headers["retry-after"] == "1"
        assert validate_error(limited.json())["code"] == "rate_limit_exceeded"
        service.set_faults(Faults(http_error_rate=1.0, http_error_statuses=(500,)))
        assert validate_error(http.get("/v1/batches").json())["type"] == "server_error"
    with make_client(service.base_url) as client, pytest.raises(openai.InternalServerError):
        client.batches.list()
    service.set_faults(Faults(http_error_rate=0.5, http_error_statuses=(429, 503), retry_after_seconds=0.01,
                              seed=11))
    with make_client(service.base_url, max_retries=10) as client:
        batch = submit(client, [chat_line("a")])
        for _ in range(5):
            assert client.batches.retrieve(batch.id).id == batch.id


def test_request_faults_become_error_lines_and_download_faults_hit_file_content(service_factory):
    service = service_factory(faults=Faults(request_error_rate=1.0, request_error_type="overloaded_error"))
    with make_client(service.base_url) as client:
        done = wait_done(client, submit(client, [chat_line(f"r{i}") for i in range(4)]).id)
        assert done.output_file_id is None and done.request_counts.failed == 4
        lines = read_lines(client, done.error_file_id)
        assert {line["response"]["status_code"] for line in lines} == {503}
        assert {line["response"]["body"]["error"]["type"] for line in lines} == {"server_error"}
        service.set_faults(Faults(results_crlf=True))
        assert client.files.content(done.error_file_id).content.count(b"\r\n") == 4
        service.set_faults(Faults(cut_results_after_bytes=50))
        with pytest.raises(openai.APIConnectionError):
            client.files.content(done.error_file_id)
        service.set_faults(Faults())
        assert client.files.content(done.error_file_id).content.count(b"\n") == 4


def test_upload_refusals(service):
    with httpx.Client(base_url=service.base_url, headers=AUTH) as http:
        no_file = http.post("/v1/files", data={"purpose": "batch"}, files={"other": ("a", b"x")})
        assert validate_error(no_file.json())["code"] == "missing_required_parameter"
        not_jsonl = http.post("/v1/files", data={"purpose": "batch"}, files={"file": ("a.csv", jsonl([]))})
        assert validate_error(not_jsonl.json())["param"] == "file"
        purpose = http.post("/v1/files", data={"purpose": "nope"}, files={"file": ("a.jsonl", b"{}\n")})
        assert validate_error(purpose.json())["param"] == "purpose"
