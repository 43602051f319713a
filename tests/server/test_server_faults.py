"""Fault injection: error statuses, errored requests, cut results streams, slow calls; all switchable live."""

from __future__ import annotations

import json
import time

import anthropic
import httpx
import pytest
from server_helpers import HEADERS, make_sdk, request, wait_ended_http

from batchframe.server import Faults


def test_injected_statuses_are_api_shaped_and_can_be_switched_off(service):
    with httpx.Client(base_url=service.base_url, headers=HEADERS) as http:
        service.set_faults(Faults(http_error_rate=1.0, http_error_statuses=(529,)))
        overloaded = http.get("/v1/messages/batches")
        assert overloaded.status_code == 529
        assert overloaded.json()["error"]["type"] == "overloaded_error"
        assert http.get("/health").status_code == 200  # only API calls are hit
        service.set_faults(Faults(http_error_rate=1.0, http_error_statuses=(500,)))
        assert http.get("/v1/messages/batches").json()["error"]["type"] == "api_error"
        service.set_faults(Faults())
        assert http.get("/v1/messages/batches").status_code == 200


def test_sdk_sees_overloaded_and_retries_through_intermittent_429s(service_factory):
    service = service_factory(faults=Faults(http_error_rate=1.0, http_error_statuses=(529,)))
    with make_sdk(service.base_url) as sdk:
        with pytest.raises(anthropic.OverloadedError):
            sdk.messages.batches.list()
    service.set_faults(Faults(http_error_rate=0.5, http_error_statuses=(429,), retry_after_seconds=0.01,
                              seed=7))
    with make_sdk(service.base_url, max_retries=10) as sdk:
        batch = sdk.messages.batches.create(requests=[request("r1")])
        for _ in range(5):
            assert sdk.messages.batches.retrieve(batch.id).id == batch.id


def test_errors_after_processing_lose_the_answer_not_the_action(service):
    with httpx.Client(base_url=service.base_url, headers=HEADERS) as http:
        service.set_faults(Faults(http_error_rate=1.0, http_error_statuses=(500,), http_errors_after_processing=True))
        lost = http.post("/v1/messages/batches", json={"requests": [request("a")]})
        assert lost.status_code == 500 and lost.json()["error"]["type"] == "api_error"
        service.set_faults(Faults())
        [batch] = http.get("/v1/messages/batches").json()["data"]  # the batch exists all the same
    assert batch["request_counts"]["processing"] + batch["request_counts"]["succeeded"] == 1


def test_seeded_faults_repeat(service_factory):
    def statuses(seed):
        faults = Faults(http_error_rate=0.5, http_error_statuses=(429, 500), seed=seed)
        service = service_factory(faults=faults)
        with httpx.Client(base_url=service.base_url, headers=HEADERS) as http:
            return [http.get("/v1/messages/batches").status_code for _ in range(12)]

    first, second = statuses(3), statuses(3)
    assert first == second and set(first) == {200, 429, 500}


def test_request_errors_become_errored_lines_of_the_chosen_type(service_factory):
    service = service_factory(faults=Faults(request_error_rate=1.0, request_error_type="overloaded_error"))
    with httpx.Client(base_url=service.base_url, headers=HEADERS) as http:
        batch_id = http.post("/v1/messages/batches", json={"requests": [request(f"r{i}") for i in range(5)]}
                             ).json()["id"]
        ended = wait_ended_http(http, batch_id)
        assert ended["request_counts"]["errored"] == 5
        lines = [json.loads(x) for x in http.get(ended["results_url"]).content.splitlines()]
    assert {line["result"]["error"]["error"]["type"] for line in lines} == {"overloaded_error"}
    assert all(line["result"]["error"]["request_id"].startswith("req_") for line in lines)


def test_results_stream_cut_after_n_bytes(service_factory):
    service = service_factory()
    with httpx.Client(base_url=service.base_url, headers=HEADERS) as http:
        batch_id = http.post("/v1/messages/batches", json={"requests": [request(f"r{i}") for i in range(20)]}
                             ).json()["id"]
        ended = wait_ended_http(http, batch_id)
        service.set_faults(Faults(cut_results_after_bytes=1000))
        received = bytearray()
        with pytest.raises(httpx.RemoteProtocolError):
            with http.stream("GET", ended["results_url"]) as response:
                for chunk in response.iter_raw():
                    received += chunk
        assert len(received) == 1000
        service.set_faults(Faults(cut_results_after_bytes=10**9))  # longer than the stream: no cut
        assert len(http.get(ended["results_url"]).content.splitlines()) == 20


def test_results_with_crlf_and_without_content_type(service_factory):
    service = service_factory(faults=Faults(results_crlf=True, results_no_content_type=True))
    with httpx.Client(base_url=service.base_url, headers=HEADERS) as http:
        batch_id = http.post("/v1/messages/batches", json={"requests": [request("a", "x\u2028y"), request("b")]}
                             ).json()["id"]
        ended = wait_ended_http(http, batch_id)
        response = http.get(ended["results_url"])
    assert "content-type" not in response.headers
    assert response.content.count(b"\r\n") == 2 and response.content.endswith(b"}\r\n")
    lines = {json.loads(x)["custom_id"]: json.loads(x) for x in response.content.split(b"\r\n")[:-1]}
    assert lines["a"]["result"]["message"]["content"][0]["text"] == "x\u2028y"
    assert "\u2028".encode() in response.content  # raw U+2028 inside a line: a trap for splitlines()


def test_slow_calls(service_factory):
    service = service_factory(faults=Faults(slow_seconds=0.3))
    with httpx.Client(base_url=service.base_url, headers=HEADERS) as http:
        start = time.monotonic()
        assert http.get("/v1/messages/batches").status_code == 200
        assert time.monotonic() - start >= 0.3
