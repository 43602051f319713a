"""Merging harvested results onto rows, and the job store's files (pure / local disk)."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from batchframe import table_metadata
from batchframe.errors import InputError, JobNotFoundError
from batchframe.jobs.store import Store, validate_name
from batchframe.results.combine import combine, to_frame
from batchframe.results.merge import merge_into
from batchframe.results.schema import HARVEST_SCHEMA


def harvested(rows):
    cols = {f.name: [r.get(f.name) for r in rows] for f in HARVEST_SCHEMA}
    return pa.table(cols, schema=HARVEST_SCHEMA)


def test_latest_attempt_wins_and_missing_rows_are_pending_or_skipped():
    t = harvested(
        [
            {"position": 0, "attempt": 1, "status": "errored", "custom_id": "r0"},
            {"position": 2, "attempt": 1, "status": "succeeded", "text": "b", "custom_id": "r2"},
            {"position": 0, "attempt": 2, "status": "succeeded", "text": "a", "custom_id": "r0-a2"},
        ]
    )
    out = combine(4, np.array([False, True, False, False]), [t]).to_pydict()
    assert out["status"] == ["succeeded", "skipped", "succeeded", "pending"]
    assert out["text"] == ["a", None, "b", None] and out["attempt"] == [2, None, 1, None]


def test_result_frame_has_prefix_and_arrow_dtypes():
    frame = to_frame(combine(1, np.array([False]), []), pd.Index(["k"]), prefix="ai_")
    assert "ai_status" in frame and isinstance(frame["ai_input_tokens"].dtype, pd.ArrowDtype)


def test_merge_refuses_a_column_clash():
    df = pd.DataFrame({"llm_text": ["mine"]})
    with pytest.raises(InputError, match="llm_text"):
        merge_into(df, to_frame(combine(1, np.array([False]), []), df.index), prefix="llm_")


def test_merge_with_duplicate_labels_needs_the_submitted_order():
    df = pd.DataFrame({"q": ["a", "b", "c"]}, index=["x", "x", "y"])
    res = to_frame(combine(3, np.array([False, True, False]), []), df.index)
    assert merge_into(df, res, prefix="llm_")["llm_status"].tolist() == ["pending", "skipped", "pending"]
    with pytest.raises(InputError, match="duplicate labels"):
        merge_into(df.iloc[::-1], res, prefix="llm_")


def test_merge_into_a_reordered_unique_frame_aligns_by_label():
    df = pd.DataFrame({"q": ["a", "b"]}, index=["x", "y"])
    res = to_frame(combine(2, np.array([False, True]), []), df.index)
    assert merge_into(df.iloc[::-1], res, prefix="llm_")["llm_status"].tolist() == ["skipped", "pending"]


@pytest.mark.parametrize("name", ["../x", "a/b", "", ".hidden", "a\\b", "x" * 101, "a..b", "/abs"])
def test_names_cannot_escape_the_store(name):
    with pytest.raises(InputError):
        validate_name(name)


def test_manifest_is_written_atomically_and_missing_jobs_are_named(tmp_path):
    store = Store(tmp_path)
    store.write_manifest("j1", {"name": "j1", "fingerprint": "f"})
    assert store.read_manifest("j1")["fingerprint"] == "f"
    assert [p.name for p in (tmp_path / "j1").iterdir()] == ["manifest.json"]
    assert store.find_fingerprint("f") == "j1" and store.find_fingerprint("g") is None
    with pytest.raises(JobNotFoundError, match="nope.*j1"):
        store.read_manifest("nope")


def test_parquet_keeps_index_and_metadata(tmp_path):
    store = Store(tmp_path)
    idx = pd.MultiIndex.from_tuples([("a", 1), ("b", 2)], names=["k", "n"])
    table = pa.Table.from_pandas(pd.DataFrame({"v": [1, 2]}, index=idx), preserve_index=True)
    path = tmp_path / "x.parquet"
    store.write_table(path, table, metadata={"job": "j", "batch_ids": ["b1"]})
    assert store.read_table(path).to_pandas().index.equals(idx)
    assert table_metadata(path) == {"job": "j", "batch_ids": ["b1"]}
