"""Submit -> wait -> merge against the local service over loopback HTTP."""

import asyncio

import numpy as np
import pandas as pd
import pytest
from helpers import KEY, raw_results, remote_batches, submit, values

import batchframe
from batchframe import table_metadata
from batchframe.jobs import polling

INDEXES = {
    "string": pd.Index(["first row", "zweite Zeile ü", "第三", "x/../y", "spaces  and\ttabs"], name="key"),
    "multi": pd.MultiIndex.from_tuples([("a", 1), ("a", 2), ("b", 1), ("b", 2), ("c", 9)], names=["grp", "n"]),
    "datetime": pd.date_range("2024-03-10 01:30", periods=5, freq="37min", tz="America/New_York", name="ts"),
}


@pytest.mark.parametrize("kind", sorted(INDEXES))
def test_round_trip_keeps_the_index_and_puts_each_answer_on_its_row(service, kind):
    index = INDEXES[kind]
    df = pd.DataFrame({"q": ["alpha one", None, "gamma\u2028three", "delta four", ""], "other": range(5)}, index=index)
    job = submit(df, service)
    status = job.wait(poll_interval=0.05, timeout=60)
    assert status.state == "ended" and status.counts["succeeded"] == 3 and status.n_skipped == 2
    merged = df.batch.merge(job)
    assert merged.index.equals(df.index) and list(merged.columns[:2]) == ["q", "other"]
    assert merged["llm_status"].tolist() == ["succeeded", "skipped", "succeeded", "succeeded", "skipped"]
    assert values(merged["llm_text"])[0::2] == ["alpha one", "gamma\u2028three", None]
    assert merged["llm_text"].iloc[3] == "delta four"
    assert values(merged["llm_custom_id"]) == ["r0", None, "r2", "r3", None]
    assert set(merged["llm_batch_id"].dropna()) == set(job.batch_ids())
    assert (merged["llm_input_tokens"].dropna() > 0).all() and merged["llm_model"].notna().sum() == 3
    assert isinstance(merged["llm_status"].dtype, pd.ArrowDtype)


def test_results_served_shuffled_land_on_the_right_rows(service):
    n = 300
    df = pd.DataFrame(
        {"q": [f"row number {i} says {i * 7}" for i in range(n)]},
        index=pd.Index([f"id-{i:04d}" for i in range(n)][::-1]),
    )
    job = submit(df, service)
    job.wait(poll_interval=0.05, timeout=60)
    order = raw_results(service, job.batch_ids()[0])
    assert order != sorted(order, key=lambda c: int(c[1:]))  # the service really shuffles
    merged = df.batch.merge(job)
    assert (merged["llm_text"] == merged["q"]).all()
    assert merged["llm_custom_id"].tolist() == [f"r{i}" for i in range(n)]


def test_rerunning_the_same_submit_creates_no_new_remote_batch(service):
    df = pd.DataFrame({"q": ["a", "b", "c"]})
    first = submit(df, service, max_batch_requests=2)
    assert len(remote_batches(service)) == 2
    again = submit(df, service, max_batch_requests=2)
    assert again.name == first.name and len(remote_batches(service)) == 2
    again.wait(poll_interval=0.05, timeout=60)
    submit(df, service, max_batch_requests=2).wait(poll_interval=0.05, timeout=60)
    assert len(remote_batches(service)) == 2
    paid_again = submit(df, service, max_batch_requests=2, new=True)
    assert paid_again.name != first.name and len(remote_batches(service)) == 4


def test_a_different_request_is_a_different_job(service):
    df = pd.DataFrame({"q": ["a"]})
    a, b = submit(df, service), submit(df, service, max_tokens=65)
    assert a.name != b.name and len(remote_batches(service)) == 2


def test_shards_by_request_count_and_merges_across_shards(service):
    df = pd.DataFrame({"q": [f"q{i}" for i in range(1001)]})
    job = submit(df, service, max_batch_requests=400)
    assert [s.n_requests for s in job.status.shards] == [400, 400, 201]
    assert len(remote_batches(service)) == 3
    job.wait(poll_interval=0.05, timeout=60)
    merged = df.batch.merge(job)
    assert (merged["llm_text"] == merged["q"]).all() and merged["llm_batch_id"].nunique() == 3


