"""Merge proves every row: an answer lands only on a row whose label is in the job and whose inputs are
unchanged since submit; anything else is a visible status or a clear error, never a shifted answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import KEY, remote_batches, submit, values

import batchframe
from batchframe.cli.main import main


def _frame(n=6, index=None):
    return pd.DataFrame({"q": [f"question number {i}" for i in range(n)]}, index=index)


def test_the_submitted_frame_a_permutation_and_a_subset_get_every_row_right(service):
    df = _frame(6, index=pd.Index([f"k{i}" for i in range(6)], name="key"))
    job = submit(df, service)
    job.wait(poll_interval=0.05, timeout=60)
    merged = df.batch.merge(job)
    assert values(merged["llm_text"]) == df["q"].tolist() and set(merged["llm_status"]) == {"succeeded"}
    shuffled = df.sample(frac=1, random_state=3)
    merged = shuffled.batch.merge(job)
    assert values(merged["llm_text"]) == shuffled["q"].tolist()
    subset = df.iloc[[4, 1]]
    assert values(subset.batch.merge(job)["llm_text"]) == subset["q"].tolist()


def test_a_range_index_frame_that_gained_a_row_gets_no_shifted_answer(service):
    df = _frame(5)
    job = submit(df, service)
    job.wait(poll_interval=0.05, timeout=60)
    grown = pd.concat([pd.DataFrame({"q": ["a brand new first row"]}), df], ignore_index=True)
    with pytest.raises(batchframe.InputError, match="no row of this frame matches"):
        grown.batch.merge(job)  # every label now holds another row's prompt
    partly = df.copy()
    partly.loc[2, "q"] = "edited after submit"
    partly.loc[99] = ["never submitted"]
    merged = partly.batch.merge(job)
    assert merged["llm_status"].tolist() == ["succeeded", "succeeded", "stale", "succeeded", "succeeded",
                                             "not_submitted"]
    assert values(merged["llm_text"]) == df["q"].tolist()[:2] + [None] + df["q"].tolist()[3:] + [None]


def test_the_same_prompts_under_other_labels_are_not_merged_by_position(service):
    x = pd.DataFrame({"q": ["say one", "say two", "say three"]}, index=["alice", "bob", "carol"])
    job = submit(x, service, name="monday")
    job.wait(poll_interval=0.05, timeout=60)
    rotated = pd.DataFrame({"q": x["q"].tolist()}, index=["carol", "alice", "bob"])
    numbered = pd.DataFrame({"q": x["q"].tolist()}, index=[101, 102, 103])
    for other in (rotated, numbered):
        with pytest.raises(batchframe.InputError, match="no row of this frame matches job 'monday'"):
            other.batch.merge(job)


@pytest.mark.parametrize("name", ["shard", "custom_id", "body", "position", "status"])
def test_an_index_named_like_an_internal_column_works_end_to_end(service, name):
    df = _frame(3, index=pd.Index(["a", "b", "c"], name=name))
    job = submit(df, service)
    job.wait(poll_interval=0.05, timeout=60)
    merged = df.batch.merge(job)
    assert merged.index.name == name and values(merged["llm_text"]) == df["q"].tolist()
    assert job.results().index.name == name


def test_a_multiindex_with_internal_names_and_nan_round_trips(service):
    index = pd.MultiIndex.from_tuples([("x", 1.0), ("y", np.nan), ("z", 3.0)], names=["body", "shard"])
    df = _frame(3, index=index)
    job = submit(df, service)
    job.wait(poll_interval=0.05, timeout=60)
    assert values(df.batch.merge(job)["llm_text"]) == df["q"].tolist()


def test_cli_results_into_an_unrelated_file_fails_with_the_reason(service, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    job = submit(_frame(3, index=pd.Index(["a", "b", "c"], name="id")), service, name="cli-proof")
    job.wait(poll_interval=0.05, timeout=60)
    other = tmp_path / "other.csv"
    pd.DataFrame({"id": ["x", "y"], "q": ["p", "q"]}).to_csv(other, index=False)
    code = main(["results", "cli-proof", "-o", str(tmp_path / "out.csv"), "--input", str(other), "--index-col", "id",
                 "--base-url", service.base_url])
    assert code == 1 and "no row of this frame matches" in capsys.readouterr().err
    assert not (tmp_path / "out.csv").exists() and len(remote_batches(service)) == 1


def test_prefix_must_be_a_string(service):
    job = submit(_frame(1), service)
    with pytest.raises(batchframe.InputError, match="prefix must be a string"):
        _frame(1).batch.merge(job, prefix=None)
