"""``ddf.batch`` on a real distributed cluster: two worker processes (not threads) on 127.0.0.1, against the
local service running in this process (only the driver, this process, talks to it and to the job store)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

dd = pytest.importorskip("dask.dataframe", reason="the dask extra: pip install 'batchframe[dask]'")
distributed = pytest.importorskip("distributed")

import batchframe  # noqa: E402
from batchframe.dask.rows import PARTITIONS  # noqa: E402
from batchframe.jobs.bodies import read_bodies  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "core"))
from helpers import FAST, KEY, remote_batches  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    # dask's read_parquet calls a pandas API that pandas 3.1 deprecates: a notice about dask, not our code.
    pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame:Warning"),
]


@pytest.fixture(scope="module")
def client():
    """One cluster for the module (it takes a few seconds to start): 2 worker processes, 1 thread each; its
    scheduler's HTTP server on a free loopback port (8787 may be taken by another run on the machine)."""
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address="127.0.0.1:0") as cluster, distributed.Client(cluster) as client:
        yield client


def frame(n: int, *, seed: int = 0) -> pd.DataFrame:
    """``n`` rows with distinct prompts (the echo engine answers each with its own text), a shuffled string index."""
    labels = np.random.default_rng(seed).permutation(n)
    return pd.DataFrame({"q": [f"row {i} says {i * 7 % 1000}" for i in range(n)], "other": np.arange(n)},
                        index=pd.Index([f"id-{k:06d}" for k in labels], name="key"))


def args(service, **extra):
    return {"prompt": "q", "model": "claude-haiku-4-5", "max_tokens": 64, "provider": "anthropic", "api_key": KEY,
            "base_url": service.base_url, "retry": FAST, **extra}


def test_20000_rows_in_8_partitions_every_row_right_by_label_and_a_rerun_pays_nothing(client, service):
    df = frame(20_000)
    ddf = dd.from_pandas(df, npartitions=8, sort=False)
    assert ddf.npartitions == 8
    job = ddf.batch.submit(name="big", max_batch_requests=6_000, **args(service))
    job.wait(poll_interval=0.2, timeout=120)
    assert job.manifest[PARTITIONS] == [2_500] * 8
    shards = job.manifest["attempts"][0]["shards"]
    assert [s["n_requests"] for s in shards] == [6_000, 6_000, 6_000, 2_000]  # cut across partition boundaries
    merged = ddf.batch.merge(job)
    assert isinstance(merged, dd.DataFrame)
    out = merged.compute()
    assert out.index.equals(ddf.index.compute())
    by_label = out.loc[df.index]
    assert (by_label["llm_status"] == "succeeded").all()
    assert (by_label["llm_text"] == df["q"]).all()  # every row its own answer, by label
    ids = by_label["llm_custom_id"].str.slice(1).astype(int).to_numpy()
    assert sorted(ids) == list(range(20_000))  # row keys are global positions
    # The same columns, dtypes and values as the pandas accessor on the same rows.
    pd.testing.assert_frame_equal(out, ddf.compute().batch.merge(job))
    paid = len(remote_batches(service))
    assert paid == 4
    again = ddf.batch.submit(name="big", max_batch_requests=6_000, **args(service))
    other_partitions = dd.from_pandas(df, npartitions=5, sort=False).batch.submit(**args(service))
    assert again.name == "big" and len(remote_batches(service)) == paid  # a re-run pays nothing
    other_partitions.wait(poll_interval=0.2, timeout=60)
    assert len(remote_batches(service)) == paid  # repartitioned: the same requests, nothing paid
    shuffled = dd.from_pandas(df.sample(frac=1, random_state=1), npartitions=3, sort=False)
    out2 = shuffled.batch.merge(job).compute()
    assert (out2.loc[df.index, "llm_text"] == df["q"]).all()  # other partitions, other order: by label


