"""`batchframe demo` on the echo engine: the same code path as `make demo`, without the model."""

from pathlib import Path

import pandas as pd
import pytest

from batchframe import ConfigError, InputError
from batchframe.cli.demo import load_reviews, run_demo
from batchframe.cli.main import main

DATA = Path(__file__).resolve().parent.parent / "data" / "reviews.csv"


def test_demo_merges_both_jobs_by_review_id_and_writes_parquet(tmp_path):
    run = run_demo(engine="echo", data=DATA, rows=6, out=tmp_path / "demo.parquet")
    assert run.frame.index.tolist() == [f"R{i:03d}" for i in range(1, 7)]
    assert (run.frame["sentiment_status"] == "succeeded").all()
    assert (run.frame["sentiment_parse_status"] == "ok").all()  # schema=: a typed label, one of three
    assert set(run.frame["sentiment_label"]) <= {"positive", "negative", "mixed"}
    assert str(run.frame["sentiment_label"].dtype) == "string[pyarrow]"
    assert (run.frame["summary_model"] == "echo").all()
    # The echo engine derives its answer from the prompt: each summary mentions its own row's product.
    for rid, row in run.frame.iterrows():
        assert row["product"] in row["summary_text"], rid
    on_disk = pd.read_parquet(run.parquet)
    assert on_disk.index.tolist() == run.frame.index.tolist()
    assert on_disk["summary_text"].tolist() == run.frame["summary_text"].tolist()


def test_demo_rerun_reattaches_without_new_batches(tmp_path):
    first = run_demo(engine="echo", data=DATA, rows=4, out=tmp_path / "a.parquet")
    second = run_demo(engine="echo", data=DATA, rows=4, out=tmp_path / "b.parquet")
    assert first.reused == {"sentiment": False, "summary": False}
    assert second.reused == {"sentiment": True, "summary": True}
    assert {t: j.batch_ids() for t, j in second.jobs.items()} == {t: j.batch_ids() for t, j in first.jobs.items()}


def test_demo_cli_prints_summary_and_parquet_path(capsys, tmp_path):
    out = tmp_path / "cli.parquet"
    assert main(["demo", "--engine", "echo", "--data", str(DATA), "--rows", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "demo-echo-sentiment" in printed and "demo-echo-summary" in printed
    assert f"parquet:   {out.resolve()}" in printed
    assert out.exists()


def test_missing_sample_data_names_the_path(tmp_path):
    with pytest.raises(InputError, match="sample data not found at .*nowhere.csv"):
        load_reviews(tmp_path / "nowhere.csv")


def test_llama_engine_without_the_extra_says_how_to_run_echo(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else real(name, *a))
    with pytest.raises(ConfigError, match="make demo ENGINE=echo"):
        run_demo(engine="llama", data=DATA, rows=1)


@pytest.mark.model
def test_demo_on_smollm2_gives_real_answers(tmp_path):
    pytest.importorskip("llama_cpp", reason="the llama engine needs the local extra: pip install -e '.[local]'")
    run = run_demo(engine="llama", data=DATA, rows=3, out=tmp_path / "llama.parquet")
    assert (run.frame["summary_status"] == "succeeded").all()
    assert (run.frame["summary_model"] == "smollm2-135m-instruct").all()
    assert (run.frame["summary_output_tokens"] > 0).all() and (run.frame["summary_input_tokens"] > 20).all()
    # Real generations, not the echo engine's copy of the prompt.
    for _, row in run.frame.iterrows():
        assert row["summary_text"].strip() and row["review"] not in row["summary_text"]
    # schema= with an enum: SmolLM2's grammar allows exactly the three labels, never "Positive." or free text.
    assert (run.frame["sentiment_parse_status"] == "ok").all(), run.frame["sentiment_parse_error"].tolist()
    assert set(run.frame["sentiment_label"]) <= {"positive", "negative", "mixed"}
    assert run.jobs["sentiment"].manifest["request"]["structured"]["via"] == "output_config"
