"""Value objects describing where a job stands. The state source (Job) is separate from its renderers
(text, tqdm, widget), which read only these objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

#: Row states of the result schema. ``pending`` = sent, not ended; ``skipped`` = never sent (empty prompt).
ROW_STATES = ("succeeded", "errored", "canceled", "expired", "pending", "skipped")
#: The request_counts keys of a remote batch.
COUNT_KEYS = ("processing", "succeeded", "errored", "canceled", "expired")


def empty_counts() -> dict[str, int]:
    return dict.fromkeys(COUNT_KEYS, 0)


@dataclass(frozen=True)
class ShardStatus:
    """One remote batch of a job."""

    index: int
    attempt: int
    batch_id: str | None  # None until the provider accepted it
    processing_status: str  # "unsent" | "in_progress" | "canceling" | "ended"
    counts: dict[str, int] = field(default_factory=empty_counts)
    n_requests: int = 0
    created_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def done(self) -> int:
        return self.n_requests - self.counts.get("processing", 0)


@dataclass(frozen=True)
class JobStatus:
    """A snapshot of a whole job: counts summed over its shards.

    ``state`` is ``"in_progress"`` while any shard runs, ``"canceling"`` while any is canceling and none
    runs, and ``"ended"`` once every shard has ended.
    """

    name: str
    provider: str
    model: str
    state: str
    shards: tuple[ShardStatus, ...]
    n_rows: int
    n_skipped: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    created_at: datetime | None = None
    ended_at: datetime | None = None
    #: Source rows per ROW_STATES at their latest attempt, when a reader computed them from the store (a job
    #: with retries: summing shard counts over attempts would count a retried row twice). None otherwise.
    row_counts: dict[str, int] | None = None

    @property
    def counts(self) -> dict[str, int]:
        total = empty_counts()
        for shard in self.shards:
            for key in COUNT_KEYS:
                total[key] += shard.counts.get(key, 0)
        return total

    @property
    def retried(self) -> bool:
        """True when the job has more than one attempt (a retry)."""
        return len({shard.attempt for shard in self.shards}) > 1

    @property
    def row_outcomes(self) -> dict[str, int]:
        """Counts by COUNT_KEYS of the rows sent, each row once at its latest attempt.

        Without retries these are the shard counts. With retries they come from ``row_counts`` (a row
        still pending counts as ``processing``); summing shards would count a retried row per attempt.
        """
        if not self.retried or self.row_counts is None:
            return self.counts
        rows = {key: self.row_counts.get(key, 0) for key in COUNT_KEYS if key != "processing"}
        return {"processing": self.row_counts.get("pending", 0), **rows}

    @property
    def ended(self) -> bool:
        return self.state == "ended"
