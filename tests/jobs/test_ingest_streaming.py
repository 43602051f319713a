"""The streaming harvest (results parsed and written a block at a time) gives exactly what ingesting each
shard's results whole gives, and what the raw JSONL says, on a multi-shard job over the local service."""

import shutil
import time

import httpx
import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from jobs_helpers import HEADERS, KEY, frame, service_batches, submit

import batchframe
from batchframe.jobs import harvest
from batchframe.jobs.labels import labels_table
from batchframe.jobs.shard_file import _labelled_schema
from batchframe.results.schema import HARVEST_SCHEMA


def _wait_remote_end(service, n_batches: int) -> list[dict]:
    for _ in range(600):  # bounded: 60 s
        batches = service_batches(service)
        if len(batches) == n_batches and all(b["processing_status"] == "ended" for b in batches):
            return batches
        time.sleep(0.1)
    raise AssertionError(f"batches did not end: {service_batches(service)}")


def _raw_lines(service, batch_ids) -> dict[str, dict]:
    """Every result line of the batches, by custom_id, read without batchframe's parser."""
    lines = {}
    with httpx.Client(base_url=service.base_url, headers=HEADERS, timeout=30) as http:
        for batch_id in batch_ids:
            body = http.get(f"/v1/messages/batches/{batch_id}/results").raise_for_status().content
            for line in body.split(b"\n"):
                if line.strip():
                    record = orjson.loads(line)
                    lines[record["custom_id"]] = record["result"]
    return lines


def test_streamed_blocks_give_the_same_results_as_whole_shards(service, monkeypatch):
    df = frame(120)
    df.loc[df.index[5], "q"] = "a line separator \u2028 and ü 日本 in the answer"
    df.loc[df.index[7], "q"] = None  # never sent: skipped
    job = submit(df, service, name="streamed", max_batch_requests=16)
    n_shards = len(job.batch_ids())
    assert n_shards == 8
    batches = _wait_remote_end(service, n_shards)
    plain_root = job.store.root.parent / "plain-store"
    shutil.copytree(job.store.root, plain_root)  # the same job, not harvested yet

    monkeypatch.setattr(harvest, "CHUNK_BYTES", 1500)  # two or three lines a block: many blocks per shard
    job.wait(poll_interval=0.05, timeout=60)
    streamed = job.results()
    monkeypatch.setattr(harvest, "CHUNK_BYTES", 1 << 30)  # each shard's results as one block
    plain = batchframe.open_job("streamed", store=str(plain_root), api_key=KEY, base_url=service.base_url)
    plain.wait(poll_interval=0.05, timeout=60)
    pd.testing.assert_frame_equal(streamed, plain.results())
    assert job.status.cost_usd == plain.status.cost_usd and job.status.counts == plain.status.counts

    first = job.store.results_path("streamed", 1, 0)
    assert pq.ParquetFile(first).metadata.num_row_groups > 3  # it really was written block by block
    raw = _raw_lines(service, [b["id"] for b in batches])
    assert len(raw) == 119
    sent = streamed[streamed["llm_status"] != "skipped"]
    assert sent["llm_custom_id"].map(lambda c: raw[c]["message"]["content"][0]["text"]).tolist() == \
        sent["llm_text"].tolist() == df["q"].drop(df.index[7]).tolist()
    assert sent["llm_input_tokens"].tolist() == \
        sent["llm_custom_id"].map(lambda c: raw[c]["message"]["usage"]["input_tokens"]).tolist()
    assert streamed.loc[df.index[7], "llm_status"] == "skipped"
    merged = df.batch.merge(job)
    assert merged["llm_text"].iloc[5] == df["q"].iloc[5]
    # Every row's answer on its own row, through the merge too (results read back a file and a column at a time).
    assert merged["llm_text"].drop(df.index[7]).tolist() == df["q"].drop(df.index[7]).tolist()
    assert merged["llm_custom_id"].drop(df.index[7]).tolist() == [f"r{p}" for p in range(120) if p != 7]


@pytest.mark.parametrize("labels", [
    pd.Index([f"a{i}" for i in range(40)], name="k"),
    pd.Index(np.arange(40) * 3, name="n"),
    pd.RangeIndex(40),
    pd.Index([f"a{i}" for i in range(40)], dtype=object),
    pd.MultiIndex.from_arrays([np.arange(40), [f"x{i}" for i in range(40)]], names=["a", None]),
    pd.date_range("2020-01-01", periods=40, tz="UTC"),
    pd.Index(pd.array([1, None] * 20, dtype="Int64")),
    pd.Index(pd.Categorical(["a", "b"] * 20)),
])
def test_a_results_files_schema_is_that_of_all_its_labels(labels):
    """The sink takes its file's schema from one row when the labels' types do not depend on their values:
    it must be exactly the schema (pandas metadata included) that all the labels give."""
    fields = list(HARVEST_SCHEMA)
    table, schema, names = _labelled_schema(labels, fields)
    empty = {f.name: pd.arrays.ArrowExtensionArray(pa.nulls(len(labels), f.type)) for f in fields}
    whole, whole_names = labels_table(labels, empty)
    assert schema == whole.schema and schema.metadata == whole.schema.metadata and names == whole_names
    assert table.equals(whole.drop_columns([f.name for f in fields]))
