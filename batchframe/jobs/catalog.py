"""Re-attach from any process: :func:`open_job`, the table of every job (:func:`jobs`) and of every
remote batch with orphans flagged (:func:`remote_batches`).

Notes for the README
--------------------
* Jobs live in the job store (``$BATCHFRAME_STORE``, or ``jobs`` in the per-user data folder), not in the
  kernel: after a restart, ``batchframe.open_job("reviews")`` (or re-running the same ``submit`` cell) re-attaches and
  sends nothing again.
* ``batchframe.jobs()`` reads only the store (no network): the states are the last ones seen.
* ``batchframe.remote_batches("anthropic")`` lists every remote batch, all pages, and flags the
  ``orphan`` ones no job of the store knows: candidates for a process killed between creating a batch
  and recording it (see :mod:`batchframe.jobs.orphans`), or batches made by other tools.
* Cost: each row's ``cost_usd`` prices the ``model`` field of its *result* (the model that answered and
  is billed; the real API reports the requested model there, often in its dated form), at batch prices
  (50% of list, cache tokens included, :mod:`batchframe.providers.anthropic.pricing`). A job of the
  ``local`` provider is answered by the local engine (``echo``, ``smollm2-...`` in ``model``) and bills
  nothing; its usage is priced as the model the job named, and the manifest's ``cost_basis`` says it is
  an estimate (see ``Provider.pricer``). The ``anthropic`` provider pointed at a local service prices the
  answering model, so there the cost is null rather than a Claude price for an answer Claude never gave.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from batchframe.errors import JobError
from batchframe.jobs.job import Job
from batchframe.jobs.manifest import iter_shards, job_status
from batchframe.jobs.orphans import candidates, interrupted_shards, known_batches
from batchframe.jobs.states import ShardState, state_of
from batchframe.jobs.store import Store
from batchframe.providers import RemoteBatch, open_endpoint, provider_class
from batchframe.types import COUNT_KEYS, ROW_STATES

JOB_COLUMNS = ["name", "revision", "state", "provider", "model", "rows", *ROW_STATES, "reused", "attempts",
               "batches", "interrupted", "cost_usd", "created_at", "ended_at", "updated_at"]
BATCH_COLUMNS = ["id", "processing_status", "requests", "processing", "succeeded", "errored", "canceled",
                 "expired", "created_at", "ended_at", "expires_at", "job", "attempt", "shard", "orphan",
                 "suspected_job"]


def _store(store: str | Store | None) -> Store:
    return store if isinstance(store, Store) else Store(store)


def open_job(name: str, *, store: str | Store | None = None, api_key: str | None = None,
             base_url: str | None = None, **options: Any) -> Job:
    """Re-attach to a job by name, from any process (a new kernel, a script, another terminal). No network.

    Parameters
    ----------
    name : str
        The job's name (``job.name``; see :func:`jobs`).
    store : str or Store, optional
        Job store folder (default ``$BATCHFRAME_STORE``, else ``jobs`` in the per-user data folder).
    api_key : str, optional
        Default ``ANTHROPIC_API_KEY``; never stored.
    base_url : str, optional
        The host to talk to for this job. Without it the key goes only to the job's stored host when that
        is your environment's host (``ANTHROPIC_BASE_URL`` or the default) or a ``base_url`` you passed in
        this process; any other stored host is refused before anything is sent.
    **options
        Passed to :meth:`batchframe.Job.open` (``retry=RetryPolicy(...)``).

    Examples
    --------
    >>> job = batchframe.open_job("reviews")  # doctest: +SKIP
    >>> merged = df.batch.merge(job.wait())  # doctest: +SKIP
    """
    return Job.open(name, store=_store(store), api_key=api_key, base_url=base_url, **options)


def jobs(*, store: str | Store | None = None, revisions: bool = False) -> pd.DataFrame:
    """Every job of the store: state, row counts, model, attempts, cost, created and ended times.

    Read from the store only (no network): states are the last ones seen; ``job.refresh()`` updates
    one. Row counts are the job status's (:attr:`batchframe.JobStatus.counts`): each source row once, at
    its latest attempt; ``pending`` rows have no result yet. ``interrupted`` counts shards whose batch
    creation was cut off. ``revision`` counts the frames submitted under the name; with ``revisions``,
    the earlier ones are listed too (as ``<name>~r<N>``; open them with ``batchframe.Job(folder)``).

    Examples
    --------
    >>> batchframe.jobs()[["name", "state", "succeeded", "errored", "cost_usd"]]  # doctest: +SKIP
    """
    rows = []
    for name, manifest in _store(store).manifests(revisions=revisions):
        if isinstance(manifest, JobError):  # one unreadable job must not hide the others
            rows.append({"name": name, "state": f"unreadable: {manifest}"})
        else:
            rows.append(_job_row(manifest))
    frame = pd.DataFrame(rows, columns=JOB_COLUMNS)
    for column in ("created_at", "ended_at", "updated_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    return frame.sort_values("created_at", kind="stable", ignore_index=True)


def _job_row(manifest: dict[str, Any]) -> dict[str, Any]:
    status = job_status(manifest)
    shards = [s for _, s in iter_shards(manifest)]
    counts = status.counts
    rows = {**{k: counts[k] for k in COUNT_KEYS if k != "processing"}, "pending": counts["processing"],
            "skipped": status.n_skipped, "reused": status.n_reused}
    return {"name": manifest["name"], "revision": int(manifest.get("revision") or 1), "state": status.state,
            "provider": manifest["provider"],
            "model": manifest["model"], "rows": manifest["n_rows"], **{k: rows[k] for k in (*ROW_STATES, "reused")},
            "attempts": len(manifest["attempts"]), "batches": sum(1 for s in shards if s.get("batch_id")),
            "interrupted": sum(1 for s in shards if state_of(s) is ShardState.CREATING),
            "cost_usd": status.cost_usd, "created_at": manifest.get("created_at"),
            "ended_at": status.ended_at, "updated_at": manifest.get("updated_at")}


def remote_batches(provider: str | None = None, *, store: str | Store | None = None, api_key: str | None = None,
                   base_url: str | None = None, page_size: int = 1000, **provider_options: Any) -> pd.DataFrame:
    """Every remote batch of a provider (all pages, newest first), with the local job that owns it.

    ``orphan`` is True for a batch no job of the store knows; ``suspected_job`` names a job with an
    interrupted creation that the orphan matches (same size, created in the window). A job adopts such
    a batch on its next run; see :mod:`batchframe.jobs.orphans`.

    Parameters
    ----------
    provider : {"anthropic", "local"}, optional
        Default ``$BATCHFRAME_PROVIDER`` or ``"anthropic"``.
    store : str or Store, optional
        The job store whose jobs count as known.
    api_key, base_url, **provider_options
        As for ``df.batch.submit``.
    page_size : int
        Batches per list call (1-1000).

    Examples
    --------
    >>> batches = batchframe.remote_batches("anthropic")  # doctest: +SKIP
    >>> batches.loc[batches["orphan"], ["id", "created_at", "requests"]]  # doctest: +SKIP
    """
    endpoint = open_endpoint(provider, api_key=api_key, base_url=base_url, **provider_options)
    with provider_class(endpoint.provider)(endpoint) as client:
        batches = list(client.iter_batches(page_size=page_size))
    return batch_frame(batches, _store(store))


def batch_frame(batches: Iterable[RemoteBatch], store: Store) -> pd.DataFrame:
    """Remote batch objects as a DataFrame, joined with the jobs of ``store`` that know them.

    Examples
    --------
    >>> batch = RemoteBatch("b1", "ended", {"succeeded": 2})
    >>> batch_frame([batch], Store("/nonexistent"))[["id", "requests", "orphan"]].values.tolist()
    [['b1', 2, True]]
    """
    batches = list(batches)
    known = known_batches(store)
    interrupted = interrupted_shards(store)
    rows = []
    for batch in batches:
        owner = known.get(batch.id)
        suspects = [] if owner else [name for name, _, shard in interrupted if candidates(shard, [batch], known)]
        rows.append({"id": batch.id, "processing_status": batch.state,
                     "requests": batch.n_requests, **{k: int(batch.counts.get(k) or 0) for k in BATCH_COLUMNS[3:8]},
                     "created_at": batch.created_at, "ended_at": batch.ended_at,
                     "expires_at": batch.expires_at, "job": owner[0] if owner else None,
                     "attempt": owner[1] if owner else None, "shard": owner[2] if owner else None,
                     "orphan": owner is None, "suspected_job": ", ".join(sorted(set(suspects))) or None})
    frame = pd.DataFrame(rows, columns=BATCH_COLUMNS)
    for column in ("created_at", "ended_at", "expires_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    for column in ("attempt", "shard"):
        frame[column] = frame[column].astype("Int64")
    return frame
