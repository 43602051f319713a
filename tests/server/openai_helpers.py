"""Helpers of the OpenAI-API server tests: SDK client, input files, polling, spec validation."""

from __future__ import annotations

import json
import time
from functools import cache
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from jsonschema import Draft202012Validator

SPEC = Path(__file__).resolve().parents[2] / ".." / "shared" / "specs" / "openai-batch-files-openapi.yml"
CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
TERMINAL = ("completed", "failed", "expired", "cancelled")
#: OpenAI's error envelope (reference §1; the spec subset has no schema for it): all four fields, always.
ERROR_ENVELOPE = {
    "type": "object", "required": ["error"], "additionalProperties": False,
    "properties": {"error": {
        "type": "object", "required": ["message", "type", "param", "code"], "additionalProperties": False,
        "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                       "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}}},
}


def make_client(base_url: str, **kwargs: Any) -> openai.OpenAI:
    kwargs.setdefault("api_key", "test-key")
    kwargs.setdefault("max_retries", 0)
    return openai.OpenAI(base_url=f"{base_url}/v1", **kwargs)


def chat_line(custom_id: str, text: str = "hello world", **body: Any) -> dict:
    payload = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **body}
    return {"custom_id": custom_id, "method": "POST", "url": CHAT, "body": payload}


def embedding_line(custom_id: str, text: Any = "hello world", **body: Any) -> dict:
    payload = {"model": "text-embedding-3-small", "input": text, **body}
    return {"custom_id": custom_id, "method": "POST", "url": EMBEDDINGS, "body": payload}


def jsonl(lines: list[dict]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def upload(client: openai.OpenAI, lines: list[dict], name: str = "input.jsonl"):
    return client.files.create(file=(name, jsonl(lines)), purpose="batch")


def submit(client: openai.OpenAI, lines: list[dict], endpoint: str = CHAT, **kwargs: Any):
    """Upload ``lines`` and create a batch on them; return the created batch."""
    file = upload(client, lines)
    return client.batches.create(input_file_id=file.id, endpoint=endpoint, completion_window="24h", **kwargs)


def wait_done(client: openai.OpenAI, batch_id: str, timeout: float = 30.0):
    """Poll with the SDK until the batch is in a terminal status (bounded); return it."""
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in TERMINAL:
            return batch
        assert time.monotonic() < deadline, f"batch {batch_id} still {batch.status}"
        time.sleep(0.02)


def wait_until(client: openai.OpenAI, batch_id: str, predicate: Any, timeout: float = 20.0):
    """Poll until ``predicate(batch)`` holds (bounded); return that batch."""
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if predicate(batch):
            return batch
        assert time.monotonic() < deadline, batch
        time.sleep(0.01)


def read_lines(client: openai.OpenAI, file_id: str) -> list[dict]:
    """A result file's lines, parsed (split on ``\\n`` only)."""
    return [json.loads(line) for line in client.files.content(file_id).content.split(b"\n") if line]


@cache
def _components() -> dict:
    if not SPEC.exists():
        pytest.skip(f"OpenAPI spec not found at {SPEC}")
    return _nullable(yaml.safe_load(SPEC.read_text()))["components"]


def _nullable(node: Any) -> Any:
    """The spec with OpenAPI 3.0's ``nullable: true`` written as JSON Schema (``anyOf`` with null).

    The spec says OpenAPI 3.1 but its BatchRequestOutput (copied from the older spec) still marks null
    fields the 3.0 way, which JSON Schema ignores; everything else is left exactly as written.
    """
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _nullable(value) for key, value in node.items()}
    if node.pop("nullable", False):
        return {"anyOf": [node, {"type": "null"}]}
    return node


def validate(instance: Any, name: str) -> None:
    """Validate against ``#/components/schemas/<name>`` of the OpenAI spec, resolving every $ref in it."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": _components()}
    Draft202012Validator(schema).validate(instance)


def validate_error(body: Any) -> dict:
    """Validate OpenAI's error envelope; return its ``error`` object."""
    Draft202012Validator(ERROR_ENVELOPE).validate(body)
    return body["error"]
