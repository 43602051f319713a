"""`batchframe serve` as a process: SIGKILL mid-batch, restart on the same data dir, nothing is lost."""

from __future__ import annotations

import os
import signal
import time

import httpx
from server_helpers import HEADERS, create, request, wait_ended_http

from batchframe.server import Faults, ensure_running, spawn
from batchframe.server.runner import recorded


def test_sigkill_mid_batch_then_restart_accounts_for_every_request(tmp_path):
    data_dir = tmp_path / "svc"
    ids = [f"r{i:02d}" for i in range(60)]
    first = spawn(data_dir=data_dir, engine_options={"latency": 0.2}, workers=4)  # 3 s for the batch
    try:
        with httpx.Client(base_url=first.base_url, headers=HEADERS) as http:
            batch_id = create(http, [request(i, i) for i in ids])["id"]
            deadline = time.monotonic() + 20
            while True:  # wait until it is really mid-batch
                counts = http.get(f"/v1/messages/batches/{batch_id}").json()["request_counts"]
                if counts["succeeded"] >= 8:
                    break
                assert time.monotonic() < deadline
                time.sleep(0.02)
        os.kill(first.pid, signal.SIGKILL)
    finally:
        first.stop()
    assert counts["processing"] > 0

    second = spawn(data_dir=data_dir, engine_options={"latency": 0.01})
    try:
        assert second.pid != first.pid
        with httpx.Client(base_url=second.base_url, headers=HEADERS) as http:
            ended = wait_ended_http(http, batch_id)
            lines = [httpx.Response(200, content=line).json()
                     for line in http.get(f"/v1/messages/batches/{batch_id}/results").content.splitlines()]
    finally:
        second.stop()
    assert ended["request_counts"] == {"processing": 0, "succeeded": 60, "errored": 0, "canceled": 0,
                                       "expired": 0}
    assert sorted(line["custom_id"] for line in lines) == ids
    assert all(line["result"]["message"]["content"][0]["text"] == line["custom_id"] for line in lines)
    assert recorded(data_dir) is None  # a clean stop removes service.json


def test_ensure_running_reuses_a_detached_service(tmp_path):
    data_dir = tmp_path / "svc"
    url = ensure_running(data_dir=data_dir, engine="echo")
    pid = recorded(data_dir)["pid"]
    try:
        assert ensure_running(data_dir=data_dir) == url
        with httpx.Client(base_url=url, headers=HEADERS) as http:
            assert http.get("/v1/messages/batches").status_code == 200
    finally:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while recorded(data_dir) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert recorded(data_dir) is None


def test_spawned_service_requires_its_key_and_never_writes_it(tmp_path):
    data_dir = tmp_path / "svc"
    with spawn(data_dir=data_dir, api_key="sk-local-secret", enable_admin=True) as service:
        with httpx.Client(base_url=service.base_url, headers=HEADERS) as http:
            assert http.get("/v1/messages/batches").status_code == 401
            ok = http.get("/v1/messages/batches", headers={"x-api-key": "sk-local-secret"})
            assert ok.status_code == 200
            service.set_faults(Faults(http_error_rate=1.0, http_error_statuses=(500,)))
            assert http.get("/v1/messages/batches", headers={"x-api-key": "sk-local-secret"}).status_code == 500
            assert http.put("/admin/faults", json={}).status_code == 401  # faults need the key too
            service.set_faults(Faults())
            assert http.get("/v1/messages/batches", headers={"x-api-key": "sk-local-secret"}).status_code == 200
        with open(f"/proc/{service.pid}/cmdline", "rb") as cmdline:
            assert b"sk-local-secret" not in cmdline.read()
    for path in data_dir.iterdir():
        if path.is_file():
            assert b"sk-local-secret" not in path.read_bytes(), path


def test_idle_service_exits_by_itself_once_nothing_is_unfinished(tmp_path):
    data_dir = tmp_path / "svc"
    service = spawn(data_dir=data_dir, idle_exit_seconds=0.4, engine_options={"latency": 0.3})
    try:
        with httpx.Client(base_url=service.base_url, headers=HEADERS) as http:
            http.post("/v1/messages/batches", json={"requests": [request("a"), request("b")]})
        proc = service._proc
        deadline = time.monotonic() + 15
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.returncode == 0
    finally:
        service.stop()
    assert recorded(data_dir) is None
    with spawn(data_dir=data_dir) as again, httpx.Client(base_url=again.base_url, headers=HEADERS) as http:
        [batch] = http.get("/v1/messages/batches").json()["data"]
        assert batch["request_counts"]["succeeded"] == 2  # it finished the batch before leaving