def test_bodies_over_the_byte_limit_shard_by_bytes(service):
    df = pd.DataFrame({"q": [f"{i} " + "word " * 400 for i in range(30)]})  # ~2 KB per body
    job = submit(df, service, max_batch_bytes=10_000)
    sizes = [s["n_bytes"] for s in job.manifest["attempts"][0]["shards"]]
    assert len(sizes) >= 6 and max(sizes) <= 10_000
    assert (
        sum(b["request_counts"]["processing"] + b["request_counts"]["succeeded"] for b in remote_batches(service)) == 30
    )
    job.wait(poll_interval=0.05, timeout=60)
    assert (df.batch.merge(job)["llm_status"] == "succeeded").all()


@pytest.mark.slow
def test_250001_rows_shard_into_3_batches(service_factory):
    service = service_factory(engine_options={"latency": 0.0})
    df = pd.DataFrame({"q": np.char.add("q", np.arange(250_001).astype(str)).astype(object)})
    job = submit(df, service, max_tokens=4)
    batches = remote_batches(service)
    assert sorted(sum(b["request_counts"].values()) for b in batches) == [50_001, 100_000, 100_000]
    assert [s.n_requests for s in job.status.shards] == [100_000, 100_000, 50_001]


def test_job_reopens_by_name_and_exports_parquet_with_metadata(service, tmp_path):
    df = pd.DataFrame({"q": ["a", "b"]}, index=pd.Index(["x", "y"], name="k"))
    job = submit(df, service)
    job.wait(poll_interval=0.05, timeout=60)
    again = batchframe.Job.open(job.name, api_key=KEY)
    assert again.status.state == "ended"
    pd.testing.assert_frame_equal(again.results(), job.results())
    out = tmp_path / "answers.parquet"
    df.batch.to_parquet(out, job)
    back = pd.read_parquet(out)
    assert back.index.equals(df.index) and back["llm_text"].tolist() == ["a", "b"]
    meta = table_metadata(out)
    assert meta["job"] == job.name and meta["batch_ids"] == job.batch_ids() and meta["model"] == "claude-haiku-4-5"
    shard_file = job.store.job_dir(job.name) / job.manifest["attempts"][0]["shards"][0]["results_file"]
    assert table_metadata(shard_file)["batch_ids"] == job.batch_ids()
    assert pd.read_parquet(shard_file).index.isin(df.index).all()


def test_wait_async(service):
    df = pd.DataFrame({"q": ["a", "b"]})
    job = submit(df, service)
    status = asyncio.run(job.wait_async(poll_interval=0.05, timeout=60))
    assert status.ended and job.results()["llm_status"].tolist() == ["succeeded", "succeeded"]


def test_wait_timeout_leaves_the_batch_running(service_factory):
    service = service_factory(engine_options={"latency": 2})
    job = submit(pd.DataFrame({"q": ["slow"]}), service)
    with pytest.raises(batchframe.JobTimeoutError, match="keep running"):
        job.wait(poll_interval=0.05, timeout=0.3)
    assert remote_batches(service)[0]["processing_status"] == "in_progress"
    assert job.results()["llm_status"].tolist() == ["pending"]


def test_ctrl_c_stops_waiting_without_canceling(service_factory, monkeypatch, capsys):
    service = service_factory(engine_options={"latency": 2})
    job = submit(pd.DataFrame({"q": ["slow"]}), service)

    def interrupt(_seconds):
        raise KeyboardInterrupt

    # Ctrl-C arrives while wait() sleeps. (`batchframe.jobs` is the public function: reach the module directly.)
    monkeypatch.setattr(polling, "_sleep", interrupt)
    with pytest.raises(KeyboardInterrupt):
        job.wait(poll_interval=0.05)
    assert "NOT canceled" in capsys.readouterr().err
    assert remote_batches(service)[0]["processing_status"] == "in_progress"


def test_cancel_marks_unfinished_rows_canceled(service_factory):
    service = service_factory(engine_options={"latency": 0.5}, workers=1)
    df = pd.DataFrame({"q": ["a", "b", "c", "d"]})
    job = submit(df, service)
    assert job.cancel().state in ("canceling", "ended")
    job.wait(poll_interval=0.05, timeout=60)
    statuses = job.results()["llm_status"]
    assert set(statuses) <= {"canceled", "succeeded"} and (statuses == "canceled").sum() >= 2


