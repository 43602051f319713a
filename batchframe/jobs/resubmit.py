"""``job.retry()``: resubmit, as a new attempt of the same job, only the rows whose latest try failed.

A row is resubmitted when the *latest attempt that sent it* has ended and its result there is

* ``errored`` with an error type the caller retries (default: every type but ``invalid_request_error``,
  which would fail again),
* ``expired``, or ``canceled``, or
* missing (the shard ended and was harvested without a line for it).

Rows still in flight in some attempt are left alone, and rows that succeeded are never sent again, so
a second ``retry()`` right after the first (or after a retry that fixed everything) submits nothing.

Attempt ``N`` is persisted like attempt 1 before anything is sent: ``requests-aN.parquet`` (position,
custom_id ``r{p}-aN``, shard, body: the row's original request with the new custom_id) and an entry in
the manifest whose shards start ``planned`` and whose ``replaces`` counts the states the resent rows
had before (so request counts summed over batches can be read as row counts). Merged results take each
row's latest attempt and say which in the ``attempt`` column.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np
import pyarrow as pa

from batchframe.errors import InputError
from batchframe.jobs.handle import JobHandle
from batchframe.jobs.manifest import iter_shards, now
from batchframe.jobs.states import SENDABLE, ShardState, new_shard, state_of
from batchframe.jobs.store import Store
from batchframe.providers import provider_class
from batchframe.requests.keys import custom_ids
from batchframe.requests.shards import ShardLimits, plan_shards

#: Error types not retried unless asked for: the same request would fail the same way.
NOT_RETRIED = frozenset({"invalid_request_error"})


def resubmit_failed(job: JobHandle, error_types: Collection[str] | None = None, *, expired: bool = True,
              canceled: bool = True, missing: bool = True) -> int:
    """Resubmit the failed rows of ``job`` as a new attempt; returns how many rows were sent.

    See :meth:`batchframe.Job.retry`.

    Examples
    --------
    >>> resubmit_failed(job, {"overloaded_error"}, canceled=False)  # doctest: +SKIP
    3
    """
    if isinstance(error_types, str):
        raise InputError("error_types takes a collection of error types, e.g. {'api_error'}")
    job.refresh()  # harvest what has ended, adopt interrupted creations
    with job.store.lock(job.name):
        manifest = job.store.read_manifest(job.name)
        outcome = latest_results(job.store, manifest)
        positions = select_rows(outcome, error_types, expired=expired, canceled=canceled, missing=missing)
        if len(positions):
            attempt = plan_attempt(job.store, manifest, positions)
            attempt["replaces"] = _previous_counts(outcome, positions)
            manifest["attempts"].append(attempt)
            manifest["updated_at"] = now()
            job.store.write_manifest(job.name, manifest)  # persisted before any POST
    if len(positions) or any(state_of(s) in SENDABLE for _, s in iter_shards(manifest)):
        job.send_unsent()
    return int(len(positions))


def _previous_counts(outcome: dict[str, np.ndarray], positions: np.ndarray) -> dict[str, int]:
    """How many of the resent rows were in each state in their previous attempt (``missing``: no line).

    Recorded on the new attempt so that request counts summed over batches can be turned into row counts.
    """
    states = np.where(_is_none(outcome["status"][positions]), "missing",
                      outcome["status"][positions].astype(str))
    values, counts = np.unique(states, return_counts=True)
    return {str(v): int(c) for v, c in zip(values, counts, strict=True)}


def latest_results(store: Store, manifest: dict[str, Any]) -> dict[str, np.ndarray]:
    """Per source row: the latest attempt that sent it, whether that shard is harvested, and its result there.

    Returns arrays of length ``n_rows``: ``attempt`` (0 = never sent), ``harvested`` (bool),
    ``status`` and ``error_type`` (object, None where there is no result from that attempt).

    Examples
    --------
    >>> latest_results(job.store, job.manifest)["status"]  # doctest: +SKIP
    array(['succeeded', 'expired', None], dtype=object)
    """
    name, n = manifest["name"], manifest["n_rows"]
    attempt = np.zeros(n, np.int32)
    shard_of = np.full(n, -1, np.int32)
    for record in manifest["attempts"]:
        table = store.read_table(store.requests_path(name, record["attempt"]), columns=["position", "shard"])
        pos, shard = table.column("position").to_numpy(), table.column("shard").to_numpy()
        sent = shard >= 0
        attempt[pos[sent]], shard_of[pos[sent]] = record["attempt"], shard[sent]
    done = [_key(a, s["index"]) for a, s in iter_shards(manifest) if state_of(s) is ShardState.HARVESTED]
    harvested = np.isin(_key(attempt.astype(np.int64), shard_of.astype(np.int64)), np.array(done, np.int64))
    status = np.full(n, None, dtype=object)
    error_type = np.full(n, None, dtype=object)
    for a, s in iter_shards(manifest):
        if state_of(s) is not ShardState.HARVESTED:
            continue
        table = store.read_table(store.job_dir(name) / s["results_file"], columns=["position", "status", "error_type"])
        pos = table.column("position").to_numpy()
        mine = attempt[pos] == a  # a result of an older attempt is superseded by the later sending
        status[pos[mine]] = np.asarray(table.column("status").to_pylist(), dtype=object)[mine]
        error_type[pos[mine]] = np.asarray(table.column("error_type").to_pylist(), dtype=object)[mine]
    return {"attempt": attempt, "harvested": harvested, "status": status, "error_type": error_type}


def _is_none(values: np.ndarray) -> np.ndarray:
    """Where an object array holds None (no result line)."""
    return np.fromiter((v is None for v in values), dtype=bool, count=len(values))


def _key(attempt, shard):
    return attempt * (1 << 32) + shard


def select_rows(outcome: dict[str, np.ndarray], error_types: Collection[str] | None = None, *,
                expired: bool = True, canceled: bool = True, missing: bool = True) -> np.ndarray:
    """Positions to resubmit, from :func:`latest_results`.

    Examples
    --------
    >>> o = {"attempt": np.array([1, 1, 1, 1, 0]), "harvested": np.array([True] * 4 + [False]),
    ...      "status": np.array(["errored", "errored", "succeeded", None, None], dtype=object),
    ...      "error_type": np.array(["api_error", "invalid_request_error", None, None, None], dtype=object)}
    >>> select_rows(o).tolist()
    [0, 3]
    >>> select_rows(o, {"invalid_request_error"}, missing=False).tolist()
    [1]
    """
    status, kinds = outcome["status"], outcome["error_type"]
    ended = outcome["harvested"] & (outcome["attempt"] > 0)
    errored = status == "errored"
    if error_types is None:
        wanted = errored & ~np.isin(kinds.astype(str), list(NOT_RETRIED))
    else:
        wanted = errored & np.isin(kinds.astype(str), list(error_types))
    if expired:
        wanted |= status == "expired"
    if canceled:
        wanted |= status == "canceled"
    if missing:
        wanted |= _is_none(status)
    return np.flatnonzero(ended & wanted)


def plan_attempt(store: Store, manifest: dict[str, Any], positions: np.ndarray) -> dict[str, Any]:
    """Write ``requests-aN.parquet`` for the rows at ``positions``; return the manifest's attempt entry.

    Examples
    --------
    >>> plan_attempt(job.store, job.manifest, np.array([3, 7]))["n_requests"]  # doctest: +SKIP
    2
    """
    name = manifest["name"]
    number = max(a["attempt"] for a in manifest["attempts"]) + 1
    codec = provider_class(manifest["provider"]).codec
    source = store.read_table(store.requests_path(name, 1), columns=["position", "body"])
    old = source.column("body").take(pa.array(positions)).to_pylist()  # row p is at position p
    ids = custom_ids(positions, attempt=number)
    bodies = [codec.rekey(line, cid) for line, cid in zip(old, ids, strict=True)]
    sizes = np.fromiter((len(b) for b in bodies), dtype=np.int64, count=len(bodies))
    ranges = plan_shards(sizes, ShardLimits(**manifest["limits"]), envelope=codec.ENVELOPE_BYTES)
    shard = np.zeros(len(bodies), np.int32)
    for i, (start, stop) in enumerate(ranges):
        shard[start:stop] = i
    table = pa.table({"position": pa.array(positions, pa.int64()), "custom_id": pa.array(ids, pa.string()),
                      "shard": pa.array(shard, pa.int32()), "body": pa.array(bodies, pa.binary())})
    path = store.requests_path(name, number)
    store.write_table(path, table, metadata={"job": name, "attempt": number, "reason": "retry"})
    shards = [new_shard(i, stop - start, codec.body_size(sizes[start:stop])) for i, (start, stop) in enumerate(ranges)]
    return {"attempt": number, "created_at": now(), "reason": "retry", "n_requests": len(bodies),
            "requests_file": path.name, "shards": shards}
