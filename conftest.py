"""Doctests of the package (``--doctest-modules``): common names, and the same isolation as the test suite."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import batchframe


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace, monkeypatch, tmp_path):
    doctest_namespace.update(pd=pd, np=np, pa=pa, batchframe=batchframe)
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "BATCHFRAME_PROVIDER", "BATCHFRAME_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BATCHFRAME_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("BATCHFRAME_NO_PROGRESS", "1")
