"""Status snapshots for the renderer and monitor unit tests (pure value objects; no network involved)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from batchframe.types import JobStatus, ShardStatus

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def shard(index, *, n, processing=0, errored=0, expired=0, canceled=0, state=None):
    succeeded = n - processing - errored - expired - canceled
    counts = {"processing": processing, "succeeded": succeeded, "errored": errored,
              "canceled": canceled, "expired": expired}
    state = state or ("ended" if processing == 0 else "in_progress")
    return ShardStatus(index=index, attempt=1, batch_id=f"msgbatch_{index}", processing_status=state,
                       counts=counts, n_requests=n, created_at=T0)


def job_status(*shards, state=None, elapsed=60.0, **kw):
    state = state or ("ended" if all(s.processing_status == "ended" for s in shards) else "in_progress")
    ended_at = T0 + timedelta(seconds=elapsed) if state == "ended" else None
    return JobStatus(name=kw.pop("name", "reviews"), provider="local", model="claude-haiku-4-5", state=state,
                     shards=tuple(shards), n_rows=sum(s.n_requests for s in shards), created_at=T0,
                     ended_at=ended_at, **kw)


class Scripted:
    """A state source that returns the given snapshots in turn (then the last one forever)."""

    def __init__(self, statuses, *, fail_first=0):
        self.statuses = list(statuses)
        self.calls = 0
        self.fail_first = fail_first

    def refresh(self):
        self.calls += 1
        if self.calls <= self.fail_first:
            raise ConnectionError("service unreachable")
        return self.statuses[min(self.calls - 1 - self.fail_first, len(self.statuses) - 1)]
