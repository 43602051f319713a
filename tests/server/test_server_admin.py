"""The admin door is shut by default, /health names nothing, /v1/service says who the service is (no secret),
and ensure_running never reuses a service with another engine or other options."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from server_helpers import HEADERS, MODEL, AppInThread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from batchframe.server import Faults, ensure_running, serve_in_thread, service_id, spawn
from batchframe.server.errors import ServiceError
from batchframe.server.runner import API_KEY_ENV, healthy, recorded

SECRET = "sk-secret"
FAULTS_ON = {"http_error_rate": 1.0, "http_error_statuses": [500]}


def _admin_calls(http: httpx.Client, **headers: str) -> list[httpx.Response]:
    return [http.put("/admin/faults", json=FAULTS_ON, headers=headers),
            http.post("/admin/faults", json=FAULTS_ON, headers=headers),
            http.get("/admin/faults", headers=headers),
            http.delete("/admin/faults", headers=headers),
            http.put("/admin/faults/", json=FAULTS_ON, headers=headers),
            http.get("/admin", headers=headers)]


def test_a_default_service_has_no_admin_routes_and_health_names_nothing(service):
    with httpx.Client(base_url=service.base_url, headers=HEADERS) as http:
        for answer in [*_admin_calls(http), *_admin_calls(http, **{"x-api-key": "anything"})]:
            assert answer.status_code == 404, (answer.request.method, answer.request.url)
            assert answer.json()["error"]["type"] == "not_found_error"
        assert http.get("/v1/messages/batches").status_code == 200  # no fault was switched on
        health = http.get("/health", headers={"x-api-key": ""})
    assert health.status_code == 200
    assert set(health.json()) == {"status", "version"} and health.json()["status"] == "ok"
    assert str(service.data_dir) not in health.text and service.data_dir.name not in health.text
    assert "echo" not in health.text


def test_in_process_set_faults_needs_no_admin_and_never_hits_v1_service(service):
    with httpx.Client(base_url=service.base_url, headers=HEADERS) as http:
        service.set_faults(Faults(http_error_rate=1.0, http_error_statuses=(529,), slow_seconds=0.0))
        assert http.get("/v1/messages/batches").status_code == 529
        assert http.get("/v1/service").status_code == 200  # identity is not part of the faulty API
        service.set_faults(Faults())
        assert http.get("/v1/messages/batches").status_code == 200


@pytest.mark.parametrize("opened_by", [{"enable_admin": True}, {"faults": Faults(seed=1)}])
def test_enable_admin_or_faults_open_the_faults_route(service_factory, opened_by):
    service = service_factory(**opened_by)
    with httpx.Client(base_url=service.base_url, headers=HEADERS) as http:
        switched = http.put("/admin/faults", json=FAULTS_ON)
        assert switched.status_code == 200 and switched.json()["http_error_rate"] == 1.0
        assert http.get("/v1/messages/batches").status_code == 500
        assert http.put("/admin/faults", json={}).status_code == 200
        assert http.get("/v1/messages/batches").status_code == 200
        assert 400 <= http.get("/admin/faults").status_code < 500  # only PUT is routed
        assert http.put("/admin/faults", json={"nope": 1}).status_code == 400


def test_with_a_required_key_admin_and_v1_service_need_it(service_factory):
    service = service_factory(api_key="sekret", enable_admin=True)
    with httpx.Client(base_url=service.base_url) as http:
        for headers in ({}, {"x-api-key": "wrong"}, {"authorization": "Bearer wrong"}):
            answer = http.put("/admin/faults", json=FAULTS_ON, headers=headers)
            assert answer.status_code == 401 and answer.json()["error"]["type"] == "authentication_error"
            assert http.get("/v1/service", headers=headers).status_code == 401
        assert http.get("/v1/messages/batches", headers={**HEADERS, "x-api-key": "sekret"}).status_code == 200
        assert http.put("/admin/faults", json=FAULTS_ON, headers={"x-api-key": "sekret"}).status_code == 200
        assert http.get("/v1/messages/batches", headers={**HEADERS, "x-api-key": "sekret"}).status_code == 500
        assert http.put("/admin/faults", json={}, headers={"authorization": "Bearer sekret"}).status_code == 200
        described = http.get("/v1/service", headers={"x-api-key": "sekret"})  # no anthropic-version needed
    assert described.status_code == 200 and described.json()["id"] == service_id(service.data_dir)


@pytest.fixture
def upstream():
    """A minimal OpenAI-compatible server on 127.0.0.1 that records the authorization headers it gets."""
    seen: list[str | None] = []

    async def chat(request: Request) -> JSONResponse:
        seen.append(request.headers.get("authorization"))
        body = await request.json()
        return JSONResponse({"id": "c1", "object": "chat.completion", "model": body["model"],
                             "choices": [{"index": 0, "finish_reason": "stop",
                                          "message": {"role": "assistant", "content": "hi"}}],
                             "usage": {"prompt_tokens": 1, "completion_tokens": 1}})

    with AppInThread(Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])) as app:
        app.seen = seen
        yield app


def test_v1_service_describes_a_spawned_service_without_its_secret(tmp_path, upstream):
    data_dir = tmp_path / "svc"
    options = {"base_url": f"{upstream.base_url}/v1", "model": "tiny-chat", "api_key": SECRET}
    with spawn(data_dir=data_dir, engine="openai-compatible", engine_options=options) as service:
        with httpx.Client(base_url=service.base_url, headers=HEADERS) as http:
            answer = http.get("/v1/service")
            health = http.get("/health")
            message = http.post("/v1/messages", json={"model": MODEL, "max_tokens": 5,
                                                      "messages": [{"role": "user", "content": "x"}]})
            assert [r.status_code for r in _admin_calls(http)] == [404] * 6
        with pytest.raises(ServiceError, match="enable_admin=True"):
            service.set_faults(Faults())
        assert healthy(service.base_url, data_dir)["id"] == service_id(data_dir)
        assert healthy(service.base_url, tmp_path / "other") is None
        cmdline = Path(f"/proc/{service.pid}/cmdline").read_bytes()
        described = answer.json()
        info = recorded(data_dir)
    assert answer.status_code == 200
    assert described == {"type": "service", "id": service_id(data_dir), "version": health.json()["version"],
                         "engine": "openai-compatible", "model": "tiny-chat",
                         "engine_options": {"base_url": f"{upstream.base_url}/v1", "model": "tiny-chat"},
                         "secret_options": ["api_key"]}
    assert SECRET not in answer.text and SECRET not in health.text
    assert info["id"] == service_id(data_dir) and info["engine_options"] == described["engine_options"]
    assert info["secret_options"] == ["api_key"]
    # The key reached the engine (through the environment), and only the upstream saw it.
    assert message.status_code == 200 and message.json()["model"] == "tiny-chat"
    assert upstream.seen == [f"Bearer {SECRET}"]
    assert SECRET.encode() not in cmdline and b"--engine-option" in cmdline
    for path in data_dir.iterdir():  # service.json (removed at stop), serve.log, the database
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_service_json_records_the_id_and_options_without_secrets(tmp_path, upstream):
    data_dir = tmp_path / "svc"
    options = {"base_url": f"{upstream.base_url}/v1", "api_key": SECRET, "timeout": 30}
    with serve_in_thread(data_dir=data_dir, engine="openai-compatible", engine_options=options) as service:
        raw = (data_dir / "service.json").read_text()
        with httpx.Client(base_url=service.base_url, headers=HEADERS) as http:
            described = http.get("/v1/service")
    info = json.loads(raw)
    assert SECRET not in raw and SECRET not in described.text
    assert info["id"] == service_id(data_dir) and info["engine"] == "openai-compatible"
    assert info["model"] == described.json()["model"] == "openai-compatible"  # no model option: the engine's name
    assert info["engine_options"] == described.json()["engine_options"] == {
        "base_url": f"{upstream.base_url}/v1", "timeout": 30}
    assert info["secret_options"] == ["api_key"]


def test_ensure_running_refuses_a_service_with_other_engine_options(tmp_path):
    data_dir = tmp_path / "svc"
    with serve_in_thread(data_dir=data_dir, engine="echo", engine_options={"latency": 0.01}) as service:
        assert ensure_running(data_dir=data_dir, engine="echo", engine_options={"latency": 0.01}) == service.base_url
        assert ensure_running(data_dir=data_dir) == service.base_url  # no engine asked: any will do
        with pytest.raises(ServiceError) as other_options:
            ensure_running(data_dir=data_dir, engine="echo", engine_options={"latency": 0.02})
        assert ensure_running(data_dir=data_dir, engine="echo") == service.base_url  # no options asked: any
        with pytest.raises(ServiceError) as no_options:
            ensure_running(data_dir=data_dir, engine="echo", engine_options={})  # exactly none asked
        with pytest.raises(ServiceError) as other_engine:
            ensure_running(data_dir=data_dir, engine="openai-compatible",
                           engine_options={"base_url": "http://127.0.0.1:9/v1", "model": "m", "api_key": SECRET})
        assert recorded(data_dir)["base_url"] == service.base_url  # nothing replaced it
    resolved = data_dir.resolve()
    assert f"batchframe serve --data-dir {resolved} --engine echo --engine-option latency=0.02" in str(
        other_options.value)
    assert str(no_options.value).endswith(f"batchframe serve --data-dir {resolved} --engine echo")
    message = str(other_engine.value)
    assert (f"batchframe serve --data-dir {resolved} --engine openai-compatible --engine-option "
            "base_url=http://127.0.0.1:9/v1 --engine-option model=m --engine-option api_key=...") in message
    assert SECRET not in message


def test_ensure_running_checks_a_keyed_service_by_its_service_json(tmp_path, monkeypatch):
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    data_dir = tmp_path / "svc"
    with serve_in_thread(data_dir=data_dir, engine_options={"latency": 0.01}, api_key="sekret") as service:
        status = healthy(service.base_url, data_dir)  # 401 on /v1/service: service.json and a live pid decide
        assert status["id"] == service_id(data_dir) and status["engine_options"] == {"latency": 0.01}
        assert healthy(service.base_url, tmp_path / "other") is None
        assert healthy(service.base_url, data_dir, api_key="sekret")["engine"] == "echo"
        assert ensure_running(data_dir=data_dir, engine="echo", engine_options={"latency": 0.01}) == service.base_url
        with pytest.raises(ServiceError, match="batchframe serve --data-dir"):
            ensure_running(data_dir=data_dir, engine="echo", engine_options={"latency": 0.5})


def test_a_service_that_cannot_start_says_how_to_start_it(tmp_path):
    data_dir = tmp_path / "svc"
    with pytest.raises(ServiceError) as failed:  # the detached child exits at once: base_url is missing
        ensure_running(data_dir=data_dir, engine="openai-compatible", engine_options={"model": "m"}, timeout=60)
    message = str(failed.value)
    assert "exited during start-up" in message
    assert f"batchframe serve --data-dir {data_dir.resolve()} --engine openai-compatible --engine-option model=m" in (
        message)
