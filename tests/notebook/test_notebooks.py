"""The repository's notebooks, executed with nbclient against a local service on loopback (echo engine)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
from nbclient.exceptions import CellExecutionError

from .nbrun import client_for, execute, outputs_text, scratch_copy, stderr_of, tagged, write_notebook
from .services import spawn_service, stop_recorded_service

pytestmark = [pytest.mark.notebook, pytest.mark.slow]

N_REVIEWS = 40


@pytest.fixture
def service_dir(tmp_path, monkeypatch):
    """The kernel's BATCHFRAME_DATA_DIR, served by a service this test starts and stops."""
    data_dir = tmp_path / "service"
    monkeypatch.setenv("BATCHFRAME_DATA_DIR", str(data_dir))
    monkeypatch.setenv("BATCHFRAME_ENGINE", "echo")
    yield data_dir
    stop_recorded_service(data_dir)  # only if a kernel started one itself (it should have reused ours)


def test_quickstart_runs_clean(tmp_path, service_dir, monkeypatch):
    monkeypatch.delenv("BATCHFRAME_NO_PROGRESS")  # the widget and the tqdm bar, as a user sees them
    root = scratch_copy(tmp_path / "root")
    with spawn_service(service_dir):
        started = time.monotonic()
        nb = execute(root / "notebooks" / "quickstart.ipynb")
        elapsed = time.monotonic() - started
    assert stderr_of(nb) == []
    assert "'succeeded': 40" in outputs_text(tagged(nb, "wait"))
    assert "worst_case_usd" in outputs_text(tagged(nb, "estimate"))  # estimate before submit, nothing sent
    assert f"({N_REVIEWS}, " in outputs_text(tagged(nb, "parquet"))
    assert _has_widget(tagged(nb, "submit"))  # the live job view
    assert _has_widget(tagged(nb, "wait"))  # job.wait()'s tqdm.auto bar is a notebook bar in a kernel
    assert "batch job 'quickstart-reviews' · provider local" in outputs_text(tagged(nb, "submit"))
    assert (root / "notebooks" / "quickstart-results.parquet").exists()
    typed = outputs_text(tagged(nb, "typed"))  # schema=: typed columns, every answer parsed
    assert "'llm_sentiment': 'string[pyarrow]', 'llm_stars': 'int64[pyarrow]'" in typed and "{'ok': 40}" in typed
    assert "mean_stars" in outputs_text(tagged(nb, "typed-chart"))
    print(f"quickstart.ipynb executed in {elapsed:.1f} s")


def test_openai_notebook_runs_keyless_with_both_protocols_side_by_side(tmp_path, service_dir):
    root = scratch_copy(tmp_path / "root")
    with spawn_service(service_dir):
        nb = execute(root / "notebooks" / "openai.ipynb")
    assert stderr_of(nb) == []
    both = outputs_text(tagged(nb, "both"))
    assert "side-by-side-claude" in both and "side-by-side-gpt" in both and "openai" in both
    assert "same result columns: True" in outputs_text(tagged(nb, "columns"))
    assert "list<item: float>[pyarrow] 16" in outputs_text(tagged(nb, "embed"))
    merged = outputs_text(tagged(nb, "merge"))
    assert "max_tokens" in merged and "Is this review" in merged  # echo answers with the prompt, cut at 16


def _has_widget(cell) -> bool:
    return any("application/vnd.jupyter.widget-view+json" in out.get("data", {}) for out in cell["outputs"])


def test_repository_notebooks_have_no_outputs():
    """Notebooks are committed clean: no stale outputs, no execution counts, a python3 kernel."""
    from .nbrun import NOTEBOOKS

    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert paths
    for path in paths:
        nb = json.loads(path.read_text())
        assert nb["metadata"]["kernelspec"]["name"] == "python3", path.name
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, path.name


MONITOR_CELLS = [
    # 0: submit a job that takes a few seconds, and display it (the widget starts its monitor thread)
    """import time, threading
import pandas as pd
import batchframe
from batchframe.jobs.polling import Backoff
from batchframe.progress.monitor import live_monitors
from batchframe.progress.widget import display_job
df = pd.DataFrame({"q": [f"question {i}" for i in range(12)]})
job = df.batch.submit(prompt="q", model="claude-haiku-4-5", max_tokens=8, name="live", provider="local",
                      provider_options={"engine": "echo"})
view = display_job(job, backoff=Backoff(initial=0.2, factor=1.5, maximum=1.0))
shown_at = time.monotonic()""",
    # 1: a later cell runs while the monitor thread is live and the job is still running
    """ran_after = time.monotonic() - shown_at
print("LIVE", view.monitor.running, view.monitor in live_monitors(), len(live_monitors()),
      job.status.state, round(ran_after, 3))""",
    # 2: the monitor stops by itself once the job has ended
    """stopped = view.monitor.join(timeout=60)
names = [t.name for t in threading.enumerate()]
print("STOPPED", stopped, view.monitor.stop_reason, job.status.state, view.monitor.polls,
      "batchframe-monitor" in names, len(live_monitors()))
print("DATA-STATE", 'data-state="ended"' in view.view.value)""",
]


