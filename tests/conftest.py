"""Shared fixtures. Every test runs with provider keys stripped and the job store in a temporary folder."""

from __future__ import annotations

import pytest

_STRIPPED = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "BATCHFRAME_PROVIDER",
    "BATCHFRAME_STORE",
    "BATCHFRAME_DATA_DIR",
)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    for name in _STRIPPED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BATCHFRAME_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("BATCHFRAME_DATA_DIR", str(tmp_path / "service"))
    monkeypatch.setenv("BATCHFRAME_NO_PROGRESS", "1")
    # Services that ensure_running() detaches exit after a minute without calls, not after the default hour.
    monkeypatch.setenv("BATCHFRAME_SERVICE_IDLE_SECONDS", "60")
    yield


@pytest.fixture
def service_factory(tmp_path_factory):
    """Start local services (``serve_in_thread``, a fresh tmp data dir unless given); stopped at teardown.

    Example: ``svc = service_factory(engine_options={"latency": 0.05}, faults=Faults(...))``.
    """
    from batchframe.server import serve_in_thread

    started = []

    def factory(**kwargs):
        kwargs.setdefault("data_dir", tmp_path_factory.mktemp("service"))
        svc = serve_in_thread(**kwargs)
        started.append(svc)
        return svc

    yield factory
    for svc in reversed(started):
        svc.stop()


@pytest.fixture
def service(service_factory):
    """A local service with the echo engine and no faults, on 127.0.0.1 (``service.base_url``)."""
    return service_factory()
