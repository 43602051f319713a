"""ruff is cheap: the tree stays clean of the lint rules in pyproject.toml."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_finds_nothing():
    pytest.importorskip("ruff", reason="ruff is in the test extra: pip install -e '.[test]'")
    run = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise",
                          "batchframe", "tests", "benchmarks", "scripts", "conftest.py"], cwd=ROOT, capture_output=True,
                         text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
