"""The job manifest: plain JSON that says what was planned, sent and harvested, written before and after
every network step; and the :class:`~batchframe.types.JobStatus` it describes.

Shape (format :data:`batchframe.jobs.migrations.FORMAT`)::

    {"format", "name", "provider", "identity", "base_url", "data_dir", "model", "fingerprint",
     "created_at", "updated_at", "n_rows", "n_skipped", "limits": {...}, "request": {...summary},
     "attempts": [{"attempt": 1, "created_at", "reason", "n_requests", "replaces": {...},
                   "shards": [ShardRecord, ...]}]}

Shard records and their states: :mod:`batchframe.jobs.states`. ``replaces`` (on a retry attempt) counts,
by their state in the previous attempt, the rows it resends; it is what lets :func:`job_status` count every
row once, at its latest attempt, from the manifest alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from batchframe.jobs.states import UNSENT, ShardRecord, ShardState, new_shard, state_of
from batchframe.providers.base import Codec
from batchframe.requests.shards import ShardLimits, plan_shards
from batchframe.types import COUNT_KEYS, JobStatus, ShardStatus, empty_counts


def now() -> str:
    """The current UTC time as RFC 3339 with microseconds.

    Examples
    --------
    >>> now().endswith("Z")
    True
    """
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def parse_time(value: str | None) -> datetime | None:
    """An RFC 3339 time (``Z`` allowed) as an aware datetime; None stays None.

    Examples
    --------
    >>> parse_time("2024-09-24T18:37:24.100435Z").year
    2024
    """
    return datetime.fromisoformat(value) if value else None


def iter_shards(manifest: dict[str, Any]) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(attempt, shard)`` pairs of every attempt, in order.

    Examples
    --------
    >>> [(a, s["index"]) for a, s in iter_shards({"attempts": [{"attempt": 1, "shards": [{"index": 0}]}]})]
    [(1, 0)]
    """
    for attempt in manifest["attempts"]:
        for shard in attempt["shards"]:
            yield attempt["attempt"], shard


def plan_shard_records(
    lines: Sequence[bytes], limits: ShardLimits, codec: Codec
) -> tuple[np.ndarray, list[ShardRecord]]:
    """Shards for request ``lines`` under ``limits``: each line's shard index, and the planned shard records.

    Examples
    --------
    >>> from batchframe.providers.anthropic import codec
    >>> shard_of, records = plan_shard_records([b"x" * 10] * 3, ShardLimits(max_requests=2), codec)
    >>> shard_of.tolist(), [(r["n_requests"], r["n_bytes"]) for r in records]
    ([0, 0, 1], [(2, 36), (1, 25)])
    """
    sizes = np.fromiter(map(len, lines), dtype=np.int64, count=len(lines))
    ranges = plan_shards(sizes, limits, envelope=codec.ENVELOPE_BYTES)
    shard_of = np.repeat(np.arange(len(ranges), dtype=np.int32), [stop - start for start, stop in ranges])
    records = [new_shard(i, stop - start, codec.body_size(sizes[start:stop])) for i, (start, stop) in enumerate(ranges)]
    return shard_of, records


def shard_status(attempt: int, shard: dict[str, Any]) -> ShardStatus:
    """A shard record as a :class:`ShardStatus` (``unsent`` while it has no remote batch).

    Examples
    --------
    >>> from batchframe.jobs.states import new_shard
    >>> shard_status(1, new_shard(0, 5, 100)).processing_status
    'unsent'
    """
    counts = shard.get("counts") or {**empty_counts(), "processing": shard["n_requests"]}
    remote = "unsent" if state_of(shard) in UNSENT else (shard.get("remote_state") or "in_progress")
    return ShardStatus(
        index=shard["index"],
        attempt=attempt,
        batch_id=shard.get("batch_id"),
        processing_status=remote,
        counts=dict(counts),
        n_requests=shard["n_requests"],
        created_at=parse_time(shard.get("created_at")),
        ended_at=parse_time(shard.get("ended_at")),
        local_state=shard["state"],
    )


def row_counts(manifest: dict[str, Any]) -> dict[str, int]:
    """Sent rows by :data:`~batchframe.types.COUNT_KEYS`, each counted once, at its latest attempt.

    A harvested shard counts its stored result lines (a request without a line is still ``processing``);
    any other shard counts what the provider last reported. Each retry attempt then takes back the rows it
    resends, by their state in the attempt before (its ``replaces``).

    Examples
    --------
    >>> m = {"attempts": [
    ...     {"attempt": 1, "shards": [{"n_requests": 4, "state": "harvested",
    ...                                "result_counts": {"succeeded": 2, "errored": 2}}]},
    ...     {"attempt": 2, "replaces": {"errored": 2}, "shards": [{"n_requests": 2, "state": "submitted",
    ...                                "counts": {"processing": 1, "succeeded": 1}}]}]}
    >>> row_counts(m)
    {'processing': 1, 'succeeded': 3, 'errored': 0, 'canceled': 0, 'expired': 0}
    """
    total = empty_counts()
    for attempt in manifest["attempts"]:
        for shard in attempt["shards"]:
            _add(total, _shard_rows(shard), 1)
        _add(total, attempt.get("replaces") or {}, -1)
    return total


def _shard_rows(shard: dict[str, Any]) -> dict[str, int]:
    if state_of(shard) is ShardState.HARVESTED and shard.get("result_counts") is not None:
        lines = {k: int(v) for k, v in shard["result_counts"].items()}
        return {**lines, "processing": shard["n_requests"] - sum(lines.values())}
    return shard.get("counts") or {"processing": shard["n_requests"]}


