"""One request never harms another: a bad or crashing request errors alone, in any batch and any chunk.

Bad input is its own ``invalid_request_error`` line; an engine failure is ``api_error`` for that request
only, even when the engine's batch method fails for the whole chunk (the worker then retries the chunk's
requests one at a time). Valid requests of the same chunk, of the same batch or of another batch in flight
at the same time, all succeed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import httpx
from server_helpers import HEADERS, create, request, result_lines, wait_ended_http
from test_server_validation import BAD_INPUTS

from batchframe.server.engines.base import Completion, Engine, EngineError, register_engine
from batchframe.server.engines.text import last_user_text


@register_engine
class FragileEngine(Engine):
    """Echoes the prompt; "boom" crashes it, "busy" is an overloaded_error. Its batch method, like a batched
    decoder, fails the whole chunk when one request crashes, and drops an answer when a chunk holds "short"."""

    name: ClassVar[str] = "test-fragile"
    model_ids: ClassVar[tuple[str, ...]] = ("test-fragile",)
    max_concurrency: ClassVar[int] = 64

    def complete(self, params: Mapping[str, Any]) -> Completion:
        text = last_user_text(params["messages"])
        if "boom" in text:
            raise RuntimeError("the engine crashed")
        if "busy" in text:
            raise EngineError("Overloaded", error_type="overloaded_error")
        return Completion([{"type": "text", "text": text}], "end_turn", 1, 1)

    def complete_many(self, batch: Sequence[Mapping[str, Any]]) -> list[Completion | EngineError]:
        time.sleep(0.02)  # a decoding step: keeps requests of several batches in one chunk
        answers = super().complete_many(batch)  # raises for the whole chunk on "boom"
        texts = [last_user_text(p["messages"]) for p in batch]
        return answers[:-1] if len(batch) > 1 and any("short" in t for t in texts) else answers


def _counts(batch: dict) -> dict[str, int]:
    return {k: v for k, v in batch["request_counts"].items() if v}


def test_every_bad_input_errors_alone_beside_a_second_batch_in_flight(service_factory):
    service = service_factory(engine_options={"latency": 0.05}, workers=64)
    with httpx.Client(base_url=service.base_url, headers=HEADERS, timeout=30) as http:
        first = create(http, [request(f"a{i}", f"first {i}") for i in range(100)])
        mixed = []
        for i, (name, (override, _)) in enumerate(BAD_INPUTS.items()):
            mixed += [request(f"ok{i}", f"mixed {i}"), request(name, **override)]
        second = create(http, mixed)
        assert http.get(f"/v1/messages/batches/{first['id']}").json()["processing_status"] == "in_progress"
        a, b = (wait_ended_http(http, x["id"]) for x in (first, second))
        assert _counts(a) == {"succeeded": 100}
        assert _counts(b) == {"succeeded": len(BAD_INPUTS), "errored": len(BAD_INPUTS)}
        first_lines = {x["custom_id"]: x["result"] for x in result_lines(http, a["id"])}
        lines = {x["custom_id"]: x["result"] for x in result_lines(http, b["id"])}
    assert all(first_lines[f"a{i}"]["message"]["content"][0]["text"] == f"first {i}" for i in range(100))
    for i in range(len(BAD_INPUTS)):
        assert lines[f"ok{i}"]["message"]["content"][0]["text"] == f"mixed {i}"
    for name, (_, message) in BAD_INPUTS.items():
        assert lines[name]["type"] == "errored", name
        error = lines[name]["error"]
        assert error["type"] == "error" and error["request_id"] is None  # refused before running
        assert error["error"]["type"] == "invalid_request_error", (name, error)
        assert error["error"]["message"].startswith(message), (name, error)


def test_an_engine_crash_fails_only_its_own_request(service_factory):
    service = service_factory(engine="test-fragile", workers=64)
    with httpx.Client(base_url=service.base_url, headers=HEADERS, timeout=30) as http:
        first = create(http, [request(f"a{i}", f"calm {i}") for i in range(40)])
        second = create(http, [request("b0", "boom here"), request("b1", "fine"), request("b2", "busy now"),
                               request("b3", "also fine"), request("b4", "boom again")])
        third = create(http, [request(f"c{i}", "short chunk" if i == 0 else f"c {i}") for i in range(5)])
        ended = [wait_ended_http(http, x["id"]) for x in (first, second, third)]
        assert _counts(ended[0]) == {"succeeded": 40}
        assert _counts(ended[1]) == {"succeeded": 2, "errored": 3}
        assert _counts(ended[2]) == {"succeeded": 5}  # a chunk answered short is answered one by one
        lines = {x["custom_id"]: x["result"] for x in result_lines(http, ended[1]["id"])}
    for cid in ("b0", "b4"):
        assert lines[cid]["error"]["error"] == {"type": "api_error", "message": "Internal server error"}
        assert lines[cid]["error"]["request_id"].startswith("req_")
    assert lines["b2"]["error"]["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    assert lines["b1"]["message"]["content"][0]["text"] == "fine"


def test_an_engine_crash_on_messages_is_a_500_and_the_connection_stays(service_factory):
    service = service_factory(engine="test-fragile")
    body = {"model": "test-fragile", "max_tokens": 5, "messages": [{"role": "user", "content": "boom"}]}
    with httpx.Client(base_url=service.base_url, headers=HEADERS, timeout=30,
                      limits=httpx.Limits(max_connections=1)) as http:
        crashed = http.post("/v1/messages", json=body)
        assert crashed.status_code == 500
        assert crashed.json()["error"] == {"type": "api_error", "message": "Internal server error"}
        busy = http.post("/v1/messages", json={**body, "messages": [{"role": "user", "content": "busy"}]})
        assert busy.status_code == 529 and busy.json()["error"]["type"] == "overloaded_error"
        fine = http.post("/v1/messages", json={**body, "messages": [{"role": "user", "content": "fine"}]})
        assert fine.status_code == 200 and fine.json()["content"][0]["text"] == "fine"
        ports = {r.extensions["network_stream"].get_extra_info("client_addr")[1] for r in (crashed, busy, fine)}
    assert len(ports) == 1  # one connection served all three: the crash did not drop it
