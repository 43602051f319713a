"""Identical requests within a frame go out once and fan out to every row that asked; cost counted once."""

from __future__ import annotations

import pandas as pd
from helpers import remote_batches, submit, values

import batchframe


def _paid(service) -> int:
    return sum(sum(b["request_counts"].values()) for b in remote_batches(service))


def test_ten_rows_with_five_distinct_prompts_pay_five(service):
    df = pd.DataFrame({"q": [f"prompt {i % 5}" for i in range(10)]}, index=[f"k{i}" for i in range(10)])
    job = submit(df, service, name="dupes")
    status = job.wait(poll_interval=0.05, timeout=60)
    assert _paid(service) == 5 and status.n_reused == 5
    merged = df.batch.merge(job)
    assert values(merged["llm_text"]) == df["q"].tolist() and set(merged["llm_status"]) == {"succeeded"}
    assert merged["llm_reused"].tolist() == [False] * 5 + [True] * 5
    assert (merged["llm_custom_id"].iloc[5:].tolist() == merged["llm_custom_id"].iloc[:5].tolist())
    assert batchframe.jobs().set_index("name").loc["dupes", "reused"] == 5
    assert "reused (identical request, sent once): 5" in batchframe.to_text(job.status)


def test_dedupe_false_sends_every_row(service):
    df = pd.DataFrame({"q": ["same"] * 4})
    job = submit(df, service, dedupe=False)
    job.wait(poll_interval=0.05, timeout=60)
    assert _paid(service) == 4 and not df.batch.merge(job)["llm_reused"].any()


def test_a_retry_of_a_shared_request_answers_every_row_that_asked(service_factory):
    from batchframe.server import Faults

    service = service_factory(faults=Faults(request_error_rate=1.0, request_error_type="api_error", seed=2))
    df = pd.DataFrame({"q": ["a", "b", "a", "b", "a"]})
    job = submit(df, service)
    job.wait(poll_interval=0.05, timeout=60)
    assert set(df.batch.merge(job)["llm_status"]) == {"errored"}
    service.set_faults(Faults())
    assert job.retry() == 2  # the two distinct requests, not the five rows
    job.wait(poll_interval=0.05, timeout=60)
    merged = df.batch.merge(job)
    assert values(merged["llm_text"]) == df["q"].tolist() and set(merged["llm_status"]) == {"succeeded"}
    assert _paid(service) == 4


def test_the_job_fingerprint_covers_every_row_so_an_older_job_is_found_again(service):
    from batchframe.providers.anthropic.codec import encode_lines
    from batchframe.requests.build import build_requests
    from batchframe.requests.fingerprint import fingerprint

    df = pd.DataFrame({"q": ["x", "y", "x"]})
    job = submit(df, service)
    rs = build_requests(df, prompt="q", model="claude-haiku-4-5", max_tokens=64)
    # the definition jobs were stored with before dedupe: every row's line, duplicates included
    assert job.manifest["fingerprint"] == fingerprint(f"anthropic:{service.base_url}",
                                                      encode_lines(rs.custom_ids, rs.params))
    assert submit(df, service).name == job.name and _paid(service) == 2


def test_first_by_key_agrees_with_the_plain_dict_on_either_path():
    import hashlib

    import numpy as np

    from batchframe.requests.keys import digest_keys, first_by_key, first_occurrences

    # Real digests (first halves distinct): the hash path. Keys sharing a first half: the exact sort.
    digests = [hashlib.blake2b(b"%d" % (i % 7), digest_size=16).digest() for i in range(40)]
    assert first_by_key(digest_keys(digests)).tolist() == first_occurrences(digests).tolist()
    assert first_by_key(digest_keys(digests)).tolist()[:9] == [0, 1, 2, 3, 4, 5, 6, 0, 1]
    halves = np.array([[5, 1], [5, 2], [5, 1], [2, 9], [5, 2]], np.uint64)
    assert first_by_key(halves).tolist() == [0, 1, 0, 3, 1]
    rng = np.random.default_rng(0)
    for n in (1, 7, 500):
        keys = rng.integers(0, 3, (n, 2)).astype(np.uint64)
        assert first_by_key(keys).tolist() == first_occurrences([k.tobytes() for k in keys]).tolist()