def _add(total: dict[str, int], counts: dict[str, int], sign: int) -> None:
    for key, n in counts.items():
        key = key if key in COUNT_KEYS else "processing"  # "missing": sent, no result line
        total[key] += sign * int(n)


#: Shards whose cost is committed (sent) but not known yet (not harvested).
COMMITTED = frozenset({ShardState.CREATING, ShardState.SUBMITTED, ShardState.ENDED})


@dataclass(frozen=True)
class Spend:
    """A job's money against its cap (USD): ``spent`` (harvested), ``committed`` (worst case of the shards
    sent and not harvested), ``cap`` (None without a budget).

    Examples
    --------
    >>> Spend(0.5, 0.25, 1.0).left
    0.25
    """

    spent: float
    committed: float
    cap: float | None

    @property
    def left(self) -> float | None:
        return None if self.cap is None else self.cap - self.spent - self.committed


def spend(manifest: dict[str, Any]) -> Spend:
    """The job's spent, committed and cap.

    Examples
    --------
    >>> m = {"waves": {"budget_usd": 1.0}, "attempts": [{"attempt": 1, "shards": [
    ...     {"state": "harvested", "cost_usd": 0.1, "worst_usd": 0.4}, {"state": "submitted", "worst_usd": 0.4}]}]}
    >>> spend(m)
    Spend(spent=0.1, committed=0.4, cap=1.0)
    """
    spent = committed = 0.0
    for _, shard in iter_shards(manifest):
        state, worst = state_of(shard), float(shard.get("worst_usd") or 0.0)
        if state is ShardState.HARVESTED and "linked" not in shard:
            cost = shard.get("cost_usd")
            spent += worst if cost is None else float(cost)
        elif state in COMMITTED:
            committed += worst
    return Spend(spent, committed, (manifest.get("waves") or {}).get("budget_usd"))


def job_status(manifest: dict[str, Any]) -> JobStatus:
    """The :class:`JobStatus` a manifest describes (no network, no other file).

    ``state``: ``in_progress`` while a shard runs, ``canceling`` while one is canceling, ``unsent``
    while a shard has no batch (not sent yet, refused, or interrupted), else ``ended``.

    Examples
    --------
    >>> job_status(job.manifest).state  # doctest: +SKIP
    'ended'
    """
    shards = tuple(shard_status(a, s) for a, s in iter_shards(manifest))
    states = {s.processing_status for s in shards}
    state = next((st for st in ("in_progress", "canceling", "unsent") if st in states), "ended")
    records = [s for _, s in iter_shards(manifest)]
    ended = [s.ended_at for s in shards if s.ended_at]
    money = spend(manifest)
    return JobStatus(
        name=manifest["name"],
        provider=manifest["provider"],
        model=manifest["model"],
        state=state,
        shards=shards,
        n_rows=manifest["n_rows"],
        n_skipped=manifest["n_skipped"],
        n_reused=int(manifest.get("n_reused") or 0),
        input_tokens=sum(int(s.get("input_tokens") or 0) for s in records),
        output_tokens=sum(int(s.get("output_tokens") or 0) for s in records),
        cost_usd=known_sum(s.get("cost_usd") for s in records),
        created_at=parse_time(manifest.get("created_at")),
        ended_at=max(ended) if state == "ended" and ended else None,
        row_counts=row_counts(manifest),
        budget_usd=money.cap,
        committed_usd=money.committed if money.cap is not None else None,
        cost_basis=manifest.get("cost_basis"),
        parse_counts=parse_counts(manifest),
    )


def parse_counts(manifest: dict[str, Any]) -> dict[str, int] | None:
    """For a job with a schema: its answered requests by parse status, each at its latest attempt (harvested
    shards' ``parse_counts``, minus what each ``retry(parse_failures=True)`` took back); None without one.

    Examples
    --------
    >>> m = {"request": {"structured": {}}, "attempts": [
    ...     {"attempt": 1, "shards": [{"parse_counts": {"ok": 3, "truncated": 2}}]},
    ...     {"attempt": 2, "replaces_parse": {"truncated": 2}, "shards": [{"parse_counts": {"ok": 2}}]}]}
    >>> parse_counts(m)
    {'ok': 5, 'truncated': 0}
    """
    if (manifest.get("request") or {}).get("structured") is None:
        return None
    total: dict[str, int] = {}
    for attempt in manifest["attempts"]:
        for shard in attempt["shards"]:
            for key, n in (shard.get("parse_counts") or {}).items():
                total[key] = total.get(key, 0) + int(n)
        for key, n in (attempt.get("replaces_parse") or {}).items():
            total[key] = total.get(key, 0) - int(n)
    return total


def known_sum(values: Iterable[Any]) -> float | None:
    """Sum of the values that are not None; None when all are (no shard harvested, or no known price).

    Examples
    --------
    >>> known_sum([None, 0.25, 0.5]), known_sum([None])
    (0.75, None)
    """
    known = [float(v) for v in values if v is not None]
    return sum(known) if known else None


def is_embeddings(manifest: dict[str, Any]) -> bool:
    """Whether a job embeds (its results carry vectors) rather than asks for answers.

    Examples
    --------
    >>> is_embeddings({"request": {"endpoint": "embeddings"}}), is_embeddings({"request": {}})
    (True, False)
    """
    return (manifest.get("request") or {}).get("endpoint") == "embeddings"
