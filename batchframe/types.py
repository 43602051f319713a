"""Value objects describing where a job stands, shared by every layer. The state source (a Job) is separate
from its renderers (text, tqdm, widget), which read only these objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

#: Row states of a job's results. ``pending`` = sent, not ended; ``skipped`` = never sent (empty prompt).
#: A merge adds ``stale`` (changed since submit) and ``not_submitted`` (a label the job does not know).
ROW_STATES = ("succeeded", "errored", "canceled", "expired", "pending", "skipped")
#: Request counts of a remote batch, by state (the same for every provider).
COUNT_KEYS = ("processing", "succeeded", "errored", "canceled", "expired")


def empty_counts() -> dict[str, int]:
    """Zero for every key of COUNT_KEYS.

    Examples
    --------
    >>> empty_counts()["succeeded"]
    0
    """
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
    #: The shard's local state (:class:`batchframe.jobs.states.ShardState` value): ``planned``, ``creating``,
    #: ``failed``, ``submitted``, ``ended`` or ``harvested``; None in a hand-made snapshot.
    local_state: str | None = None

    @property
    def done(self) -> int:
        return self.n_requests - self.counts.get("processing", 0)


@dataclass(frozen=True)
class JobStatus:
    """A snapshot of a whole job: its shards, and its rows counted once each.

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
    #: Rows whose request was identical to another row's: sent once, answered through it.
    n_reused: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    created_at: datetime | None = None
    ended_at: datetime | None = None
    #: Sent rows by COUNT_KEYS, each row once at its latest attempt (see :func:`batchframe.jobs.manifest.job_status`).
    #: None for a hand-made snapshot: then :attr:`counts` sums the shards.
    row_counts: dict[str, int] | None = None
    #: The job's cap (``budget_usd``), and the worst case of its shards sent and not yet harvested.
    budget_usd: float | None = None
    committed_usd: float | None = None
    #: Set when ``cost_usd`` is an estimate (a local job priced as the model it named), saying so.
    cost_basis: str | None = None
    #: For a job with a schema: answered requests by parse status (``ok``, ``truncated``, ...), each at its
    #: latest attempt; None for a job without one.
    parse_counts: dict[str, int] | None = None

    @property
    def parse_failures(self) -> int:
        """Answered requests whose JSON did not parse or validate (0 for a job without a schema).

        Examples
        --------
        >>> JobStatus("j", "local", "m", "ended", (), n_rows=3, parse_counts={"ok": 2, "truncated": 1}).parse_failures
        1
        """
        return sum(n for key, n in (self.parse_counts or {}).items() if key != "ok")

    @property
    def counts(self) -> dict[str, int]:
        """Rows sent, by state, each counted once at its latest attempt (a retried row is not counted twice).

        Examples
        --------
        >>> JobStatus("j", "local", "m", "ended", (), n_rows=2, row_counts={"succeeded": 2}).counts["succeeded"]
        2
        """
        total = empty_counts()
        if self.row_counts is not None:
            total.update({key: int(self.row_counts.get(key, 0)) for key in COUNT_KEYS})
            return total
        for shard in self.shards:
            for key in COUNT_KEYS:
                total[key] += shard.counts.get(key, 0)
        return total

    @property
    def ended(self) -> bool:
        return self.state == "ended"