def test_partitioned_parquet_round_trips_the_index(client, service, tmp_path):
    df = frame(4_000, seed=3)
    df.loc[df.index[::10], "q"] = None  # skipped rows keep their place
    ddf = dd.from_pandas(df, npartitions=4, sort=False)
    job = ddf.batch.submit(name="pq", **args(service))
    job.wait(poll_interval=0.2, timeout=60)
    files = ddf.batch.to_parquet(tmp_path / "out", job)
    assert [f.name for f in files] == [f"part.{k:05d}.parquet" for k in range(4)]
    meta = batchframe.table_metadata(files[2])
    assert meta["job"] == "pq" and meta["partition"] == 2 and meta["batch_ids"] == job.batch_ids()
    back = dd.read_parquet(tmp_path / "out")
    assert back.npartitions == 4
    got = back.compute()
    assert got.index.name == "key" and got.index.tolist() == df.index.tolist()
    assert got["llm_status"].value_counts().to_dict() == {"succeeded": 3_600, "skipped": 400}
    assert (got["llm_text"].dropna() == df["q"].dropna()).all()


@pytest.mark.parametrize("dies_at", [1, 2], ids=["while-counting", "while-staging"])
def test_a_worker_killed_mid_build_pays_once(client, service, tmp_path, dies_at):
    seen, marker = tmp_path / "seen", tmp_path / "killed"

    def die_once(part, partition_info=None):
        # The `dies_at`-th time partition 2 is computed (1: the pass that counts the rows, 2: the pass that
        # stages the lines), its worker process dies; the nanny starts a new one and the scheduler computes the
        # partition again elsewhere.
        if partition_info and partition_info["number"] == 2:
            with seen.open("a") as f:
                f.write("x")
            if len(seen.read_text()) == dies_at and not marker.exists():
                marker.write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
        return part

    df = frame(3_000, seed=5)
    source = dd.from_pandas(df, npartitions=6, sort=False)
    ddf = source.map_partitions(die_once, meta=source)
    job = ddf.batch.submit(name="killed", **args(service))
    assert marker.exists()  # a worker did die, mid-build
    job.wait(poll_interval=0.2, timeout=60)
    assert len(remote_batches(service)) == 1  # one batch: nothing sent twice
    assert job.status.n_rows == 3_000 and job.status.counts["succeeded"] == 3_000
    out = source.batch.merge(job).compute()
    assert (out.loc[df.index, "llm_text"] == df["q"]).all()
    client.wait_for_workers(2, timeout=60)  # the cluster recovered for the next tests


