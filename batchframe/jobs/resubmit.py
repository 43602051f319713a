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

from collections.abc import Callable, Collection
from typing import Any

import numpy as np
import pyarrow as pa

from batchframe.errors import InputError
from batchframe.jobs.bodies import sent_lines
from batchframe.jobs.handle import JobHandle
from batchframe.jobs.manifest import iter_shards, now, plan_shard_records
from batchframe.jobs.outcomes import is_none, latest_results, previous_counts, store_reader
from batchframe.jobs.states import SENDABLE, state_of
from batchframe.jobs.store import Store
from batchframe.providers import provider_class
from batchframe.requests.keys import custom_ids
from batchframe.requests.shards import ShardLimits

#: Error types not retried unless asked for (deterministic: the same request would fail the same way).
NOT_RETRIED = frozenset({"invalid_request_error", "not_found_error"})


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

    def choose(manifest: dict[str, Any], outcome: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, Any]]:
        return select_rows(outcome, error_types, expired=expired, canceled=canceled, missing=missing), {}

    return resend(job, choose)


#: Picks the rows to resend from the manifest and each row's latest outcome; returns their positions and
#: any fields to record on the new attempt.
Chooser = Callable[[dict[str, Any], dict[str, np.ndarray]], tuple[np.ndarray, dict[str, Any]]]


def resend(job: JobHandle, choose: Chooser, *, max_tokens: int | None = None, reason: str = "retry") -> int:
    """The one way a retry goes out: under the job's lock, the rows ``choose`` picks become a new attempt,
    persisted before any POST (with ``replaces``: their states before); then every unsent shard is sent.
    Returns how many rows the attempt resends.

    Examples
    --------
    >>> resend(job, lambda manifest, outcome: (np.array([3]), {}))  # doctest: +SKIP
    1
    """
    with job.store.lock(job.name):
        manifest = job.store.read_manifest(job.name)
        outcome = latest_results(manifest, store_reader(job.store, job.name))
        positions, fields = choose(manifest, outcome)
        if len(positions):
            attempt = plan_attempt(job.store, manifest, positions, max_tokens=max_tokens, reason=reason)
            attempt["replaces"] = previous_counts(outcome, positions)
            attempt.update(fields)
            manifest["attempts"].append(attempt)
            manifest["updated_at"] = now()
            job.store.write_manifest(job.name, manifest)  # persisted before any POST
    if len(positions) or any(state_of(s) in SENDABLE for _, s in iter_shards(manifest)):
        job.send_unsent()
    return int(len(positions))


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
        wanted |= is_none(status)
    return np.flatnonzero(ended & wanted)


def plan_attempt(store: Store, manifest: dict[str, Any], positions: np.ndarray, *, max_tokens: int | None = None,
                 reason: str = "retry") -> dict[str, Any]:
    """Write ``requests-aN.parquet`` for the rows at ``positions``; return the manifest's attempt entry.

    ``max_tokens`` replaces each request's limit (recorded on the attempt); ``reason`` says why it was made.

    Examples
    --------
    >>> plan_attempt(job.store, job.manifest, np.array([3, 7]))["n_requests"]  # doctest: +SKIP
    2
    """
    name = manifest["name"]
    number = max(a["attempt"] for a in manifest["attempts"]) + 1
    codec = provider_class(manifest["provider"]).codec
    old = sent_lines(store, name, positions=positions)  # a retried row sends its own request
    ids = custom_ids(positions, attempt=number)
    bodies = [codec.rekey(line, cid) for line, cid in zip(old, ids, strict=True)]
    if max_tokens is not None:
        bodies = [codec.set_max_tokens(line, max_tokens) for line in bodies]
    shard, shards = plan_shard_records(bodies, ShardLimits(**manifest["limits"]), codec)
    table = pa.table({"position": pa.array(positions, pa.int64()), "custom_id": pa.array(ids, pa.string()),
                      "shard": pa.array(shard, pa.int32()), "body": pa.array(bodies, pa.binary())})
    path = store.requests_path(name, number)
    store.write_table(path, table, metadata={"job": name, "attempt": number, "reason": reason})
    return {"attempt": number, "created_at": now(), "reason": reason, "n_requests": len(bodies),
            "requests_file": path.name, "shards": shards, **({"max_tokens": int(max_tokens)} if max_tokens else {})}
