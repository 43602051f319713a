"""``import batchframe`` never imports Dask, and registers ``ddf.batch`` whichever is imported first; what the
workers stage and the driver reads back of it is checked without a cluster."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

pytest.importorskip("dask.dataframe", reason="the dask extra: pip install 'batchframe[dask]'")

import batchframe  # noqa: E402
from batchframe.dask.build import check_spec  # noqa: E402
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


def test_staged_partitions_give_the_pandas_requests_sizes_and_max_tokens_in_global_order(tmp_path):
    import numpy as np

    from batchframe.dask.stage import Stage, fetch_params, stage_partition
    from batchframe.providers.anthropic import codec

    spec = {"prompt": "q", "model": "m", "max_tokens": batchframe.col("mt")}
    whole = pd.DataFrame({"q": ["a", None, "bb", "a", "", "c" * 50], "mt": [8, 9, 10, 11, 12, 13]},
                         index=list("uvwxyz"))
    bounds = [(0, 2), (2, 2), (2, 5), (5, 6)]  # an empty partition too
    stage = Stage(str(tmp_path), "local:svc", "anthropic", spec)
    staged = [stage_partition(whole.iloc[a:b], stage, k, a) for k, (a, b) in enumerate(bounds)]
    alone = build_requests(whole, **spec)
    assert np.concatenate([s.params_sizes for s in staged]).tolist() == [len(p) for p in alone.params]
    assert np.concatenate([s.max_tokens for s in staged]).tolist() == [8, 10, 11, 13]
    rows = alone.positions  # the frame's rows that send a request
    assert fetch_params(tmp_path, staged, rows, codec) == list(alone.params)
    assert fetch_params(tmp_path, staged, rows[::-1], codec) == list(alone.params)[::-1]  # in the order asked
    assert fetch_params(tmp_path, staged, rows[:0], codec) == []


def test_a_series_parameter_is_refused_with_what_to_do():
    with pytest.raises(batchframe.InputError, match="col"):
        check_spec({"max_tokens": pd.Series([1])})


def test_a_worker_hands_back_fixed_size_pieces_and_writes_its_lines(tmp_path):
    import pickle

    import numpy as np

    from batchframe.dask.stage import Stage, read_staged, stage_partition
    from batchframe.requests.fingerprint import request_digests

    spec = {"prompt": "Say something long about {q}", "model": "claude-haiku-4-5", "max_tokens": 8}
    part = pd.DataFrame({"q": [f"topic {i} " * 20 if i % 9 else None for i in range(900)]},
                        index=pd.Index([f"k{i}" for i in range(900)], name="key"))
    stage = Stage(str(tmp_path), "local:svc", "anthropic", spec)
    staged = stage_partition(part, stage, 3, 5_000)
    alone = build_requests(part, **spec)
    assert staged.n_rows == 900 and staged.sent.tolist() == (~alone.skipped).tolist()
    assert staged.digests == b"".join(request_digests("local:svc", alone.params))
    table = read_staged(tmp_path, staged)
    assert table.column("position").to_pylist() == list(range(5_000, 5_900))  # global positions
    assert table.column("custom_id").drop_null().to_pylist() == [f"r{5_000 + p}" for p in alone.positions]
    bodies = table.column("body").drop_null().to_pylist()
    assert staged.sizes.tolist() == [len(b) for b in bodies] and all(b'"custom_id"' in b for b in bodies)
    # What travels to the driver is ~37 bytes a row (sent 1, digest 16, line size 8, params size 4,
    # max_tokens 8), not the ~340-byte request bodies.
    assert len(pickle.dumps(staged)) < 40 * len(part) < sum(len(b) for b in bodies) / 6
    assert np.array_equal(table.to_pandas().index, part.index)


def test_a_worker_that_does_not_see_the_store_says_so(tmp_path):
    from batchframe.dask.stage import Stage, stage_partition

    stage = Stage(str(tmp_path / "not-here"), "local:svc", "anthropic", {"prompt": "q", "model": "m", "max_tokens": 8})
    with pytest.raises(batchframe.InputError, match="not visible on Dask worker .* filesystem every worker sees"):
        stage_partition(pd.DataFrame({"q": ["x"]}), stage, 0, 0)


def test_identical_requests_are_sent_once_by_their_digest():
    import numpy as np

    from batchframe.requests.keys import first_by_key

    keys = np.array([[5, 1], [2, 2], [5, 1], [5, 2], [2, 2]], np.uint64)
    assert first_by_key(keys).tolist() == [0, 1, 0, 3, 1]
    assert first_by_key(np.zeros((0, 2), np.uint64)).tolist() == []
    from batchframe.requests.keys import first_occurrences

    rng = np.random.default_rng(0)
    for n in (1, 7, 500):  # the same answer as the pandas submit's dedupe (by request body)
        keys = rng.integers(0, 3, (n, 2)).astype(np.uint64)
        assert first_by_key(keys).tolist() == first_occurrences([k.tobytes() for k in keys]).tolist()
