"""JupyterLab in headless Chromium: run quickstart.ipynb and read the job widget off the page.

Needs Debian's chromium (`apt-get install chromium chromium-driver`); .ci/run installs it. The screenshot is
saved to test-artifacts/quickstart.png.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .jupyterlab import (
    ENABLE_HINT,
    chromium_page,
    chromium_path,
    jupyterlab,
    open_notebook,
    run_all_cells,
    wait_all_cells_ran,
)
from .nbrun import ROOT, scratch_copy

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = ROOT / "test-artifacts"
N_REVIEWS = 40  # rows of data/reviews.csv


@pytest.fixture
def lab(tmp_path, monkeypatch):
    if chromium_path() is None:
        pytest.skip(ENABLE_HINT)
    root = scratch_copy(tmp_path / "root")
    home = tmp_path / "home"
    home.mkdir()
    env = {"BATCHFRAME_NO_PROGRESS": "0", "BATCHFRAME_ENGINE": "echo",
           "BATCHFRAME_STORE": str(tmp_path / "store"), "BATCHFRAME_DATA_DIR": str(tmp_path / "service")}
    with jupyterlab(root, home, env=env) as server:
        yield server
    _stop_spawned_service(tmp_path / "service")


def _stop_spawned_service(data_dir: Path) -> None:
    from .services import stop_recorded_service

    stop_recorded_service(data_dir)


def test_quickstart_in_jupyterlab(lab):
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "quickstart.png"
    with chromium_page() as page:
        try:
            open_notebook(page, lab, "notebooks/quickstart.ipynb", timeout_ms=120_000)
            run_all_cells(page)
            job = page.locator(".bf-widget .bf-job").first
            page.wait_for_selector('.bf-widget .bf-job[data-state="ended"]', timeout=120_000)
            wait_all_cells_ran(page, timeout_ms=120_000)
            job.scroll_into_view_if_needed()
            page.screenshot(path=str(shot), full_page=False)
            errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
            assert errors.count() == 0, errors.all_inner_texts()
            assert job.get_attribute("data-outcome") == "success"
            total = job.locator(".bf-row-total")
            assert total.locator(".bf-done").inner_text() == f"{N_REVIEWS}/{N_REVIEWS}"
            counts = {k: int(re.sub(r"\D", "", total.locator(f".bf-n-{k}").inner_text()))
                      for k in ("succeeded", "errored", "expired", "canceled", "processing")}
            expected = {"succeeded": N_REVIEWS, "errored": 0, "expired": 0, "canceled": 0, "processing": 0}
            assert counts == expected
            assert job.locator(".bf-state").inner_text() == "ended"
            assert job.locator(".bf-provider").inner_text() == "local"
            assert page.locator(".bf-widget button", has_text="Cancel").first.is_disabled()
            # Refresh goes browser -> kernel -> service and back: the "checked at" time moves on.
            checked = page.locator(".bf-widget .bf-checked").first
            before = checked.inner_text()
            page.wait_for_timeout(1100)  # the time shown has a one-second resolution
            page.locator(".bf-widget button", has_text="Refresh").first.click()
            # (the HTML widget replaces its content on every update: look the element up each time)
            page.wait_for_function(
                "old => document.querySelector('.bf-widget .bf-checked').textContent !== old", arg=before,
                timeout=30_000)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "quickstart-failure.png"))
            raise
