"""provider="local": the service is started on demand (a detached process) and reused."""

import json
import os
import signal
import time

import pandas as pd
import pytest

import batchframe
from batchframe.server.ids import service_id


@pytest.mark.slow
def test_local_provider_starts_the_service_and_a_reopened_job_finds_it(monkeypatch, tmp_path):
    monkeypatch.setenv("BATCHFRAME_SERVICE_IDLE_SECONDS", "30")
    data_dir = tmp_path / "service"
    df = pd.DataFrame({"q": ["hello", "world"]})
    pid = None
    try:
        job = df.batch.submit(prompt="q", model="claude-haiku-4-5", max_tokens=10, provider="local")
        pid = json.loads((data_dir / "service.json").read_text())["pid"]
        job.wait(poll_interval=0.05, timeout=60)
        assert job.manifest["identity"] == f"local:{service_id(data_dir)}"  # the folder names it, not the port
        assert job.manifest["service"]["engine"] == "echo" and job.manifest["data_dir"] == str(data_dir)
        again = batchframe.Job.open(job.name)  # resolves the service again from the data dir
        assert again.refresh().ended and again.results()["llm_text"].tolist() == ["hello", "world"]
        rerun = df.batch.submit(prompt="q", model="claude-haiku-4-5", max_tokens=10, provider="local")
        assert rerun.name == job.name
    finally:
        if pid:
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)


def test_a_job_sent_to_a_running_service_by_url_reopens_on_that_service(service, tmp_path):
    df = pd.DataFrame({"q": ["left", "right"]})
    job = df.batch.submit(prompt="q", model="claude-haiku-4-5", max_tokens=10, provider="local",
                          base_url=service.base_url)
    job.wait(poll_interval=0.05, timeout=60)
    assert job.manifest["identity"] == f"local:{service_id(service.data_dir)}"
    again = batchframe.Job.open(job.name)  # no base_url: found again through the service's data folder
    assert again.refresh().ended and again.results()["llm_text"].tolist() == ["left", "right"]
    assert again.batch_ids() == job.batch_ids()
    env_dir = tmp_path / "service"  # $BATCHFRAME_DATA_DIR of this test: no second service started there
    assert not (env_dir / "service.json").exists()
