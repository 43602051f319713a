"""resume-and-retry.ipynb: the kernel dies mid-job; a new kernel re-attaches, cancels, retries the failures."""

from __future__ import annotations

import ast
import json
import re

import httpx
import pytest

from .nbrun import client_for, outputs_text, scratch_copy, stderr_of, tagged
from .services import stop_recorded_service

pytestmark = [pytest.mark.notebook, pytest.mark.slow]

N_REVIEWS = 40


@pytest.fixture
def demo_service_dir(tmp_path, monkeypatch):
    data_dir = tmp_path / "service"
    monkeypatch.setenv("BATCHFRAME_DATA_DIR", str(data_dir))
    yield data_dir / "resume-demo"
    stop_recorded_service(data_dir / "resume-demo")  # the notebook started it, detached from its kernel


def _run(client, nb, indexes):
    with client.setup_kernel():  # a kernel of its own: leaving the block shuts it down (the "restart")
        for i in indexes:
            client.execute_cell(nb.cells[i], i)


def test_resume_and_retry_across_a_kernel_restart(tmp_path, demo_service_dir, monkeypatch):
    monkeypatch.delenv("BATCHFRAME_NO_PROGRESS")
    root = scratch_copy(tmp_path / "root")
    nb, client = client_for(root / "notebooks" / "resume-and-retry.ipynb", timeout=120)
    split = nb.cells.index(tagged(nb, "submit")) + 1
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    _run(client, nb, [i for i in code if i < split])
    assert "· in_progress" in outputs_text(tagged(nb, "submit"))  # the first kernel dies mid-job
    _run(client, nb, [i for i in code if i >= split])
    assert stderr_of(nb) == []
    assert "batch job 'resume-demo'" in outputs_text(tagged(nb, "reattach"))
    canceled = _counts(outputs_text(tagged(nb, "canceled")))
    assert canceled["processing"] == 0 and canceled["canceled"] > 0
    assert canceled["succeeded"] + canceled["canceled"] == N_REVIEWS
    retried = outputs_text(tagged(nb, "retried"))
    assert f"resubmitted {canceled['canceled']} rows" in retried
    assert re.search(rf"succeeded\s+{N_REVIEWS}\b", retried) and "canceled" not in retried.split("resubmitted")[1]
    final = outputs_text(tagged(nb, "final"))
    assert re.search(rf"total +\[#+\] {N_REVIEWS}/{N_REVIEWS}  succeeded {N_REVIEWS} ", final)
    assert "shard 0 (attempt 2)" in final
    summary = tagged(nb, "summary")["outputs"][0]["data"]["text/plain"].splitlines()
    attempts = {int(line.split()[2]): int(line.split()[3]) for line in summary[1:]}
    assert attempts == {1: canceled["succeeded"], 2: canceled["canceled"]}
    assert "<table" in tagged(nb, "jobs")["outputs"][0]["data"]["text/html"]
    remote = tagged(nb, "remote")["outputs"][0]["data"]
    assert "<table" in remote["text/html"] and remote["text/plain"].count("resume-demo") == 2
    # The service saw exactly two batches: the first submission and the retry (nothing sent twice).
    base_url = json.loads((demo_service_dir / "service.json").read_text())["base_url"]
    batches = httpx.get(f"{base_url}/v1/messages/batches", params={"limit": 100},
                        headers={"x-api-key": "local", "anthropic-version": "2023-06-01"}, timeout=10).json()
    assert len(batches["data"]) == 2
    counts = [b["request_counts"] for b in batches["data"]]
    assert sum(c["succeeded"] for c in counts) == N_REVIEWS


def _counts(text: str) -> dict[str, int]:
    return ast.literal_eval(text.strip().splitlines()[-1])
