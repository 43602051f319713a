"""Linked shards: rows of a job answered by requests another job of the store already carries.

A submit whose requests the ledger (:mod:`batchframe.jobs.ledger`) finds elsewhere (another name, an
earlier revision of this one, another frame) does not send them: it groups them by the job that carries
them into *linked* shards, with no batch of their own. :func:`settle` moves such a shard on:

* once the source job has stored the answers (it is refreshed, or sent if it never was, on the way),
  they are copied into this job as the shard's results, under this job's rows and labels: it is
  ``harvested``, its rows ``reused`` and priced at 0 (the source paid);
* if the source job is gone (deleted) or its requests were refused, the shard is ``planned`` again and
  sent like any other: the request bodies are kept with every row for that.
"""

from __future__ import annotations

import logging
import tempfile  # noqa: F401  (the doctests use it)
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from batchframe.errors import APIError, JobError, TransportError
from batchframe.jobs.labels import labels_table, read_labels
from batchframe.jobs.ledger import job_uid
from batchframe.jobs.manifest import is_embeddings, iter_shards
from batchframe.jobs.outcomes import latest_results, store_reader
from batchframe.jobs.states import ShardRecord, ShardState, move, new_shard, refused_outright, state_of
from batchframe.jobs.store import Store
from batchframe.results.combine import latest_per_position
from batchframe.results.schema import EMBEDDING, HARVEST_SCHEMA
from batchframe.types import empty_counts

log = logging.getLogger("batchframe")
#: Opens another job of the store for a refresh (a :class:`~batchframe.jobs.job.Job` with this job's endpoint).
Opener = Callable[[str], Any]
#: The requests file's column giving a linked row's position in its source job (-1 for other rows).
VIA = "via_position"


def linked_shard(index: int, n_requests: int, source_job: str, source_uid: str) -> ShardRecord:
    """A shard whose ``n_requests`` rows job ``source_job`` carries; it waits for their answers.

    Examples
    --------
    >>> s = linked_shard(2, 10, "monday", "u1")
    >>> s["state"], s["linked"], s["batch_id"]
    ('linked', {'job': 'monday', 'uid': 'u1'}, None)
    """
    shard = new_shard(index, n_requests, 0)
    shard["state"], shard["remote_state"] = ShardState.LINKED.value, "in_progress"
    shard["linked"] = {"job": source_job, "uid": source_uid}
    return shard


