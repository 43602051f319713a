"""The streaming harvest (results parsed and written a block at a time) gives exactly what ingesting each
shard's results whole gives, and what the raw JSONL says, on a multi-shard job over the local service."""

import shutil
import time

import httpx
import orjson
import pandas as pd
import pyarrow.parquet as pq
from jobs_helpers import HEADERS, KEY, frame, service_batches, submit

import batchframe
from batchframe.jobs import harvest


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
