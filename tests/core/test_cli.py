"""The job subcommands of the CLI, against the local service over HTTP."""

import pandas as pd
from helpers import KEY, remote_batches

from batchframe import table_metadata
from batchframe.cli.main import main


def test_submit_status_results_jobs(service, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", service.base_url)
    source = tmp_path / "in.csv"
    pd.DataFrame({"id": ["a", "b", "c"], "text": ["one", None, "three"]}).to_csv(source, index=False)
    args = [
        "submit",
        str(source),
        "--prompt",
        "Say: {text}",
        "--model",
        "claude-haiku-4-5",
        "--max-tokens",
        "20",
        "--index-col",
        "id",
        "--name",
        "cli-job",
        "--wait",
        "--poll-interval",
        "0.05",
    ]
    assert main(args) == 0
    assert "· ended" in capsys.readouterr().out
    assert main(args) == 0 and len(remote_batches(service)) == 1  # a re-run pays nothing
    assert main(["status", "cli-job"]) == 0
    assert "succeeded 2" in capsys.readouterr().out
    out = tmp_path / "out.parquet"
    assert main(["results", "cli-job", "-o", str(out), "--input", str(source), "--index-col", "id"]) == 0
    frame = pd.read_parquet(out)
    assert frame.loc["a", "llm_text"] == "Say: one" and frame.loc["b", "llm_status"] == "skipped"
    assert table_metadata(out)["job"] == "cli-job"
    capsys.readouterr()
    assert main(["jobs"]) == 0
    assert "cli-job" in capsys.readouterr().out


def test_status_of_an_unknown_job_is_a_clear_error(capsys):
    assert main(["status", "nope"]) == 1
    assert "no job named 'nope'" in capsys.readouterr().err
