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
    """One cluster for the module (it takes a few seconds to start): 2 worker processes, 1 thread each."""
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
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


def test_a_worker_killed_mid_build_pays_once(client, service, tmp_path):
    marker = tmp_path / "killed"

    def die_once(part, partition_info=None):
        # The first time partition 2 is built, its worker process dies (the nanny starts a new one and the
        # scheduler builds the partition again elsewhere).
        if partition_info and partition_info["number"] == 2 and not marker.exists():
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
    assert job.status.n_rows == 3_000
    out = source.batch.merge(job).compute()
    assert (out.loc[df.index, "llm_text"] == df["q"]).all()
    client.wait_for_workers(2, timeout=60)  # the cluster recovered for the next tests


def test_estimate_and_budget_usd_on_dask_frames(client, service):
    df = frame(2_000, seed=7)
    ddf = dd.from_pandas(df, npartitions=4, sort=False)
    local = {"prompt": "q", "model": "claude-haiku-4-5", "max_tokens": 64, "provider": "local",
             "base_url": service.base_url, "retry": FAST}  # a local job is priced as the model it names
    est = ddf.batch.estimate(**local)
    pandas_est = df.batch.estimate(**local)
    assert (est.n_rows, est.n_requests, est.n_shards) == (2_000, 2_000, 1)
    assert (est.input_tokens, est.worst_case_usd) == (pandas_est.input_tokens, pandas_est.worst_case_usd)
    with pytest.raises(batchframe.BudgetError):
        ddf.batch.submit(name="capped", budget_usd=est.worst_case_usd / 10, **local)
    assert remote_batches(service) == []  # refused before anything was created
    job = ddf.batch.submit(name="waves", budget_usd=est.worst_case_usd * 2, max_in_flight=800, **local)
    assert [s["n_requests"] for s in job.manifest["attempts"][0]["shards"]] == [800, 800, 400]
    assert len(remote_batches(service)) == 1  # the first wave only
    job.wait(poll_interval=0.2, timeout=60)
    assert len(remote_batches(service)) == 3
    assert (ddf.batch.merge(job).compute().loc[df.index, "llm_text"] == df["q"]).all()