def waiting(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The linked shards of attempt 1 still waiting for their source.

    Examples
    --------
    >>> waiting({"attempts": [{"attempt": 1, "shards": [linked_shard(0, 1, "j", "u")]}]})[0]["index"]
    0
    """
    return [s for _, s in iter_shards(manifest) if state_of(s) is ShardState.LINKED]


def source_of(store: Store, shard: dict[str, Any]) -> str | None:
    """The folder of a linked shard's source job now (a revision may have moved it), or None if it is gone.

    Examples
    --------
    >>> source_of(Store(tempfile.mkdtemp()), linked_shard(0, 1, "j", "u")) is None
    True
    """
    return find_job(store, shard["linked"]["uid"], shard["linked"]["job"])


def find_job(store: Store, uid: str, hint: str) -> str | None:
    """The folder of the job whose uid is ``uid``, looked for first at ``hint`` and its revisions; None if gone.

    Examples
    --------
    >>> find_job(Store(tempfile.mkdtemp()), "u1", "weekly") is None
    True
    """
    base = hint.split("~r")[0]
    names = store.names(revisions=True)
    candidates = [hint, *(n for n in names if n.startswith(f"{base}~r")), *names]
    for name in dict.fromkeys(candidates):
        try:
            if store.exists(name) and job_uid(store.read_manifest(name)) == uid:
                return name
        except JobError:
            continue
    return None


def prepare_sources(store: Store, manifest: dict[str, Any], open_job: Opener) -> None:
    """Bring forward the source jobs of ``manifest``'s waiting links: send what they never sent, download
    what has ended. Runs before this job's lock is taken (a source is always an older job: no cycle).

    Examples
    --------
    >>> prepare_sources(job.store, job.manifest, lambda name: Job(name, store=job.store))  # doctest: +SKIP
    """
    for name in dict.fromkeys(filter(None, (source_of(store, s) for s in waiting(manifest)))):
        source = open_job(name)
        shards = [s for _, s in iter_shards(source.manifest)]
        try:
            # Never sent, or failed for a reason that may pass (429, 5xx): the source sends them, once.
            if any(state_of(s) is ShardState.PLANNED or (state_of(s) is ShardState.FAILED and not refused_outright(s))
                   for s in shards):
                source.send_unsent()
            if any(state_of(s) in (ShardState.SUBMITTED, ShardState.ENDED) for _, s in iter_shards(source.manifest)):
                source.refresh()
        except (APIError, TransportError) as exc:  # the source is tried again at the next refresh
            log.warning("job %r, which carries requests of this job, could not be brought forward: %s", name, exc)


def answered_elsewhere(store: Store, manifest: dict[str, Any], shard_of: np.ndarray) -> np.ndarray:
    """Per row: whether its answer is a copy from the job that paid for it (a settled link, not resent since).

    ``shard_of`` is the requests file's ``shard`` column (attempt 1). Such rows are ``reused`` at cost 0.

    Examples
    --------
    >>> m = {"name": "j", "attempts": [{"attempt": 1, "shards": [{"index": 0, "state": "harvested"},
    ...      {"index": 1, "state": "harvested", "linked": {"job": "a", "uid": "u"}}]}]}
    >>> answered_elsewhere(Store(tempfile.mkdtemp()), m, np.array([0, 1, -1])).tolist()
    [False, True, False]
    """
    settled = [s["index"] for a, s in iter_shards(manifest)
               if a == 1 and "linked" in s and state_of(s) is ShardState.HARVESTED]
    rows = np.isin(shard_of, np.array(settled, np.int64)) if settled else np.zeros(len(shard_of), bool)
    for record in manifest["attempts"][1:] if rows.any() else []:  # resent by a retry: paid by this job
        resent = store.read_table(store.requests_path(manifest["name"], record["attempt"]), columns=["position"])
        rows[resent.column("position").to_numpy()] = False
    return rows


def settle(store: Store, manifest: dict[str, Any], save: Callable[[], None]) -> None:
    """Copy the stored answers of every waiting linked shard whose source has them all; re-plan the ones
    whose source is gone or refused them. Call it holding this job's lock.

    Examples
    --------
    >>> with job.session() as (manifest, _):  # doctest: +SKIP
    ...     settle(job.store, manifest, job.save)
    """
    for shard in waiting(manifest):
        source = source_of(store, shard)
        if source is None:
            gone = shard["linked"]["job"]
            _replan(shard, f"the job that carried these requests ({gone!r}) is gone: they are sent again")
            save()
            continue
        ready = _source_rows(store, manifest, shard, source)
        if ready is _REFUSED:
            _replan(shard, f"job {source!r} could not send these requests: they are sent again")
            save()
        elif ready is not None:
            move(shard, ShardState.HARVESTED, **_copy_answers(store, manifest["name"], shard, source, *ready))
            save()


#: What :func:`_source_rows` returns when the source will never send the rows.
_REFUSED: Any = object()


def _replan(shard: dict[str, Any], why: str) -> None:
    """The link is given up: the shard becomes an ordinary one, sent by this job."""
    move(shard, ShardState.PLANNED, remote_state=None, error={"message": why}, linked_from=shard.pop("linked"))


def _source_rows(store: Store, manifest: dict[str, Any], shard: dict[str, Any], source: str) -> Any:
    """This shard's rows and their rows in ``source``, once ``source`` has every answer stored; None while
    it has not; :data:`_REFUSED` if it never sent some and never will."""
    mine = store.read_table(store.requests_path(manifest["name"], 1), columns=["position", "shard", VIA])
    take = pc.equal(mine.column("shard"), shard["index"])
    positions = mine.column("position").filter(take).to_numpy()
    via = mine.column(VIA).filter(take).to_numpy()
    source_manifest = store.read_manifest(source)
    outcome = latest_results(source_manifest, store_reader(store, source))
    pairs = zip(outcome["attempt"][via].tolist(), outcome["shard"][via].tolist(), strict=True)
    records = {(a, s["index"]): s for a, s in iter_shards(source_manifest)}
    row_shards = [records.get(pair) for pair in dict.fromkeys(pairs)]
    # Given up only when the source will never send them: gone from its plan, or refused for good. A shard
    # failed for a passing reason is sent again by the source (prepare_sources), so it is waited for.
    if any(r is None or (state_of(r) is ShardState.FAILED and refused_outright(r)) for r in row_shards):
        return _REFUSED
    if not outcome["harvested"][via].all():
        return None
    return source_manifest, positions, via


def _copy_answers(store: Store, name: str, shard: dict[str, Any], source: str, source_manifest: dict[str, Any],
                  positions: np.ndarray, via: np.ndarray) -> dict[str, Any]:
    """Write the source's stored answers for ``via`` as this shard's results at ``positions``; the shard's
    fields as it moves to ``harvested``."""
    columns = HARVEST_SCHEMA.names + ([EMBEDDING.name] if is_embeddings(source_manifest) else [])
    tables = [store.read_table(store.job_dir(source) / s["results_file"], columns=columns)
              for _, s in iter_shards(source_manifest) if state_of(s) is ShardState.HARVESTED]
    found = latest_per_position(tables) if tables else HARVEST_SCHEMA.empty_table()
    row_of = pd.Index(found.column("position").to_numpy()).get_indexer(via)
    present = row_of >= 0  # a request the source has no result line for stays without one here too
    table = found.take(pa.array(row_of[present]))
    table = table.set_column(table.schema.get_field_index("position"), "position",
                             pa.array(positions[present], pa.int64()))
    table = table.set_column(table.schema.get_field_index("attempt"), "attempt",
                             pa.array(np.ones(int(present.sum()), np.int32)))
    index = read_labels(store.read_table(store.requests_path(name, 1), columns=["position"]))
    frame = table.to_pandas(types_mapper=pd.ArrowDtype)
    indexed, names = labels_table(index[positions[present]], {c: frame[c].array for c in frame.columns})
    path = store.results_path(name, 1, shard["index"])
    store.write_table(path, indexed, metadata={"job": name, "linked_from": source, "shard": shard["index"], **names})
    counts = pc.value_counts(table.column("status")).to_pylist()
    done = {c["values"]: c["counts"] for c in counts if c["values"] is not None}
    return {
        "results_file": str(path.relative_to(store.job_dir(name))),
        "n_results": table.num_rows,
        "result_counts": done,
        "counts": {**empty_counts(), **done, "processing": shard["n_requests"] - sum(done.values())},
        "remote_state": "ended",
        "input_tokens": 0,  # paid by the source job, counted there
        "output_tokens": 0,
        "cost_usd": 0.0,
    }
