import threading
import time

import pytest

from batchframe.jobs.polling import Backoff
from batchframe.progress.monitor import Monitor, live_monitors

from .helpers import Scripted, job_status, shard

FAST = Backoff(initial=0.01, factor=2, maximum=0.05)


def test_backoff_grows_to_its_cap():
    assert Backoff(initial=1, factor=2, maximum=5).intervals(5) == [1, 2, 4, 5, 5]
    with pytest.raises(ValueError):
        Backoff(initial=0)


def test_stops_by_itself_when_the_job_ends():
    running = job_status(shard(0, n=4, processing=4))
    half = job_status(shard(0, n=4, processing=2))
    ended = job_status(shard(0, n=4, errored=1))
    source, seen, stops = Scripted([running, half, ended]), [], []
    m = Monitor(source, on_update=seen.append, on_stop=stops.append, backoff=FAST).start()
    assert m.join(timeout=5)
    assert seen == [running, half, ended]
    assert stops == ["ended"] and m.stop_reason == "ended" and source.calls == 3
    assert m not in live_monitors()


def test_close_stops_a_long_wait_at_once():
    source = Scripted([job_status(shard(0, n=4, processing=4))])
    m = Monitor(source, on_update=lambda s: None, backoff=Backoff(initial=3600, maximum=3600)).start()
    time.sleep(0.05)
    assert m.running and m in live_monitors()
    t = time.monotonic()
    m.close()
    assert not m.running and time.monotonic() - t < 1
    assert m.stop_reason == "closed" and source.calls == 1


def test_poke_polls_now():
    source = Scripted([job_status(shard(0, n=4, processing=4))])
    m = Monitor(source, on_update=lambda s: None, backoff=Backoff(initial=3600, maximum=3600)).start()
    try:
        deadline = time.monotonic() + 5
        while source.calls < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        m.poke()
        while source.calls < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert source.calls == 2
    finally:
        m.close()


def test_errors_are_reported_then_polling_resumes():
    ended = job_status(shard(0, n=2))
    source, errors = Scripted([ended], fail_first=2), []
    m = Monitor(source, on_update=lambda s: None, on_error=errors.append, backoff=FAST).start()
    assert m.join(timeout=5)
    assert [type(e) for e in errors] == [ConnectionError, ConnectionError]
    assert m.stop_reason == "ended" and m.last_error is None


def test_bounded_by_consecutive_errors_and_by_time():
    m = Monitor(Scripted([], fail_first=10**6), on_update=lambda s: None, backoff=FAST, max_errors=3).start()
    assert m.join(timeout=5) and m.stop_reason == "errors" and m.polls == 3
    running = job_status(shard(0, n=4, processing=4))
    m = Monitor(Scripted([running]), on_update=lambda s: None, backoff=FAST, max_seconds=0.2).start()
    assert m.join(timeout=5) and m.stop_reason == "timeout"


def test_does_not_hold_the_caller():
    """start() returns at once although every poll takes a while (a slow provider)."""
    gate = threading.Event()

    class Slow:
        def refresh(self):
            gate.wait(5)
            return job_status(shard(0, n=1))

    t = time.monotonic()
    m = Monitor(Slow(), on_update=lambda s: None, backoff=FAST).start()
    assert time.monotonic() - t < 0.5 and m.running
    gate.set()
    assert m.join(timeout=5) and m.stop_reason == "ended"


def test_started_once():
    m = Monitor(Scripted([job_status(shard(0, n=1))]), on_update=lambda s: None, backoff=FAST).start()
    with pytest.raises(RuntimeError):
        m.start()
    m.join(5)


def test_a_failing_renderer_stops_the_monitor_without_a_traceback():
    def broken(status):
        raise RuntimeError("renderer bug")

    caught = []
    previous, threading.excepthook = threading.excepthook, caught.append
    try:
        source = Scripted([job_status(shard(0, n=2, processing=2))])
        m = Monitor(source, on_update=broken, backoff=FAST).start()
        assert m.join(timeout=5)
    finally:
        threading.excepthook = previous
    assert m.stop_reason == "error" and str(m.last_error) == "renderer bug"
    assert caught == [] and m not in live_monitors()
