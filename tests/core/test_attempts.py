"""A new attempt resends chosen rows as new shards of the same job; merging takes the latest attempt."""

import pandas as pd
from helpers import remote_batches, submit, values

from batchframe.attempts import plan_attempt
from batchframe.server import Faults


def test_an_attempt_resends_only_the_chosen_rows_and_the_latest_result_wins(service_factory):
    service = service_factory(faults=Faults(request_error_rate=0.4, request_error_type="api_error", seed=11))
    df = pd.DataFrame({"q": [f"question {i}" for i in range(30)] + [None]})
    job = submit(df, service)
    job.wait(poll_interval=0.05, timeout=60)
    first = job.results()
    failed = [i for i, s in enumerate(first["llm_status"]) if s == "errored"]
    assert failed
    service.set_faults(Faults())
    assert plan_attempt(job, failed, reason="errored") == 2
    assert job.status.state == "unsent" and len(remote_batches(service)) == 1
    job.send_unsent()
    batches = remote_batches(service)
    assert len(batches) == 2 and sum(batches[0]["request_counts"].values()) == len(failed)
    job.wait(poll_interval=0.05, timeout=60)
    merged = df.batch.merge(job)
    assert values(merged["llm_status"]) == ["succeeded"] * 30 + ["skipped"]
    assert (merged["llm_text"].iloc[:30] == merged["q"].iloc[:30]).all()
    assert sorted(i for i, a in enumerate(values(merged["llm_attempt"])) if a == 2) == failed
    assert set(merged["llm_custom_id"].iloc[failed]) == {f"r{i}-a2" for i in failed}
    assert plan_attempt(job, []) is None
