"""The service's openai-compatible engine against a real peer: llama-cpp-python's own OpenAI-compatible
server (``python -m llama_cpp.server``) serving SmolLM2-135M-Instruct on 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import anthropic
import httpx
import jsonschema
import pytest
from model_helpers import chatml, model_file

pytestmark = pytest.mark.model

ALIAS = "smollm2"
# No free-text field: llama_cpp.server's grammar lets a JSON string hold a raw newline, which no JSON
# parser accepts (the llama engine corrects that grammar; llama_cpp.server is the peer here, not the subject)
CITY = {"name": "record_city", "description": "Record the country of a city and whether it is the capital",
        "input_schema": {"type": "object", "required": ["country", "is_capital"],
                         "properties": {"country": {"enum": ["France", "Germany", "Italy", "Spain"]},
                                        "is_capital": {"type": "boolean"}}}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"llama_cpp.server exited with code {proc.returncode}"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"llama_cpp.server not healthy at {url} after {timeout} s")


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    """``python -m llama_cpp.server`` on a free loopback port; its base URL ends in /v1."""
    port = free_port()
    log = tmp_path_factory.mktemp("llama-cpp-server") / "server.log"
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model_file()), "--model_alias", ALIAS,
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "2",
               "--n_threads_batch", "2", "--verbose", "False"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/v1/models", proc)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)


@pytest.fixture(scope="module")
def client(llama_server, tmp_path_factory):
    from batchframe.server import serve_in_thread

    service = serve_in_thread(data_dir=tmp_path_factory.mktemp("compat-service"), engine="openai-compatible",
                              engine_options={"base_url": llama_server, "model": ALIAS})
    sdk = anthropic.Anthropic(base_url=service.base_url, api_key="test-key", max_retries=0)
    yield sdk
    sdk.close()
    service.stop()


def body(text: str, *, model: str = ALIAS, max_tokens: int = 40, **params) -> dict:
    return {"model": model, "max_tokens": max_tokens, "temperature": 0,
            "messages": [{"role": "user", "content": text}], **params}


def test_a_batch_through_the_openai_compatible_engine(client, tokenizer):
    requests = {
        "france": body("What is the capital of France? Answer in one sentence.", system="Be brief."),
        "claude-id": body("What is 2+2?", model="claude-haiku-4-5"),
        "long": body("Tell me a long story about a dragon and a knight.", max_tokens=5),
        "stop": body("Count from 1 to 10, separated by commas.", stop_sequences=["7"]),
        "tool": body("Paris is the capital of France.", max_tokens=60, tools=[CITY],
                     tool_choice={"type": "tool", "name": "record_city"}),
    }
    batch = client.messages.batches.create(
        requests=[{"custom_id": cid, "params": params} for cid, params in requests.items()])
    deadline = time.monotonic() + 120
    while batch.processing_status != "ended":
        assert time.monotonic() < deadline, batch.request_counts
        time.sleep(0.25)
        batch = client.messages.batches.retrieve(batch.id)
    assert batch.request_counts.succeeded == len(requests), batch.request_counts
    got = {r.custom_id: r.result.message for r in client.messages.batches.results(batch.id)}

    france = got["france"]
    assert france.model == ALIAS and france.stop_reason == "end_turn"
    assert "Paris" in france.content[0].text
    # llama_cpp.server applies the same chat template and counts with the same tokenizer
    prompt = chatml("Be brief.", ("user", requests["france"]["messages"][0]["content"]))
    assert france.usage.input_tokens == tokenizer(prompt)
    assert france.usage.output_tokens == tokenizer(france.content[0].text)

    assert got["claude-id"].model == ALIAS and "4" in got["claude-id"].content[0].text
    assert got["long"].stop_reason == "max_tokens" and got["long"].usage.output_tokens == 5
    # chat completions report a stop sequence as "stop", like a natural end: the text shows the cut
    assert got["stop"].content[0].text.rstrip(", ").endswith("6") and "7" not in got["stop"].content[0].text

    tool = got["tool"]
    (block,) = [b for b in tool.content if b.type == "tool_use"]
    assert tool.stop_reason == "tool_use" and block.name == "record_city"
    jsonschema.validate(block.input, CITY["input_schema"])


def test_a_synchronous_message_through_the_openai_compatible_engine(client):
    message = client.messages.create(model=ALIAS, max_tokens=24, extra_body={"temperature": 0},
                                     messages=[{"role": "user", "content": "Say hello in French."}])
    assert message.content[0].type == "text" and message.content[0].text.strip()
    assert message.usage.output_tokens > 0 and message.stop_reason in ("end_turn", "max_tokens")
