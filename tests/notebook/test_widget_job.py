"""The widget and the text fallback with a real Job against the local service on loopback."""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest

import batchframe  # noqa: F401  (registers df.batch)
from batchframe.jobs.polling import Backoff
from batchframe.progress.widget import JobWidget, display_job

from .services import stop_recorded_service

FAST = Backoff(initial=0.1, factor=1.5, maximum=0.5)


def _submit(service, n, name, **options):
    df = pd.DataFrame({"q": [f"question {i}" for i in range(n)]}, index=[f"row-{i}" for i in range(n)])
    return df.batch.submit(prompt="q", model="claude-haiku-4-5", max_tokens=8, name=name, provider="local",
                           base_url=service.base_url, **options)


def _wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_widget_follows_a_job_until_it_ends(service_factory):
    service = service_factory(engine_options={"latency": 0.2, "max_concurrency": 1})
    job = _submit(service, 8, "follow")
    view = JobWidget(job, backoff=FAST).start()
    try:
        assert view.monitor.running
        assert view.monitor.join(timeout=30)
        assert view.monitor.stop_reason == "ended" and view.monitor.polls >= 2
        html = view.view.value
        assert 'data-state="ended"' in html and 'data-outcome="success"' in html
        assert view.status.counts["succeeded"] == 8 and view.status.counts["processing"] == 0
        assert 'title="succeeded: 8"' in html and "8/8" in html
        assert view.cancel_button.disabled
        assert "batchframe-monitor" not in [t.name for t in threading.enumerate()]
    finally:
        view.close()


def test_cancel_asks_first_then_cancels(service_factory):
    service = service_factory(engine_options={"latency": 0.5, "max_concurrency": 1})
    job = _submit(service, 20, "cancel-me")
    view = JobWidget(job, backoff=FAST).start()
    try:
        view.cancel_button.click()
        assert view.confirm.layout.display == "flex"
        view.keep_button.click()
        assert view.confirm.layout.display == "none"
        time.sleep(0.3)
        assert view.status.state == "in_progress"  # "No" left the batch alone
        view.cancel_button.click()
        view.confirm_button.click()
        assert view.cancel_button.disabled
        assert view.monitor.join(timeout=30) and view.monitor.stop_reason == "ended"
        counts = view.status.counts
        assert counts["canceled"] > 0 and counts["processing"] == 0
        assert counts["canceled"] + counts["succeeded"] == 20
        assert 'data-outcome="failure"' in view.view.value and "#c62828" in view.view.value
    finally:
        view.close()


def test_refresh_button_polls_a_stopped_monitor(service):
    job = _submit(service, 3, "refresh")
    view = JobWidget(job, backoff=FAST)  # not started: Refresh polls once in a short thread
    view.refresh_button.click()
    assert _wait_for(lambda: "checked at" in view.message.value)
    assert _wait_for(lambda: (view.refresh_button.click(), view.status.ended)[1])
    assert 'data-state="ended"' in view.view.value


def test_display_outside_jupyter_prints_text(service, capsys):
    job = _submit(service, 3, "text")
    job.wait(poll_interval=0.2, timeout=30)
    assert display_job(job) is None
    out = capsys.readouterr().out
    assert out.startswith("batch job 'text' · provider local · model claude-haiku-4-5 · ended\n")
    assert "3/3  succeeded 3 · errored 0" in out


@pytest.mark.skipif(not hasattr(batchframe.Job, "_ipython_display_"), reason="Job has no display hook yet")
def test_job_display_hook_falls_back_to_text(service, capsys):
    job = _submit(service, 2, "hook")
    job._ipython_display_()
    assert "batch job 'hook' · provider local" in capsys.readouterr().out


def test_closing_the_view_stops_its_monitor(service_factory):
    import ipywidgets

    service = service_factory(engine_options={"latency": 0.5, "max_concurrency": 1})
    job = _submit(service, 20, "closed-view")
    view = JobWidget(job, backoff=FAST).start()
    assert _wait_for(lambda: view.monitor.polls >= 1) and view.monitor.running
    ipywidgets.Widget.close_all()  # what a notebook does when it discards every widget
    assert view.monitor.join(timeout=10) and view.monitor.stop_reason == "closed"
    assert job.refresh().state == "in_progress"  # closing the view never cancels the batch


def test_showing_a_job_again_stops_the_older_view(service_factory):
    """Re-running a cell that displays a job must not pile up polling threads."""
    service = service_factory(engine_options={"latency": 0.5, "max_concurrency": 1})
    job = _submit(service, 20, "shown-twice")
    first = JobWidget(job, backoff=FAST).start()
    second = JobWidget(job, backoff=FAST).start()
    try:
        assert first.monitor.join(timeout=10) and first.monitor.stop_reason == "closed"
        assert second.monitor.running
    finally:
        second.close()
    assert not second.monitor.running


def test_a_job_with_an_unsent_shard_stops_polling_and_says_why(service_factory, tmp_path):
    from batchframe.providers.http import RetryPolicy
    from batchframe.server import Faults

    service = service_factory(faults=Faults(http_error_rate=1.0, http_error_statuses=(500,), seed=1))
    with pytest.raises(batchframe.APIError):
        _submit(service, 3, "refused", retry=RetryPolicy(max_retries=0))
    service.set_faults(Faults())
    job = batchframe.open_job("refused")
    view = JobWidget(job, backoff=FAST).start()
    try:
        assert view.monitor.join(timeout=10) and view.monitor.stop_reason == "closed"
        assert view.status.state == "unsent" and "never sent" in view.message.value
    finally:
        view.close()
        # The re-opened job resolves the local provider by its data folder ($BATCHFRAME_DATA_DIR), which
        # starts a detached service there: stop it.
        stop_recorded_service(tmp_path / "service")