def test_monitor_is_live_while_later_cells_run_and_stops_at_the_end(tmp_path, service_dir, monkeypatch):
    monkeypatch.delenv("BATCHFRAME_NO_PROGRESS")
    path = write_notebook(tmp_path / "live.ipynb", MONITOR_CELLS)
    nb, client = client_for(path, timeout=90)
    # 12 requests, 0.4 s each, one at a time: the job runs ~5 s, so cell 1 runs while it is in progress.
    with spawn_service(service_dir, engine_options={"latency": 0.4, "max_concurrency": 1}):
        with client.setup_kernel():
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index)
    live = outputs_text(nb.cells[1]).split()
    assert live[:6] == ["LIVE", "True", "True", "1", "in_progress", live[5]]
    assert float(live[5]) < 5.0  # the cell ran at once: nothing held the kernel
    stopped = outputs_text(nb.cells[2]).split()
    assert stopped[:4] == ["STOPPED", "True", "ended", "ended"]
    assert int(stopped[4]) >= 2  # it polled more than once while the job ran
    assert stopped[5:7] == ["False", "0"]  # no monitor thread left
    assert "DATA-STATE True" in outputs_text(nb.cells[2])
    assert stderr_of(nb) == []


# Read at import, before the autouse fixture strips provider keys: the real-API notebook runs only with a key.
_ANTHROPIC_KEY = os.environ.get("ANTHROPIC_API_KEY")


def test_anthropic_notebook_without_a_key_says_what_to_do(tmp_path):
    root = scratch_copy(tmp_path / "root")
    with pytest.raises(CellExecutionError) as info:
        execute(root / "notebooks" / "anthropic.ipynb", timeout=60)
    assert "ANTHROPIC_API_KEY is not set: export it before starting Jupyter" in str(info.value)


@pytest.mark.skipif(not _ANTHROPIC_KEY, reason="set ANTHROPIC_API_KEY to run anthropic.ipynb (paid API)")
def test_anthropic_notebook_with_the_real_api(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", _ANTHROPIC_KEY)
    root = scratch_copy(tmp_path / "root")
    nb = execute(root / "notebooks" / "anthropic.ipynb", timeout=4 * 3600)  # kept in memory, never saved
    assert "'succeeded': 5" in outputs_text(tagged(nb, "wait"))


INTERRUPT_CELLS = [
    """import pandas as pd
import batchframe
df = pd.DataFrame({"q": [f"question {i}" for i in range(40)]})
job = df.batch.submit(prompt="q", model="claude-haiku-4-5", max_tokens=8, name="interrupted",
                      provider="local", provider_options={"engine": "echo"})
print("SUBMITTED", job.status.state)""",
    "job.wait(poll_interval=0.5)",
    """again = batchframe.Job.open("interrupted")
print("AFTER", again.refresh().state, again.status.counts["canceled"])""",
]


def test_kernel_interrupt_stops_the_wait_not_the_batch(tmp_path, service_dir):
    """The ■ button (SIGINT to the kernel) during job.wait(): the wait stops, says so; the batch runs on."""
    path = write_notebook(tmp_path / "interrupt.ipynb", INTERRUPT_CELLS)
    nb, client = client_for(path, timeout=90)
    # 40 requests at 0.5 s each, one at a time: the batch runs ~20 s, the interrupt comes after 2 s.
    with spawn_service(service_dir, engine_options={"latency": 0.5, "max_concurrency": 1}):
        with client.setup_kernel():
            client.execute_cell(nb.cells[0], 0)
            pid = client.km.provisioner.process.pid
            timer = threading.Timer(2.0, os.kill, (pid, signal.SIGINT))
            timer.start()
            try:
                with pytest.raises(CellExecutionError) as info:
                    client.execute_cell(nb.cells[1], 1)
            finally:
                timer.cancel()
            client.execute_cell(nb.cells[2], 2)
    assert "KeyboardInterrupt" in str(info.value)
    assert "Stopped waiting for job 'interrupted'" in "".join(stderr_of(nb))
    assert "NOT canceled" in "".join(stderr_of(nb))
    assert outputs_text(nb.cells[2]).split() == ["AFTER", "in_progress", "0"]
