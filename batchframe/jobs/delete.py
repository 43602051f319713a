"""``job.delete()``: delete a job's remote batches once they have ended, and optionally its local files.

A remote batch is deleted only when its results are safely in the job store (the shard is
``harvested``): deleting first would throw away results nobody downloaded. Every shard gets a line in
the returned report saying whether its batch is gone and, if not, why.
"""

from __future__ import annotations

import logging
import shutil
from typing import Any

import pandas as pd

from batchframe.errors import APIError, NotFoundError, TransportError
from batchframe.jobs.handle import JobHandle
from batchframe.jobs.manifest import iter_shards, now
from batchframe.jobs.states import ShardState, state_of
from batchframe.providers.base import Provider

log = logging.getLogger("batchframe")
REPORT_COLUMNS = ["attempt", "shard", "batch_id", "deleted", "reason"]


def delete_job(job: JobHandle, *, local: bool = False) -> pd.DataFrame:
    """Delete the ended remote batches of ``job``; see :meth:`batchframe.Job.delete`.

    Examples
    --------
    >>> delete_job(job)[["batch_id", "deleted", "reason"]]  # doctest: +SKIP
    """
    job.refresh()  # download what has ended before its remote copy goes away
    rows = []
    with job.session() as (manifest, provider):
        for attempt, shard in iter_shards(manifest):
            deleted, reason = _delete_shard(provider, shard)
            rows.append({"attempt": attempt, "shard": shard["index"], "batch_id": shard.get("batch_id"),
                         "deleted": deleted, "reason": reason})
            job.save()
    report = pd.DataFrame(rows, columns=REPORT_COLUMNS)
    report.attrs["local_files_removed"] = local and _remove_local(job, report)
    return report


def _delete_shard(provider: Provider, shard: dict[str, Any]) -> tuple[bool, str]:
    """Delete one shard's batch if it may be; ``(gone, why)``."""
    batch_id, state = shard.get("batch_id"), state_of(shard)
    if shard.get("deleted_at"):
        return True, f"already deleted at {shard['deleted_at']}"
    if state is ShardState.CREATING:
        return False, ("its creation was interrupted: a remote batch may exist without its id here; run "
                       "job.refresh() to adopt it, or see batchframe.remote_batches()")
    if not batch_id:
        return True, f"never sent (shard {state.value}): nothing to delete"
    if shard.get("remote_state") != "ended":
        return False, f"still {shard.get('remote_state')}: cancel it (job.cancel()) and wait until it ends"
    if state is not ShardState.HARVESTED:
        return False, "its results are not downloaded yet: run job.refresh() first"
    try:
        provider.delete(batch_id)
        reason = "deleted"
    except NotFoundError:
        reason = "already gone on the provider (404)"
    except (APIError, TransportError) as exc:
        return False, f"the provider refused: {exc}"
    shard["deleted_at"] = now()
    return True, reason


def _remove_local(job: JobHandle, report: pd.DataFrame) -> bool:
    """Remove the job's folder, unless a remote batch is left (its id would then be lost)."""
    if not report["deleted"].all():
        log.warning("job %r: local files kept: %d remote batch(es) could not be deleted (see the report)",
                    job.name, int((~report["deleted"]).sum()))
        return False
    with job.store.lock():  # the store lock: no process is choosing a new job's name meanwhile
        shutil.rmtree(job.store.job_dir(job.name))
    return True
