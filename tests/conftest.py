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
    yield
