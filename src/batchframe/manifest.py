"""The job manifest: plain JSON that says what was planned, sent and harvested, written before and after
every network step.

Shape::

    {"format": 1, "name", "provider", "identity", "base_url", "data_dir", "model", "fingerprint",
     "created_at", "n_rows", "n_skipped", "limits": {...}, "request": {...summary},
     "attempts": [{"attempt": 1, "created_at", "reason", "n_requests",
                   "shards": [{"index", "n_requests", "n_bytes", "state", "batch_id", ...}]}]}

Shard ``state`` moves ``planned`` -> ``creating`` (recorded *before* the POST, with ``intent_at``)
-> ``submitted`` (batch id recorded right after) -> ``ended`` -> ``harvested``. A POST the provider
refused is ``failed`` (nothing was created, safe to send again). A shard left in ``creating`` means the
process stopped between the POST and recording its answer: a remote batch may exist without its id here.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from .status import COUNT_KEYS, JobStatus, ShardStatus, empty_counts

FORMAT = 1
#: States in which a shard has no remote batch we know of.
UNSENT = ("planned", "creating", "failed")


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


def shard_record(index: int, n_requests: int, n_bytes: int) -> dict[str, Any]:
    """A planned shard.

    Examples
    --------
    >>> shard_record(0, 10, 1234)["state"]
    'planned'
    """
    return {
        "index": index,
        "n_requests": n_requests,
        "n_bytes": n_bytes,
        "state": "planned",
        "batch_id": None,
        "processing_status": None,
        "counts": None,
        "intent_at": None,
        "created_at": None,
        "ended_at": None,
        "error": None,
        "results_file": None,
    }


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


def record_batch(shard: dict[str, Any], batch: dict[str, Any]) -> None:
    """Copy a remote MessageBatch's state onto a shard record.

    Examples
    --------
    >>> shard = shard_record(0, 2, 100)
    >>> record_batch(shard, {"id": "msgbatch_1", "processing_status": "in_progress"})
    >>> shard["state"], shard["batch_id"]
    ('submitted', 'msgbatch_1')
    """
    shard["batch_id"] = batch["id"]
    shard["processing_status"] = batch.get("processing_status")
    shard["counts"] = {k: int((batch.get("request_counts") or {}).get(k, 0)) for k in COUNT_KEYS}
    shard["created_at"] = batch.get("created_at") or shard.get("created_at")
    shard["ended_at"] = batch.get("ended_at")
    if shard["state"] != "harvested":
        shard["state"] = "ended" if batch.get("processing_status") == "ended" else "submitted"
        shard["error"] = None


def shard_status(attempt: int, shard: dict[str, Any]) -> ShardStatus:
    """A shard record as a :class:`ShardStatus` (``unsent`` while it has no remote batch).

    Examples
    --------
    >>> shard_status(1, shard_record(0, 5, 100)).processing_status
    'unsent'
    """
    counts = shard.get("counts") or {**empty_counts(), "processing": shard["n_requests"]}
    processing = "unsent" if shard["state"] in UNSENT else (shard.get("processing_status") or "in_progress")
    return ShardStatus(
        index=shard["index"],
        attempt=attempt,
        batch_id=shard.get("batch_id"),
        processing_status=processing,
        counts=dict(counts),
        n_requests=shard["n_requests"],
        created_at=parse_time(shard.get("created_at")),
        ended_at=parse_time(shard.get("ended_at")),
    )


def job_status(manifest: dict[str, Any]) -> JobStatus:
    """The :class:`JobStatus` a manifest describes (no network).

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
    return JobStatus(
        name=manifest["name"],
        provider=manifest["provider"],
        model=manifest["model"],
        state=state,
        shards=shards,
        n_rows=manifest["n_rows"],
        n_skipped=manifest["n_skipped"],
        input_tokens=sum(int(s.get("input_tokens") or 0) for s in records),
        output_tokens=sum(int(s.get("output_tokens") or 0) for s in records),
        cost_usd=_known_sum(s.get("cost_usd") for s in records),
        created_at=parse_time(manifest.get("created_at")),
        ended_at=max(ended) if state == "ended" and ended else None,
    )


def _known_sum(values: Any) -> float | None:
    """Sum of the values that are not None; None when all are (no shard harvested, or no known price)."""
    known = [float(v) for v in values if v is not None]
    return sum(known) if known else None
