"""The one shard state machine: every change of a shard record's ``state`` goes through :func:`move`.

::

    planned ──> creating ──> submitted ──> ended ──> harvested
       ▲   ▲      │  │  ▲                    │
       │   │      │  │  └────────────────────┘   an adopted batch proven not this shard's
       │   │      │  └──> failed ──> creating    refused, and the batch list shows nothing was created
       │   └──────┘                              an interrupted POST created nothing: send again
       └── (retry) a new attempt's shards start planned

    linked ──> harvested    the rows another job already carries: their answers are copied once stored
       └────> planned      that job is gone or its requests were refused: send them after all

``creating`` is written *before* the POST (with ``intent_at``): a process killed after it is detectable,
and :mod:`batchframe.jobs.orphans` reconciles it. The batch id is recorded right after the POST.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, TypedDict

from batchframe.errors import JobError
from batchframe.providers.base import RemoteBatch


class ShardState(StrEnum):
    """Where a shard stands locally. Stored in the manifest as its string value."""

    PLANNED = "planned"  # persisted, never sent
    CREATING = "creating"  # intent recorded, POST sent or about to be; no batch id known
    FAILED = "failed"  # the provider refused the POST and created nothing
    SUBMITTED = "submitted"  # a remote batch exists and runs
    ENDED = "ended"  # the remote batch ended; results not stored yet
    HARVESTED = "harvested"  # results stored in the job store
    LINKED = "linked"  # answered by requests another job of the store carries (see batchframe.jobs.links)


#: States with no remote batch we know of.
UNSENT = frozenset({ShardState.PLANNED, ShardState.CREATING, ShardState.FAILED})
#: States whose shard can be sent now (nothing exists remotely).
SENDABLE = frozenset({ShardState.PLANNED, ShardState.FAILED})

_ALLOWED: dict[ShardState, frozenset[ShardState]] = {
    ShardState.PLANNED: frozenset({ShardState.CREATING}),
    ShardState.FAILED: frozenset({ShardState.CREATING}),
    ShardState.CREATING: frozenset(
        {ShardState.CREATING, ShardState.PLANNED, ShardState.FAILED, ShardState.SUBMITTED, ShardState.ENDED}
    ),
    ShardState.SUBMITTED: frozenset({ShardState.SUBMITTED, ShardState.ENDED}),
    ShardState.ENDED: frozenset({ShardState.ENDED, ShardState.HARVESTED, ShardState.CREATING}),
    ShardState.HARVESTED: frozenset(),
    ShardState.LINKED: frozenset({ShardState.HARVESTED, ShardState.PLANNED}),
}


class ShardRecord(TypedDict, total=False):
    """A shard as the manifest stores it (plain JSON)."""

    index: int
    n_requests: int
    n_bytes: int
    state: str
    batch_id: str | None
    remote_state: str | None  # the remote batch's state: in_progress | canceling | ended
    counts: dict[str, int] | None  # the remote batch's request counts
    intent_at: str | None
    created_at: str | None
    ended_at: str | None
    error: dict[str, Any] | None
    results_file: str | None
    adopted: dict[str, Any]
    rejected: list[str]
    deleted_at: str
    linked: dict[str, Any]  # a linked shard's source: {"job": folder when linked, "uid": that job's uid}


def new_shard(index: int, n_requests: int, n_bytes: int) -> ShardRecord:
    """A planned shard.

    Examples
    --------
    >>> new_shard(0, 10, 1234)["state"]
    'planned'
    """
    return {
        "index": index,
        "n_requests": n_requests,
        "n_bytes": n_bytes,
        "state": ShardState.PLANNED.value,
        "batch_id": None,
        "remote_state": None,
        "counts": None,
        "intent_at": None,
        "created_at": None,
        "ended_at": None,
        "error": None,
        "results_file": None,
    }


def state_of(shard: ShardRecord | dict[str, Any]) -> ShardState:
    """The shard's state as a :class:`ShardState`.

    Examples
    --------
    >>> state_of({"state": "ended"}) is ShardState.ENDED
    True
    """
    return ShardState(shard["state"])


def move(shard: ShardRecord | dict[str, Any], to: ShardState, **fields: Any) -> None:
    """Change ``shard``'s state to ``to`` (and set ``fields``), refusing a move the machine does not have.

    Examples
    --------
    >>> shard = new_shard(0, 2, 100)
    >>> move(shard, ShardState.CREATING, intent_at="2026-01-01T00:00:00Z")
    >>> shard["state"]
    'creating'
    >>> move(shard, ShardState.HARVESTED)
    Traceback (most recent call last):
    ...
    batchframe.errors.JobError: shard 0 cannot go from 'creating' to 'harvested'
    """
    current = state_of(shard)
    if to not in _ALLOWED[current]:
        raise JobError(f"shard {shard.get('index')} cannot go from {current.value!r} to {to.value!r}")
    shard.update(fields)  # type: ignore[typeddict-item]  # fields are ShardRecord keys
    shard["state"] = to.value


def record_batch(shard: ShardRecord | dict[str, Any], batch: RemoteBatch) -> None:
    """Copy a remote batch's state onto a shard: ``submitted`` while it runs, ``ended`` once it has ended.

    A harvested shard keeps its state (a later call, e.g. cancel, only refreshes the remote snapshot).

    Examples
    --------
    >>> shard = new_shard(0, 2, 100)
    >>> move(shard, ShardState.CREATING)
    >>> record_batch(shard, RemoteBatch("msgbatch_1", "in_progress", {"processing": 2}))
    >>> shard["state"], shard["batch_id"], shard["remote_state"]
    ('submitted', 'msgbatch_1', 'in_progress')
    """
    shard["batch_id"] = batch.id
    shard["remote_state"] = batch.state
    shard["counts"] = dict(batch.counts)
    shard["created_at"] = _iso(batch.created_at) or shard.get("created_at")
    shard["ended_at"] = _iso(batch.ended_at)
    if state_of(shard) is not ShardState.HARVESTED:
        move(shard, ShardState.ENDED if batch.ended else ShardState.SUBMITTED, error=None)


def _iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def refused_outright(shard: ShardRecord | dict[str, Any]) -> bool:
    """Whether a ``failed`` shard was refused for good (a 4xx other than 408, 409, 429): sending the same
    requests again would be refused again, and no batch of it can appear later.

    Examples
    --------
    >>> refused_outright({"error": {"status": 400}}), refused_outright({"error": {"status": 429}})
    (True, False)
    """
    status = (shard.get("error") or {}).get("status")
    return isinstance(status, int) and 400 <= status < 500 and status not in (408, 409, 429)
