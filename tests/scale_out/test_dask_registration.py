"""``import batchframe`` never imports Dask, and registers ``ddf.batch`` whichever is imported first; the driver's
assembly of partitions is pure and checked without a cluster."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

pytest.importorskip("dask.dataframe", reason="the dask extra: pip install 'batchframe[dask]'")

import batchframe  # noqa: E402
from batchframe.dask.build import assemble, build_partition, check_spec  # noqa: E402
from batchframe.requests.build import build_requests  # noqa: E402


def _python(code: str) -> str:
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def test_import_batchframe_does_not_import_dask_and_registers_when_dask_comes_after():
    code = ("import sys, batchframe; print('dask' in sys.modules); import dask.dataframe as dd; "
            "print(hasattr(dd.DataFrame, 'batch'))")
    assert _python(code).split() == ["False", "True"]


def test_registered_when_dask_was_imported_first():
    assert _python("import dask.dataframe as dd, batchframe; print(hasattr(dd.DataFrame, 'batch'))") == "True"


def test_partitions_assemble_into_global_positions_like_one_frame():
    spec = {"prompt": "q", "model": "m", "max_tokens": 8}
    whole = pd.DataFrame({"q": ["a", None, "b", "a", "", "c"]}, index=list("uvwxyz"))
    parts = [whole.iloc[:2], whole.iloc[2:2], whole.iloc[2:5], whole.iloc[5:]]  # an empty partition too
    built = assemble(build_requests(whole.iloc[:1], **spec), [build_partition(p, spec) for p in parts])
    alone = build_requests(whole, **spec)
    assert built.requests.custom_ids == alone.custom_ids == ["r0", "r2", "r3", "r5"]
    assert built.requests.params == alone.params
    assert built.requests.skipped.tolist() == alone.skipped.tolist()
    assert built.index.equals(whole.index)


def test_a_series_parameter_is_refused_with_what_to_do():
    with pytest.raises(batchframe.InputError, match="col"):
        check_spec({"max_tokens": pd.Series([1])})
