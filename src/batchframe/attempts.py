"""New attempts of a job: resend chosen rows (a retry) as new shards of the same job.

An attempt ``N > 1`` resends the attempt-1 request body of each chosen row under the custom_id
``r{position}-a{N}``, in shards planned with the job's limits. Its mapping is persisted in
``requests-aN.parquet`` and its shards are appended to the manifest as ``planned`` *before* anything is
sent; :meth:`batchframe.Job.send_unsent` then sends them like the first attempt's. Merging takes, for
each row, the result of its latest attempt.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import InputError
from .job import Job
from .keys import custom_ids
from .manifest import now, shard_record
from .shard import ShardLimits, body_size, plan_shards

_PREFIX = b'{"custom_id":"'


def plan_attempt(job: Job, positions: Sequence[int] | np.ndarray, *, reason: str = "retry") -> int | None:
    """Record a new attempt that will resend the rows at ``positions``; returns its number.

    Nothing is sent here (call ``job.send_unsent()``); with no positions nothing is recorded and None is
    returned. Rows never sent (skipped) cannot be part of an attempt.

    Examples
    --------
    >>> n = plan_attempt(job, [3, 17], reason="errored")  # doctest: +SKIP
    >>> job.send_unsent()  # doctest: +SKIP
    """
    wanted = np.unique(np.asarray(positions, dtype=np.int64))
    if not len(wanted):
        return None
    store, name = job.store, job.name
    with store.lock(name):
        manifest = store.read_manifest(name)
        attempt = len(manifest["attempts"]) + 1
        bodies = _first_bodies(job, wanted)
        ids = custom_ids(wanted, attempt)
        lines = [_rekey(body, cid) for body, cid in zip(bodies, ids, strict=True)]
        sizes = np.fromiter((len(b) for b in lines), np.int64, len(lines))
        ranges = plan_shards(sizes, ShardLimits(**manifest["limits"]))
        shard_of = np.repeat(np.arange(len(ranges), dtype=np.int32), [b - a for a, b in ranges])
        store.write_table(
            store.requests_path(name, attempt),
            pa.table(
                {
                    "position": pa.array(wanted),
                    "custom_id": pa.array(ids, pa.string()),
                    "shard": pa.array(shard_of),
                    "body": pa.array(lines, pa.binary()),
                }
            ),
            metadata={"job": name, "attempt": attempt},
        )
        manifest["attempts"].append(
            {
                "attempt": attempt,
                "created_at": now(),
                "reason": reason,
                "n_requests": len(lines),
                "requests_file": store.requests_path(name, attempt).name,
                "shards": [shard_record(i, b - a, body_size(sizes[a:b])) for i, (a, b) in enumerate(ranges)],
            }
        )
        store.write_manifest(name, manifest)
    job._manifest = manifest
    return attempt


def _first_bodies(job: Job, positions: np.ndarray) -> list[bytes]:
    table = job.store.read_table(job.store.requests_path(job.name, 1), columns=["position", "body"])
    n_rows = table.num_rows
    if positions[0] < 0 or positions[-1] >= n_rows:
        raise InputError(f"row positions must be within 0..{n_rows - 1}")
    picked = table.column("body").take(pa.array(positions))
    if picked.null_count:
        bad = positions[pc.is_null(picked).to_numpy(zero_copy_only=False)][:5].tolist()
        raise InputError(f"rows at positions {bad} were skipped (empty prompt) and cannot be resent")
    return picked.to_pylist()


def _rekey(body: bytes, cid: str) -> bytes:
    """The same request line under another custom_id (request lines always start with it)."""
    end = body.index(b'"', len(_PREFIX))
    return _PREFIX + cid.encode() + body[end:]
