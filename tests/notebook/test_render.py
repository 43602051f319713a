from datetime import timedelta

from batchframe.progress.render import format_duration, summarize, to_html, to_text

from .helpers import T0, job_status, shard


def test_summary_counts_eta_and_elapsed():
    st = job_status(shard(0, n=10, processing=6), shard(1, n=10, processing=4, errored=1))
    s = summarize(st, now=T0 + timedelta(seconds=100))
    assert (s.total.total, s.total.done) == (20, 10)
    assert s.total.counts == {"processing": 10, "succeeded": 9, "errored": 1, "canceled": 0, "expired": 0}
    assert s.elapsed == 100.0
    assert s.eta == 100.0  # 10 done in 100 s, 10 left
    assert [b.done for b in s.shards] == [4, 6]
    assert s.total.outcome == "running"


def test_ended_outcomes_green_and_red():
    ok = summarize(job_status(shard(0, n=5), elapsed=30))
    bad = summarize(job_status(shard(0, n=5), shard(1, n=5, expired=2), elapsed=30))
    assert ok.total.outcome == "success" and ok.eta is None and ok.elapsed == 30.0
    assert bad.total.outcome == "failure"
    assert [b.outcome for b in bad.shards] == ["success", "failure"]


def test_eta_unknown_before_any_progress():
    st = job_status(shard(0, n=10, processing=10))
    assert summarize(st, now=T0 + timedelta(seconds=5)).eta is None


def test_text_shows_every_fact():
    st = job_status(shard(0, n=10, processing=3, errored=2), shard(1, n=10), input_tokens=1234,
                    output_tokens=56, cost_usd=0.0125)
    text = to_text(st, width=20, now=T0 + timedelta(seconds=65))
    lines = text.splitlines()
    assert lines[0] == "batch job 'reviews' · provider local · model claude-haiku-4-5 · in_progress"
    assert lines[1].startswith("total   [") and "17/20" in lines[1]
    assert "succeeded 15 · errored 2 · expired 0 · canceled 0 · processing 3" in lines[1]
    assert lines[2].startswith("shard 0 [##########EEEE......] 7/10  succeeded 5 · errored 2")
    assert lines[3].startswith("shard 1 [####################] 10/10  succeeded 10")
    assert lines[-1] == "elapsed 1m 05s · ETA 11s · tokens 1,234 in / 56 out · cost $0.0125"


def test_text_single_shard_has_one_bar():
    text = to_text(job_status(shard(0, n=4), elapsed=3), width=8)
    expected = "total [########] 4/4  succeeded 4 · errored 0 · expired 0 · canceled 0 · processing 0"
    assert text.splitlines()[1] == expected
    assert len(text.splitlines()) == 3


def test_html_has_state_counts_and_colours():
    st = job_status(shard(0, n=6, errored=1), shard(1, n=4), cost_usd=None)
    page = to_html(st)
    assert 'class="bf-job" data-state="ended" data-outcome="failure"' in page
    assert page.count('class="bf-row bf-row-shard"') == 2
    assert 'title="succeeded: 9"' in page and 'title="errored: 1"' in page
    assert "border:2px solid #c62828" in page  # red frame: a request failed
    assert "cost <b>—</b>" in page
    ok = to_html(job_status(shard(0, n=3)))
    assert 'data-outcome="success"' in ok and "border:2px solid #2e7d32" in ok


def test_html_escapes_names():
    page = to_html(job_status(shard(0, n=1), name="<script>x</script>"))
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_format_duration():
    got = [format_duration(x) for x in (None, 0, 59.6, 61, 3600 * 2 + 7 * 60)]
    assert got == ["—", "0s", "1m 00s", "1m 01s", "2h 07m"]


def test_total_counts_rows_once_across_retries():
    """Attempt 1: 39 canceled, 1 succeeded; attempt 2 retried the 39: the total is 40 rows, all succeeded."""
    from dataclasses import replace

    first = shard(0, n=40, canceled=39)
    retry = replace(shard(0, n=39), attempt=2)
    st = job_status(first, retry)
    assert summarize(st).total.counts["canceled"] == 39  # a hand-made snapshot: summed shard counts
    rows = {"processing": 0, "succeeded": 40, "errored": 0, "canceled": 0, "expired": 0}
    s = summarize(replace(st, row_counts=rows))
    assert (s.total.label, s.total.total, s.total.outcome) == ("total", 40, "success")
    assert [b.label for b in s.shards] == ["shard 0", "shard 0 (attempt 2)"]
    assert [b.outcome for b in s.shards] == ["failure", "success"]
