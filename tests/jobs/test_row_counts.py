"""After a retry in which every failed row succeeds, every view of the job counts each row once."""

from __future__ import annotations

import json

from jobs_helpers import KEY, frame, service_batches, submit

import batchframe
from batchframe.cli.main import main
from batchframe.progress.render import summarize, to_text
from batchframe.server import Faults

ALL_SUCCEEDED = {"processing": 0, "succeeded": 20, "errored": 0, "canceled": 0, "expired": 0}


def test_status_cli_jobs_and_text_agree_after_a_retry(service_factory, monkeypatch, capsys):
    service = service_factory(faults=Faults(request_error_rate=0.5, request_error_type="api_error", seed=5))
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", service.base_url)
    job = submit(frame(20), service, name="half")
    first = job.wait(poll_interval=0.05, timeout=60)
    errored = first.counts["errored"]
    assert 0 < errored < 20 and first.counts["succeeded"] == 20 - errored
    service.set_faults(Faults())
    assert job.retry() == errored
    status = job.wait(poll_interval=0.05, timeout=60)

    # the shards still say what each batch did; the job counts rows
    assert sum(s.counts["errored"] for s in status.shards) == errored
    assert status.counts == ALL_SUCCEEDED and job.status.counts == ALL_SUCCEEDED
    assert batchframe.open_job("half").status.counts == ALL_SUCCEEDED
    assert len(service_batches(service)) == 2

    table = batchframe.jobs().set_index("name")
    assert (table.loc["half", "succeeded"], table.loc["half", "errored"], table.loc["half", "pending"]) == (20, 0, 0)

    text = to_text(job.status)
    assert "20/20" in text and "succeeded 20 · errored 0" in text
    assert summarize(job.status).total.outcome == "success"  # the bar ends green

    capsys.readouterr()
    assert main(["status", "half"]) == 0
    out = capsys.readouterr().out
    assert "20/20" in out and "succeeded 20 · errored 0" in out
    assert main(["jobs"]) == 0
    line = next(row for row in capsys.readouterr().out.splitlines() if row.split()[0] == "half")
    assert line.split()[-6:] == ["20", "20", "0", "0", "0", "0"]  # rows, succeeded, errored, pending, skipped, reused


def test_a_job_retried_before_row_counts_were_recorded_still_counts_each_row_once(service_factory, monkeypatch):
    service = service_factory(faults=Faults(request_error_rate=0.5, request_error_type="api_error", seed=5))
    job = submit(frame(20), service, name="legacy")
    job.wait(poll_interval=0.05, timeout=60)
    service.set_faults(Faults())
    job.retry()
    job.wait(poll_interval=0.05, timeout=60)
    # the manifest as an older batchframe wrote it: format 1, Anthropic's key, no `replaces` on the retry
    path = batchframe.Store().job_dir("legacy") / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["format"] = 1
    for attempt in manifest["attempts"]:
        attempt.pop("replaces", None)
        for shard in attempt["shards"]:
            shard["processing_status"] = shard.pop("remote_state")
    path.write_text(json.dumps(manifest))

    job = batchframe.open_job("legacy")
    assert job.manifest["format"] == 3 and job.manifest["attempts"][1]["replaces"]
    assert job.status.counts == ALL_SUCCEEDED
    assert batchframe.jobs().set_index("name").loc["legacy", "succeeded"] == 20