def test_estimate_and_budget_usd_on_dask_frames(client, service, monkeypatch):
    import batchframe.dask.submit as submitting
    from batchframe.dask.stage import STAGING

    df = frame(2_000, seed=7)
    df.loc[df.index[::9], "q"] = None  # skipped
    df.loc[df.index[1::10], "q"] = "the same question"  # sent once for each max_tokens it is asked with
    df["mt"] = np.arange(len(df)) % 50 + 16  # max_tokens per row
    ddf = dd.from_pandas(df, npartitions=4, sort=False)
    local = {"prompt": "q", "model": "claude-haiku-4-5", "max_tokens": batchframe.col("mt"), "provider": "local",
             "base_url": service.base_url, "retry": FAST}  # a local job is priced as the model it names
    fetched = []

    def fetch_params(folder, staged, at, codec):  # the only request bodies the driver reads: those counted
        fetched.append(len(at))
        return real_fetch(folder, staged, at, codec)

    def no_persist(*args, **kwargs):
        raise AssertionError("an estimate stores nothing")

    real_fetch = submitting.fetch_params
    monkeypatch.setattr(submitting, "fetch_params", fetch_params)
    with monkeypatch.context() as m:
        m.setattr(submitting, "_persist", no_persist)
        est = ddf.batch.estimate(max_batch_requests=700, **local)
    pandas_est = df.batch.estimate(max_batch_requests=700, **local)
    assert not est.input_exact and sum(fetched) == est.n_counted < est.n_requests  # a sample, not every body
    for key in ("n_rows", "n_requests", "n_skipped", "n_reused", "n_in_ledger", "input_tokens", "input_error_bound",
                "n_counted", "max_output_tokens", "expected_output_tokens", "worst_case_usd", "expected_usd"):
        assert getattr(est, key) == getattr(pandas_est, key), key
    assert est.shards == pandas_est.shards and est.n_shards == 3
    cached = {**local, "system": "You answer briefly. " * 300, "cache": "auto"}  # a long shared prefix
    est_cached, pandas_cached = ddf.batch.estimate(**cached), df.batch.estimate(**cached)
    assert est_cached.cache_prefix_tokens == pandas_cached.cache_prefix_tokens > 0
    assert (est_cached.expected_usd, est_cached.worst_case_usd) == (pandas_cached.expected_usd,
                                                                     pandas_cached.worst_case_usd)
    # OpenAI lines carry the chat-completions body lowered from the params; the count reads the params, as pandas.
    openai = {**local, "provider": "openai", "model": "gpt-4.1-mini", "api_key": "sk-test-dask",
              "base_url": f"{service.base_url}/v1"}
    est_openai, pandas_openai = ddf.batch.estimate(**openai), df.batch.estimate(**openai)
    assert est_openai.n_counted < est_openai.n_requests
    for key in ("n_requests", "input_tokens", "input_error_bound", "worst_case_usd", "expected_usd"):
        assert getattr(est_openai, key) == getattr(pandas_openai, key), key
    store = batchframe.Store(os.environ["BATCHFRAME_STORE"])
    assert store.names() == [] and not any((store.root / STAGING).iterdir())  # nothing stored, nothing left
    with pytest.raises(batchframe.BudgetError, match="over budget_usd") as info:
        ddf.batch.submit(name="capped", budget_usd=est.worst_case_usd / 10, **local)
    assert info.value.worst_case_usd == pytest.approx(est.worst_case_usd)
    assert remote_batches(service) == [] and store.names() == []  # refused before anything was created
    job = ddf.batch.submit(name="waves", budget_usd=est.worst_case_usd * 2, max_in_flight=700, **local)
    shards = job.manifest["attempts"][0]["shards"]
    assert est.n_requests == 1_604 and [s["n_requests"] for s in shards] == [700, 700, 204]
    assert sum(s["worst_usd"] for s in shards) == pytest.approx(est.worst_case_usd)  # each shard's worst case
    assert len(remote_batches(service)) == 1  # the first wave only
    job.wait(poll_interval=0.2, timeout=60)
    assert len(remote_batches(service)) == 3
    want = df["q"].where(df["q"].notna())
    out = ddf.batch.merge(job).compute().loc[df.index, "llm_text"]
    assert (out.dropna() == want.dropna()).all() and out.isna().sum() == want.isna().sum()


