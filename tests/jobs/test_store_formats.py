"""Manifests this version cannot open still protect their batches from being adopted by another job."""

from __future__ import annotations

import json

import batchframe
from batchframe.jobs.orphans import known_batches


def _write(store, name, text):
    folder = store.job_dir(name)
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(text)


def test_a_newer_manifest_is_refused_with_a_clear_error_but_its_batches_stay_known(tmp_path):
    store = batchframe.Store(tmp_path / "store")
    newer = {"format": 99, "name": "future", "attempts": [{"attempt": 1, "shards": [
        {"index": 0, "batch_id": "msgbatch_future", "rejected": ["msgbatch_old"]}]}]}
    _write(store, "future", json.dumps(newer))
    _write(store, "broken", "{not json")
    known = known_batches(store)
    assert known["msgbatch_future"] == ("future", 1, 0) and known["msgbatch_old"] == ("future", 1, 0)
    assert known.unreadable == ["broken"]  # while it is there, no orphan is adopted without asking
    try:
        store.read_manifest("future")
    except batchframe.JobError as exc:
        assert "newer batchframe" in str(exc) and "upgrade" in str(exc)
    else:
        raise AssertionError("a newer manifest must not be read as if it were understood")
    table = batchframe.jobs(store=store)
    assert sorted(table["name"]) == ["broken", "future"] and table["state"].str.startswith("unreadable").all()
