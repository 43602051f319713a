"""`batchframe serve` refuses bad settings with a message that says what to do."""

from __future__ import annotations

from batchframe.cli.main import main
from batchframe.server.cli import engine_options


def test_engine_options_parse_json_values():
    assert engine_options(["latency=0.5", "base_url=http://127.0.0.1:1/v1", "n=3"]) == {
        "latency": 0.5, "base_url": "http://127.0.0.1:1/v1", "n": 3}


def test_bad_engine_settings_exit_with_a_hint(tmp_path, capsys):
    assert main(["serve", "--data-dir", str(tmp_path), "--engine", "nope"]) == 1
    err = capsys.readouterr().err
    assert "unknown engine 'nope'; known engines: " in err and "openai-compatible" in err
    assert main(["serve", "--data-dir", str(tmp_path), "--engine", "openai-compatible"]) == 1
    err = capsys.readouterr().err
    assert "base_url" in err and "--engine-option KEY=VALUE" in err