def test_embed_on_the_workers_merges_every_vector_by_label_and_pays_once(client, service):
    import httpx

    key = "sk-openai-test-0123456789"

    def openai(method, path, **kwargs):
        with httpx.Client(base_url=f"{service.base_url}/v1", headers={"authorization": f"Bearer {key}"},
                          timeout=30) as c:
            return c.request(method, path, **kwargs).raise_for_status().json()

    def paid():
        return sum(b["request_counts"]["total"] for b in openai("GET", "/batches", params={"limit": 100})["data"])

    n = 600
    df = frame(n, seed=11)
    df["text"] = [f"item {i % 250} is {i % 250 * 3 % 7}" for i in range(n)]  # 250 distinct texts
    df.loc[df.index[::50], "text"] = None  # skipped rows keep their place
    ddf = dd.from_pandas(df, npartitions=4, sort=False)
    options = {"model": "text-embedding-3-small", "dimensions": 8, "provider": "openai", "api_key": key,
               "base_url": f"{service.base_url}/v1", "retry": FAST}
    job = ddf.batch.embed("text", name="vectors", max_batch_requests=200, **options)
    job.wait(poll_interval=0.2, timeout=120)
    sent = df["text"].dropna().drop_duplicates()
    assert paid() == len(sent) and len(job.batch_ids()) == 2  # identical texts sent once, shards of <= 200
    merged = ddf.batch.merge(job)
    assert str(merged.dtypes["llm_embedding"]) == "list<item: float>[pyarrow]"
    out = merged.compute().loc[df.index]
    assert out["llm_status"].tolist() == ["skipped" if pd.isna(t) else "succeeded" for t in df["text"]]
    assert out.loc[df["text"].isna(), "llm_embedding"].isna().all()
    for label in [*df.index[1:6], df.index[-1], sent.index[-1]]:  # a value asked of the service itself, by label
        want = openai("POST", "/embeddings", json={"model": "text-embedding-3-small", "dimensions": 8,
                                                    "input": df.loc[label, "text"]})["data"][0]["embedding"]
        assert np.allclose(out.loc[label, "llm_embedding"], want, atol=1e-6)
    by_text = out.dropna(subset=["text"]).groupby("text")["llm_embedding"].agg(lambda v: len({tuple(x) for x in v}))
    assert (by_text == 1).all()  # rows of the same text share one vector, whatever partition they are in
    assert out["llm_reused"].sum() == df["text"].notna().sum() - len(sent)
    pd.testing.assert_frame_equal(merged.compute(), ddf.compute().batch.merge(job))  # as the pandas merge
    again = ddf.batch.embed("text", name="vectors", max_batch_requests=200, **options)
    assert again.name == "vectors" and paid() == len(sent)  # a re-run pays nothing
    with pytest.raises(batchframe.ConfigError, match="no batch embeddings API"):
        ddf.batch.embed("text", provider="anthropic", api_key=KEY, base_url=service.base_url)


def test_the_requests_file_is_the_pandas_submits_and_no_staging_file_is_left(client, service, tmp_path):
    import pyarrow.parquet as pq

    from batchframe.dask.stage import STAGING

    df = frame(3_000, seed=13)
    df.loc[df.index[::7], "q"] = ""  # skipped
    df.loc[df.index[1::5], "q"] = "the same question"  # identical requests across partitions: sent once
    ddf = dd.from_pandas(df, npartitions=5, sort=False)
    on_dask = ddf.batch.submit(name="on-dask", max_batch_requests=700, store=tmp_path / "a", **args(service))
    on_pandas = df.batch.submit(name="on-pandas", max_batch_requests=700, store=tmp_path / "b", **args(service))
    dask_rows = pq.read_table(on_dask.store.requests_path("on-dask"))
    pandas_rows = pq.read_table(on_pandas.store.requests_path("on-pandas"))
    # Dask keeps the lines in the requests file; pandas beside it (jobs.bodies): the same lines either way.
    assert read_bodies(on_dask.store, "on-dask") == read_bodies(on_pandas.store, "on-pandas")
    where = {"line_start", "line_size"}
    assert [c for c in dask_rows.schema.names if c != "body"] == [c for c in pandas_rows.schema.names if c not in where]
    for column in dask_rows.schema.names:  # the same rows, shards, digests and hashes, column by column
        if column != "body":
            assert dask_rows.column(column).equals(pandas_rows.column(column)), column
    assert dask_rows.to_pandas().index.equals(pandas_rows.to_pandas().index)
    rows = pandas_rows.to_pandas()
    sent = rows[rows["same_as"] >= 0]
    carrier = rows["request_digest"].to_numpy()[sent["same_as"].to_numpy()]
    assert (sent["request_digest"].to_numpy() == carrier).all()  # a reused row has its carrier's digest
    a, b = on_dask.manifest, on_pandas.manifest
    for key in ("n_rows", "n_skipped", "n_reused", "n_linked", "limits", "request"):
        assert a[key] == b[key], key
    assert [(s["n_requests"], s["n_bytes"]) for s in a["attempts"][0]["shards"]] == [
        (s["n_requests"], s["n_bytes"]) for s in b["attempts"][0]["shards"]]
    assert a["fingerprint"] != b["fingerprint"]  # a Dask job's fingerprint is over its partitions' hashes
    assert not any((tmp_path / "a" / STAGING).iterdir())  # the workers' staging files are gone
    on_dask.wait(poll_interval=0.2, timeout=60)
    out = ddf.batch.merge(on_dask).compute().loc[df.index]
    want = df["q"].where(df["q"] != "")
    assert (out["llm_text"].dropna() == want.dropna()).all() and out["llm_text"].isna().sum() == want.isna().sum()