def test_tools_round_trip_into_the_tool_use_column(service):
    import json

    tools = [
        {
            "name": "label",
            "description": "Label the sentiment",
            "input_schema": {
                "type": "object",
                "properties": {"sentiment": {"type": "string"}},
                "required": ["sentiment"],
            },
        }
    ]
    df = pd.DataFrame({"q": ["great product", "awful"]}, index=["p1", "p2"])
    job = submit(df, service, tools=tools, tool_choice={"type": "tool", "name": "label"})
    job.wait(poll_interval=0.05, timeout=60)
    merged = df.batch.merge(job)
    assert merged["llm_stop_reason"].tolist() == ["tool_use", "tool_use"]
    assert all(isinstance(json.loads(v)["sentiment"], str) for v in merged["llm_tool_use"])


def test_documents_from_a_column_of_pdf_bytes_are_sent_as_blocks(service, tmp_path):
    pdf = tmp_path / "a.pdf"
    pdf.write_bytes(b"%PDF-1.4\n% fake pdf for the echo engine\n")
    df = pd.DataFrame({"doc": [str(pdf), pdf.read_bytes()]}, index=["path", "bytes"])
    preview = df.batch.requests(
        prompt="Summarize this document.", model="claude-haiku-4-5", max_tokens=20, documents="doc"
    )
    assert [b["type"] for b in preview.loc["bytes", "params"]["messages"][0]["content"]] == ["document", "text"]
    job = submit(df, service, prompt="Summarize this document.", documents="doc")
    job.wait(poll_interval=0.05, timeout=60)
    assert (job.results()["llm_status"] == "succeeded").all()


def test_two_concurrent_submits_of_the_same_frame_pay_once(service):
    from concurrent.futures import ThreadPoolExecutor

    df = pd.DataFrame({"q": [f"q{i}" for i in range(50)]})
    with ThreadPoolExecutor(2) as pool:
        names = list(pool.map(lambda _: submit(df, service, max_batch_requests=20).name, range(2)))
    assert names[0] == names[1] and len(remote_batches(service)) == 3


def test_betas_are_part_of_the_request_and_go_on_the_create_call(service):
    df = pd.DataFrame({"q": ["a"]})
    job = submit(df, service, betas=["structured-outputs-2025-11-13"])
    assert job.manifest["request"]["betas"] == ["structured-outputs-2025-11-13"]
    assert submit(df, service).name != job.name  # other betas, other requests
    job.wait(poll_interval=0.05, timeout=60)
    assert job.results()["llm_status"].tolist() == ["succeeded"]
    with pytest.raises(batchframe.InputError, match="betas"):
        submit(df, service, betas="structured-outputs-2025-11-13")


def test_the_create_call_carries_the_beta_header_and_version_but_the_key_only_as_x_api_key():
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen = []

    class Recorder(BaseHTTPRequestHandler):  # a real loopback server that records what the client sends
        def do_POST(self):  # noqa: N802
            seen.append(dict(self.headers))
            self.rfile.read(int(self.headers["content-length"]))
            body = json.dumps(
                {
                    "id": "msgbatch_rec1",
                    "type": "message_batch",
                    "processing_status": "in_progress",
                    "request_counts": {"processing": 1},
                    "created_at": "2026-01-01T00:00:00Z",
                }
            ).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        df = pd.DataFrame({"q": ["a"]})
        df.batch.submit(
            prompt="q",
            model="claude-haiku-4-5",
            max_tokens=5,
            provider="anthropic",
            api_key="sk-rec",
            base_url=f"http://127.0.0.1:{server.server_address[1]}",
            betas=["b-1", "b-2"],
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    headers = {k.lower(): v for k, v in seen[0].items()}
    assert headers["anthropic-beta"] == "b-1,b-2" and headers["anthropic-version"] == "2023-06-01"
    assert headers["x-api-key"] == "sk-rec" and "authorization" not in headers
    assert headers["content-type"] == "application/json"
