"""The key goes only to a host the user chose; a job never switches the engine that accepted it."""

from __future__ import annotations

import contextlib
import json
import logging
import pickle
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest
from jobs_helpers import KEY, frame, service_batches, submit

import batchframe
from batchframe.providers import open_endpoint


class _Capture(BaseHTTPRequestHandler):
    """Records every request's path and headers; answers 200 with an empty JSON object."""

    seen: list[dict] = []

    def _any(self):
        _Capture.seen.append({"path": self.path, "headers": dict(self.headers)})
        body = b"{}"
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _any

    def log_message(self, *args):
        pass


@pytest.fixture
def capture_server():
    _Capture.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_a_tampered_job_store_sends_the_key_nowhere_but_the_chosen_host(service, capture_server, monkeypatch,
                                                                          caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", service.base_url)
    job = frame(3).batch.submit(prompt="q", model="claude-haiku-4-5", max_tokens=16, name="shared")
    job.wait(poll_interval=0.05, timeout=60)
    path = batchframe.Store().job_dir("shared") / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["base_url"] = capture_server  # a job folder copied from someone else, naming another host
    path.write_text(json.dumps(manifest))

    with pytest.raises(batchframe.ConfigError) as info:
        batchframe.open_job("shared")
    message = str(info.value)
    assert capture_server in message and service.base_url in message
    assert f"batchframe.open_job('shared', base_url='{capture_server}')" in message
    assert job.refresh().ended  # the Job this process opened keeps the host it was given
    assert _Capture.seen == []  # nothing reached the other host, least of all the key
    assert KEY not in message and KEY not in caplog.text


def test_plain_http_to_another_machine_is_refused_before_anything_is_sent():
    with pytest.raises(batchframe.ConfigError, match="plain http"):
        open_endpoint("anthropic", api_key=KEY, base_url="http://api.example.com")
    with pytest.raises(batchframe.ConfigError, match="https://"):
        open_endpoint("anthropic", api_key=KEY, base_url="ftp://127.0.0.1")
    assert open_endpoint("anthropic", api_key=KEY, base_url="http://127.0.0.1:9").base_url == "http://127.0.0.1:9"
    assert open_endpoint("anthropic", api_key=KEY, base_url="http://[::1]:9").base_url == "http://[::1]:9"


def test_a_base_url_passed_in_this_process_is_the_users_choice(service, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    job = submit(frame(2), service, name="explicit")  # base_url=service.base_url, explicitly
    job.wait(poll_interval=0.05, timeout=60)
    again = batchframe.open_job("explicit")  # same process: the host was chosen by that call
    assert again.refresh().ended and len(service_batches(service)) == 1


def test_the_key_is_in_no_repr_file_log_or_pickle(service, monkeypatch, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    secret = "sk-ant-audit-secret-0123456789"
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-audit-secret-0123456789")
    job = frame(2).batch.submit(prompt="q", model="claude-haiku-4-5", max_tokens=16, name="audit",
                                base_url=service.base_url)
    job.wait(poll_interval=0.05, timeout=60)
    job.results()
    texts = [repr(job), repr(job.status), str(job.manifest), caplog.text]
    try:
        texts.append(pickle.dumps(job).decode("latin-1"))
    except (TypeError, pickle.PicklingError, AttributeError):
        pass  # a Job holds a connection: it does not pickle, so no pickle can carry the key
    for key in (secret, "sk-openai-audit-secret-0123456789"):
        assert all(key not in text for text in texts)
        for folder in (batchframe.Store().root, service.data_dir):
            for path in folder.rglob("*"):
                if path.is_file():
                    assert key.encode() not in path.read_bytes(), path


def test_a_local_job_pins_the_engine_that_answered_it(tmp_path, monkeypatch):
    from batchframe.server import serve_in_thread
    from batchframe.server.ids import service_id

    df = pd.DataFrame({"q": ["one", "two"]})
    with serve_in_thread(data_dir=tmp_path / "svc", engine="echo") as service:
        job = df.batch.submit(prompt="q", model="claude-haiku-4-5", max_tokens=8, provider="local",
                              base_url=service.base_url, name="pinned")
        job.wait(poll_interval=0.05, timeout=60)
        pinned = job.manifest["service"]
        assert pinned["engine"] == "echo" and pinned["id"] == service_id(service.data_dir)
        assert job.manifest["identity"] == f"local:{service_id(service.data_dir)}"
    # the service is gone and its folder is not one batchframe knows: re-opening says how to start it
    with pytest.raises(batchframe.ServiceError) as info:
        batchframe.open_job("pinned").refresh()
    assert "batchframe serve" in str(info.value) and "--engine echo" in str(info.value)
    # another service (another folder) on the job's old URL is never taken for it
    with serve_in_thread(data_dir=tmp_path / "other", engine="echo") as other:
        with pytest.raises(batchframe.ServiceError, match="nothing was sent"):
            batchframe.open_job("pinned", base_url=other.base_url).refresh()


class _FakeChat(BaseHTTPRequestHandler):
    """A slow OpenAI-compatible chat server: every answer is ``fake: <prompt>`` from model ``fake-model``."""

    delay = 0.2

    def do_POST(self):
        import time

        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        time.sleep(self.delay)
        prompt = body["messages"][-1]["content"]
        answer = {"id": "chatcmpl-1", "object": "chat.completion", "model": "fake-model",
                  "choices": [{"index": 0, "message": {"role": "assistant", "content": f"fake: {prompt}"},
                               "finish_reason": "stop"}],
                  "usage": {"prompt_tokens": 3, "completion_tokens": 2}}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.mark.slow
def test_a_stopped_real_model_service_is_never_replaced_by_another_engine(tmp_path):
    import os
    import signal
    import time

    from jobs_helpers import run_child

    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _FakeChat)
    thread = threading.Thread(target=upstream.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    data_dir = tmp_path / "svc"
    options = {"base_url": f"http://127.0.0.1:{upstream.server_address[1]}/v1", "model": "fake-model",
               "max_concurrency": 1}
    pids = []
    try:
        df = pd.DataFrame({"q": [f"row {i}" for i in range(30)]})
        job = df.batch.submit(prompt="q", model="claude-haiku-4-5", max_tokens=8, provider="local", name="real",
                              provider_options={"data_dir": str(data_dir), "engine": "openai-compatible",
                                                "engine_options": options})
        pids.append(json.loads((data_dir / "service.json").read_text())["pid"])
        for _ in range(200):  # until a few rows are answered, then the service goes away mid-job
            if job.refresh().shards[0].counts["succeeded"] >= 3:
                break
            time.sleep(0.05)
        os.kill(pids[0], signal.SIGTERM)
        for _ in range(200):
            try:
                os.kill(pids[0], 0)
                time.sleep(0.05)
            except ProcessLookupError:
                break
        assert job.manifest["service"]["engine"] == "openai-compatible"
        out = run_child("""
            import json, batchframe
            job = batchframe.open_job("real")
            job.wait(poll_interval=0.1, timeout=120)
            results = job.results()
            print(json.dumps({"models": sorted(set(results["llm_model"].dropna())),
                              "status": sorted(set(results["llm_status"])),
                              "texts": results["llm_text"].tolist()}))
        """, timeout=180)
        pids.append(json.loads((data_dir / "service.json").read_text())["pid"])
        seen = json.loads(out.strip().splitlines()[-1])
        assert seen["models"] == ["fake-model"] and seen["status"] == ["succeeded"]  # no row answered by echo
        assert seen["texts"] == [f"fake: row {i}" for i in range(30)]
    finally:
        for pid in pids[1:]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        upstream.shutdown()
        upstream.server_close()
        thread.join(5)


def test_a_copied_local_job_naming_a_remote_upstream_is_refused_offline(tmp_path):
    from batchframe.server import serve_in_thread

    df = pd.DataFrame({"q": ["one"]})
    with serve_in_thread(data_dir=tmp_path / "svc", engine="echo") as service:
        job = df.batch.submit(prompt="q", model="claude-haiku-4-5", max_tokens=8, provider="local",
                              base_url=service.base_url, name="copied")
        job.wait(poll_interval=0.05, timeout=60)
    path = batchframe.Store().job_dir("copied") / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["service"]["engine"] = "openai-compatible"  # as a colleague's folder could say
    manifest["service"]["engine_options"] = {"base_url": "https://llm.example.net/v1", "model": "m"}
    path.write_text(json.dumps(manifest))
    with pytest.raises(batchframe.ConfigError, match="llm.example.net"):
        batchframe.open_job("copied")  # nothing restarted, nothing forwarded with $OPENAI_API_KEY


def test_another_frame_under_a_name_whose_batch_may_still_appear_keeps_that_job_aside(service):
    from jobs_helpers import submit as submit_to

    with pytest.raises(batchframe.APIError):
        submit_to(pd.DataFrame({"q": ["a"]}), service, name="maybe", temprature=1)
    path = batchframe.Store().job_dir("maybe") / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["attempts"][0]["shards"][0]["error"]["status"] = 529  # refused after a retryable error
    path.write_text(json.dumps(manifest))
    revised = submit_to(pd.DataFrame({"q": ["other"]}), service, name="maybe")  # the name's next revision
    assert revised.name == "maybe" and revised.manifest["previous"] == "maybe~r1"
    kept = batchframe.Store().read_manifest("maybe~r1")  # the one whose batch may still appear stays intact
    assert kept["attempts"][0]["shards"][0]["error"]["status"] == 529 and kept["fingerprint"] == manifest["fingerprint"]
