"""Helpers of the server tests (imported by name: pytest puts tests/server on sys.path)."""

from __future__ import annotations

import time

import anthropic
import httpx
import orjson

MODEL = "claude-haiku-4-5"
HEADERS = {"x-api-key": "test-key", "anthropic-version": "2023-06-01"}


def request(custom_id: str, text: str = "hello world", **params) -> dict:
    """One batch request item; ``params`` override the Messages body."""
    body = {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": text}], **params}
    return {"custom_id": custom_id, "params": body}


def wait_ended(client: anthropic.Anthropic, batch_id: str, timeout: float = 20.0):
    """Poll with the SDK until the batch has ended (bounded); return it."""
    deadline = time.monotonic() + timeout
    while True:
        batch = client.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended":
            return batch
        assert time.monotonic() < deadline, f"batch {batch_id} still {batch.processing_status}"
        time.sleep(0.02)


def wait_ended_http(client: httpx.Client, batch_id: str, timeout: float = 20.0) -> dict:
    """Poll with plain httpx until the batch has ended (bounded); return its JSON."""
    deadline = time.monotonic() + timeout
    while True:
        batch = client.get(f"/v1/messages/batches/{batch_id}").json()
        if batch["processing_status"] == "ended":
            return batch
        assert time.monotonic() < deadline, f"batch {batch_id} still {batch['processing_status']}"
        time.sleep(0.02)


def make_sdk(base_url: str, **kwargs) -> anthropic.Anthropic:
    kwargs.setdefault("api_key", "test-key")
    kwargs.setdefault("max_retries", 0)
    return anthropic.Anthropic(base_url=base_url, **kwargs)


class AppInThread:
    """Any ASGI app served by uvicorn on a free 127.0.0.1 port in a daemon thread (a context manager)."""

    def __init__(self, app):
        import socket
        import threading

        import uvicorn

        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY: see runner
        self._sock.bind(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        daemon=True)

    def __enter__(self):
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline and self._thread.is_alive(), "app did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc):
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()


def create(http: httpx.Client, items: list[dict]) -> dict:
    """POST a batch of ``items`` with plain httpx; return the created batch (asserting 200)."""
    response = http.post("/v1/messages/batches", json={"requests": items})
    assert response.status_code == 200, response.text
    return response.json()


def result_lines(http: httpx.Client, batch_id: str) -> list[dict]:
    """The batch's results as parsed JSONL lines, in the order served."""
    response = http.get(f"/v1/messages/batches/{batch_id}/results")
    assert response.status_code == 200, response.text
    return [orjson.loads(line) for line in response.content.split(b"\n") if line]
