"""Browser-test harness: a throwaway JupyterLab on 127.0.0.1 driven by playwright with Debian's chromium.

Everything the server writes (config, runtime files, settings, workspaces, autosaved notebooks) goes into a
temporary folder: notebooks are copied there, so running them never modifies the repository.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ENABLE_HINT = (
    "chromium not found: install it with `apt-get install chromium chromium-driver` to run the browser tests"
)
# Plugins that would reach the internet or pop up a news prompt over the notebook.
_DISABLED_PLUGINS = {
    "@jupyterlab/apputils-extension:announcements": True,
    "@jupyterlab/extensionmanager-extension": True,
}


def chromium_path() -> str | None:
    return shutil.which("chromium")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    log: Path

    def page_url(self, path: str) -> str:
        return f"{self.url}/lab/tree/{path}?token={self.token}"

    def start_kernel(self, path: str, *, kernel: str = "python3") -> str:
        """Start the notebook's kernel over REST, so Lab opens it without a Select Kernel dialog."""
        body = {"path": path, "name": Path(path).name, "type": "notebook", "kernel": {"name": kernel}}
        response = httpx.post(f"{self.url}/api/sessions", params={"token": self.token}, json=body, timeout=60)
        response.raise_for_status()
        return response.json()["kernel"]["id"]


def _lab_env(home: Path, extra: dict[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    for name, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                      ("JUPYTER_DATA_DIR", "data"), ("JUPYTERLAB_SETTINGS_DIR", "settings"),
                      ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"), ("IPYTHONDIR", "ipython")):
        (home / sub).mkdir(parents=True, exist_ok=True)
        env[name] = str(home / sub)
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    labconfig = home / "config" / "labconfig"
    labconfig.mkdir(parents=True, exist_ok=True)
    (labconfig / "page_config.json").write_text(json.dumps({"disabledExtensions": _DISABLED_PLUGINS}))
    # Start the notebook's kernel without the "Select Kernel" dialog a fresh profile shows.
    tracker = home / "settings" / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True, exist_ok=True)
    (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"autoStartDefaultKernel": True}))
    env.update(extra or {})
    return env


def _wait_ready(url: str, token: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/api/status", params={"token": token}, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"jupyter lab not ready after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@contextmanager
def jupyterlab(root: Path, home: Path, *, env: dict[str, str] | None = None, timeout: float = 90.0):
    """Run ``jupyter lab`` serving ``root`` on a free loopback port with a random token; stop it on exit."""
    port, token = free_port(), secrets.token_hex(16)
    log = home / "jupyterlab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0", "--allow-root", "--ServerApp.terminals_enabled=False",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=_lab_env(home, env), cwd=root)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, token, proc, log, timeout)
        yield Lab(url=url, token=token, root=root, log=log)
    finally:
        _stop(proc, url=f"http://127.0.0.1:{port}", token=token)


def _stop(proc: subprocess.Popen, *, url: str, token: str) -> None:
    # The shutdown endpoint also shuts down the kernels it started (a plain SIGTERM may leave them behind).
    try:
        httpx.post(f"{url}/api/shutdown", params={"token": token}, timeout=5)
        proc.wait(timeout=20)
    except (httpx.HTTPError, subprocess.TimeoutExpired):
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextmanager
def chromium_page(*, width: int = 1400, height: int = 1100):
    """A playwright page in Debian's headless chromium (playwright's own browser download is not used)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            yield page
        finally:
            browser.close()


def open_notebook(page, lab: Lab, path: str, *, timeout_ms: int) -> None:
    """Open ``path`` in JupyterLab with its kernel already started, and wait until the kernel is idle."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    lab.start_kernel(path)
    page.goto(lab.page_url(path))
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=timeout_ms)
    try:  # in case Lab still asks which kernel to use (it may ask a moment after the page is drawn)
        page.wait_for_selector(".jp-Dialog .jp-mod-accept", timeout=3000)
        page.locator(".jp-Dialog .jp-mod-accept").first.click()
    except PlaywrightTimeout:
        pass
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=timeout_ms)


def run_all_cells(page) -> None:
    """Choose Run > Run All Cells from the menu bar, as a user would."""
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()


def wait_all_cells_ran(page, *, timeout_ms: int) -> None:
    """Wait until no cell is queued or running ("[*]") and every code cell has an execution count."""
    page.wait_for_function(
        r"""() => {
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
            return prompts.length > 0 && prompts.every(p => /\[\d+\]/.test(p.textContent));
        }""",
        timeout=timeout_ms,
    )