def test_bad_input_on_a_worker_names_column_label_and_value_and_sends_nothing(client, service, tmp_path):
    from batchframe.dask.stage import STAGING

    df = frame(1_000, seed=17)
    df["mt"] = 32
    df.loc[df.index[900], "mt"] = -3  # in the last partition only: the driver's first-row check passes
    ddf = dd.from_pandas(df, npartitions=4, sort=False)
    with pytest.raises(batchframe.InputError) as info:
        ddf.batch.submit(name="bad", store=tmp_path, **{**args(service), "max_tokens": batchframe.col("mt")})
    assert all(part in str(info.value) for part in ("'mt'", repr(df.index[900]), "-3")), str(info.value)
    assert remote_batches(service) == [] and not batchframe.Store(tmp_path).exists("bad")
    assert not any((tmp_path / STAGING).iterdir())
    with pytest.raises(batchframe.InputError, match="no row to send"):
        dd.from_pandas(df.assign(q=""), npartitions=2, sort=False).batch.submit(store=tmp_path, **args(service))

    def relabel(part, partition_info=None):  # labels of another type in each partition
        number = partition_info["number"] if partition_info else 0
        labels = range(len(part)) if number == 0 else [f"s{i}" for i in range(len(part))]
        return part.set_axis(pd.Index(labels))

    source = dd.from_pandas(df.iloc[:8], npartitions=2, sort=False)
    with pytest.raises(batchframe.InputError, match="index has values of another type in partition 1"):
        source.map_partitions(relabel, meta=source).batch.submit(store=tmp_path, **args(service))
    assert remote_batches(service) == [] and batchframe.Store(tmp_path).names() == []


def test_empty_partitions_the_first_one_too_keep_every_row_in_place(client, service):
    df = frame(2_000, seed=19)
    ddf = dd.from_pandas(df, npartitions=5, sort=False)
    keep = ddf[(ddf.other >= 400) & ((ddf.other < 1_200) | (ddf.other >= 1_600))]  # partitions 0 and 3 empty
    job = keep.batch.submit(name="gaps", max_batch_requests=500, **args(service))
    assert job.manifest[PARTITIONS] == [0, 400, 400, 0, 400]
    assert [s["n_requests"] for s in job.manifest["attempts"][0]["shards"]] == [500, 500, 200]
    job.wait(poll_interval=0.2, timeout=60)
    out = keep.batch.merge(job).compute()
    want = df.drop(df.index[:400]).drop(df.index[1_200:1_600])
    assert out.index.equals(want.index) and (out["llm_text"] == want["q"]).all()
    assert len(remote_batches(service)) == 3


def test_max_in_flight_sends_in_waves_without_a_budget(client, service):
    df = frame(2_000, seed=23)
    ddf = dd.from_pandas(df, npartitions=3, sort=False)
    job = ddf.batch.submit(name="waves-only", max_in_flight=800, **args(service))
    assert [s["n_requests"] for s in job.manifest["attempts"][0]["shards"]] == [800, 800, 400]
    assert len(remote_batches(service)) == 1  # the first wave only
    job.wait(poll_interval=0.2, timeout=60)
    assert len(remote_batches(service)) == 3
    assert (ddf.batch.merge(job).compute().loc[df.index, "llm_text"] == df["q"]).all()
