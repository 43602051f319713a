"""The window between creating a remote batch and recording it: detect, report and adopt orphans.

A shard's ``creating`` state is written (with ``intent_at``) *before* the POST that creates its batch,
and the batch id right after the answer. A process killed in between (SIGKILL, a dead kernel, a read
timeout) leaves a shard in ``creating``: a remote batch may exist that no manifest names. The window
cannot be closed (the id only exists once the provider answered, and a Message Batch carries no
client-chosen tag), so the next run that holds the job's lock reconciles it before sending anything:

* **Exactly one candidate -> adopt it.** A candidate is a remote batch that no job of the store knows,
  with as many requests as the shard sent, created between ``intent_at - SKEW_SECONDS`` and the latest
  time its POST could have been answered (``POST_SECONDS`` plus the upload of the shard's bytes at
  ``UPLOAD_BYTES_PER_SECOND``). Its id is recorded on the shard (``adopted``), the adoption is reported
  on the ``batchframe`` logger (WARNING) by job name and batch id, and nothing is sent again.
* **Several candidates, or a candidate that another interrupted shard of the store could also own ->
  ask.** :class:`~batchframe.errors.OrphanBatchError` names the job, the shard and every candidate;
  nothing is sent. ``job.adopt(batch_id)`` picks one, ``job.adopt(None)`` declares that none is this
  shard's (it is then sent again, and may be paid twice if that was wrong). ``BATCHFRAME_ORPHANS=ask``
  asks even for a single candidate (for teams that share a key across several job stores).
* **No candidate -> send again**, once the intent is older than ``GRACE_SECONDS`` (a batch whose POST
  was still being answered when the process died appears within seconds). Before that the shard stays
  ``creating`` and a later run checks again.

Adoption never puts a result on the wrong row: results are matched by custom_id through the shard's
persisted mapping (``requests*.parquet``), and before an adopted batch is harvested its result ids must
be exactly the ids the shard sent (:func:`verify_adopted`); otherwise the adoption is undone and
reported, and no result is written.

Known limit: custom_ids are row positions (``r0``, ``r1``, ...), not job-specific, so a same-sized
batch created in the same minute *by another job store* with the same key would pass these checks.
Within one store that case is asked about, never adopted; across stores, set ``BATCHFRAME_ORPHANS=ask``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow.compute as pc

from batchframe.config import orphans_ask
from batchframe.errors import JobError, OrphanBatchError
from batchframe.jobs.harvest import shard_mapping
from batchframe.jobs.manifest import iter_shards, now, parse_time
from batchframe.jobs.states import ShardState, move, record_batch, state_of
from batchframe.jobs.store import MANIFEST, Store
from batchframe.providers.base import Provider, RemoteBatch

log = logging.getLogger("batchframe")

#: Clock difference tolerated between this machine and the provider.
SKEW_SECONDS = 60.0
#: Longest a create POST takes to be answered, besides uploading its body.
POST_SECONDS = 120.0
#: Slowest upload assumed for a shard's body (0.5 MB/s: 256 MB in under 9 minutes).
UPLOAD_BYTES_PER_SECOND = 500_000
#: Seconds after an intent before "no remote batch" is trusted and the shard is sent again.
GRACE_SECONDS = 30.0


class Known(dict[str, tuple[str, int, int]]):
    """``batch_id -> (job, attempt, shard)``, plus the jobs whose batch ids could not be read (``unreadable``):
    while there is one, no batch is adopted without asking (it could be that job's)."""

    unreadable: list[str]


def known_batches(store: Store) -> Known:
    """``batch_id -> (job, attempt, shard)`` of every batch any job of the store recorded.

    A manifest this version cannot open (written by a newer batchframe) is still scanned for its batch ids;
    one that cannot be parsed at all is listed in ``unreadable``.

    Examples
    --------
    >>> known = known_batches(Store("/nonexistent"))
    >>> dict(known), known.unreadable
    ({}, [])
    """
    known = Known()
    known.unreadable = []
    for name, read in store.manifests(revisions=True):
        manifest = _raw_manifest(store, name) if isinstance(read, JobError) else read
        if manifest is None:
            known.unreadable.append(name)
            continue
        for attempt, shard in _raw_shards(manifest):
            for batch_id in (shard.get("batch_id"), *(shard.get("rejected") or ())):
                if isinstance(batch_id, str) and batch_id:
                    known[batch_id] = (name, attempt, shard.get("index", -1))
    return known


def _raw_manifest(store: Store, name: str) -> dict[str, Any] | None:
    try:
        data = json.loads((store.job_dir(name) / MANIFEST).read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _raw_shards(manifest: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """Shards of a manifest of any format, tolerating missing keys."""
    return [(a.get("attempt", 0), s) for a in manifest.get("attempts") or () if isinstance(a, dict)
            for s in a.get("shards") or () if isinstance(s, dict)]


def intent_window(shard: dict[str, Any]) -> tuple[datetime, datetime] | None:
    """The creation times a batch of this interrupted shard can have (None without an intent time).

    Examples
    --------
    >>> start, stop = intent_window({"intent_at": "2026-01-01T10:00:00Z", "n_bytes": 1_000_000})
    >>> start.isoformat(), stop.isoformat()
    ('2026-01-01T09:59:00+00:00', '2026-01-01T10:03:02+00:00')
    """
    intent = parse_time(shard.get("intent_at"))
    if intent is None:
        return None
    upload = float(shard.get("n_bytes") or 0) / UPLOAD_BYTES_PER_SECOND
    return (intent - timedelta(seconds=SKEW_SECONDS),
            intent + timedelta(seconds=SKEW_SECONDS + POST_SECONDS + upload))


def candidates(shard: dict[str, Any], batches: list[RemoteBatch], known: dict[str, Any]) -> list[RemoteBatch]:
    """Remote batches that may be this interrupted shard's: unknown, in its time window, same size.

    Examples
    --------
    >>> shard = {"intent_at": "2026-01-01T10:00:00Z", "n_requests": 2}
    >>> batch = RemoteBatch("b1", "in_progress", {"processing": 2}, created_at=parse_time("2026-01-01T10:00:01Z"))
    >>> [b.id for b in candidates(shard, [batch], known={})]
    ['b1']
    >>> candidates(shard, [batch], known={"b1": ("other", 1, 0)})
    []
    """
    tag = shard.get("tag")
    if tag:  # the provider keeps the tag the batch was created with: the match is exact
        return [b for b in batches if b.id not in known and tag in (b.tags or {}).values()]
    window = intent_window(shard)
    if window is None:
        return []
    start, stop = window
    return [b for b in batches
            if b.id not in known and b.n_requests == shard["n_requests"]
            and b.created_at is not None and start <= b.created_at <= stop]


def recent_batches(provider: Provider, since: datetime, *, page_size: int = 1000) -> list[RemoteBatch]:
    """Remote batches created at or after ``since`` (the list is newest first: stop at the first older).

    Examples
    --------
    >>> recent_batches(provider, datetime(2026, 1, 1, tzinfo=UTC))  # doctest: +SKIP
    """
    out = []
    for batch in provider.iter_batches(page_size=page_size):
        if batch.created_at is not None and batch.created_at < since:
            break
        out.append(batch)
    return out


def reconcile(store: Store, manifest: dict[str, Any], provider: Provider, save: Callable[[], None]) -> list[str]:
    """Resolve every ``creating`` shard of a job (caller holds the job's lock); returns what was done.

    Examples
    --------
    >>> reconcile(store, manifest, provider, save=lambda: None)  # doctest: +SKIP
    ["job 'reviews': attempt 1 shard 0 was interrupted ...; adopted remote batch msgbatch_..."]

    Raises
    ------
    OrphanBatchError
        A shard has several candidate batches: the user must choose (``job.adopt``).
    """
    creating = [(a, s) for a, s in iter_shards(manifest) if state_of(s) is ShardState.CREATING]
    if not creating:
        return []
    windows = [w for _, s in creating if (w := intent_window(s)) is not None]
    batches = recent_batches(provider, min(w[0] for w in windows)) if windows else []
    known = known_batches(store)
    others = [(n, a, s) for n, a, s in interrupted_shards(store) if n != manifest["name"]]
    others += [(manifest["name"], a, s) for a, s in creating]
    return [_resolve(manifest, attempt, shard, batches, known, others, save) for attempt, shard in creating]


def interrupted_shards(store: Store) -> list[tuple[str, int, dict[str, Any]]]:
    """``(job, attempt, shard)`` of every shard of the store left ``creating``.

    Examples
    --------
    >>> interrupted_shards(Store("/nonexistent"))
    []
    """
    return [(name, a, s) for name, manifest in store.manifests(revisions=True) if not isinstance(manifest, JobError)
            for a, s in iter_shards(manifest) if state_of(s) is ShardState.CREATING]


def _resolve(manifest: dict[str, Any], attempt: int, shard: dict[str, Any], batches: list[RemoteBatch],
             known: Known, interrupted: list[tuple[str, int, dict]], save: Callable[[], None]) -> str:
    name, where = manifest["name"], f"attempt {attempt} shard {shard['index']}"
    found = [b for b in candidates(shard, batches, known) if b.id not in (shard.get("rejected") or ())]
    rivals = sorted({f"{n!r} attempt {a} shard {s['index']}" for n, a, s in interrupted
                     if s is not shard and candidates(s, found, known)})
    rivals += [f"{n!r} (its manifest cannot be read)" for n in known.unreadable]
    if len(found) == 1 and not rivals and not orphans_ask():
        adopt_batch(shard, found[0], how="automatic")
        save()
        return _report(f"job {name!r}: {where} was interrupted between creating its batch and recording it; "
                       f"adopted remote batch {found[0].id} (created {found[0].created_at}, "
                       f"{shard['n_requests']} requests); nothing was sent again")
    if found:
        ids = tuple(b.id for b in found)
        also = f" (the interrupted {', '.join(rivals)} could own them too)" if rivals else ""
        raise OrphanBatchError(
            f"job {name!r}: {where} was interrupted while creating its batch, and {len(ids)} remote batch(es) "
            f"match it: {', '.join(ids)}{also}. Nothing was sent. Choose with batchframe.open_job({name!r})"
            f".adopt('<batch id>', attempt={attempt}, shard={shard['index']}) (the others stay orphans: see "
            f"batchframe.remote_batches()), or .adopt(None, ...) if none of them is this shard's (it is then "
            f"sent again).", job=name, attempt=attempt, shard=shard["index"], candidates=ids)
    intent = parse_time(shard.get("intent_at"))
    age = (datetime.now(UTC) - intent).total_seconds() if intent is not None else 1e9
    if age < GRACE_SECONDS:
        return _report(f"job {name!r}: {where} was interrupted while creating its batch {age:.0f} s ago and no "
                       f"remote batch matches yet; checking again on the next run (after {GRACE_SECONDS:.0f} s "
                       f"it is sent again)")
    move(shard, ShardState.PLANNED, error={"message": f"interrupted POST at {shard.get('intent_at')} created no "
                                                      "remote batch (none found); safe to send again"})
    save()
    return _report(f"job {name!r}: {where} was interrupted while creating its batch; no remote batch was "
                   f"created, so it will be sent again")


def adopt_batch(shard: dict[str, Any], batch: RemoteBatch, *, how: str) -> None:
    """Record ``batch`` as the shard's remote batch, marked as adopted (verified before harvest).

    Examples
    --------
    >>> shard = {"state": "creating", "batch_id": None}
    >>> adopt_batch(shard, RemoteBatch("b1", "in_progress", {"processing": 1}), how="automatic")
    >>> shard["state"], shard["batch_id"], shard["adopted"]["verified"]
    ('submitted', 'b1', False)
    """
    shard["adopted"] = {"batch_id": batch.id, "at": now(), "how": how, "verified": False}
    record_batch(shard, batch)


def _report(message: str) -> str:
    log.warning(message)
    return message


def verify_adopted(provider: Provider, store: Store, manifest: dict[str, Any], attempt: int,
                   shard: dict[str, Any]) -> None:
    """Before harvesting an adopted batch: its result ids must be exactly the ids the shard sent.

    On a mismatch the adoption is undone (the batch id goes to ``rejected`` and the shard back to
    ``creating``) and :class:`OrphanBatchError` says so; no result is written.

    Examples
    --------
    >>> verify_adopted(provider, store, manifest, 1, shard)  # doctest: +SKIP
    """
    known, _ = shard_mapping(store, manifest["name"], attempt, shard["index"])
    parser = provider.result_parser()
    with provider.stream_results(shard["batch_id"]) as chunks:
        for chunk in chunks:
            parser.feed(chunk)
    got = pc.unique(parser.finish().column("custom_id").combine_chunks())
    sent = pc.unique(known)
    exact = len(got) == len(sent) and bool(pc.all(pc.is_in(got, value_set=sent)).as_py())
    if exact:
        shard["adopted"]["verified"] = True
        return
    batch_id = shard["batch_id"]
    move(shard, ShardState.CREATING, batch_id=None, remote_state=None, counts=None,
         rejected=[*(shard.get("rejected") or ()), batch_id])
    shard.pop("adopted", None)
    raise OrphanBatchError(
        f"job {manifest['name']!r}: adopted batch {batch_id} is not attempt {attempt} shard {shard['index']}'s "
        f"(its {len(got)} result ids differ from the {len(sent)} the shard sent); adoption undone, no result "
        f"written. Run again to look for the right batch, or batchframe.open_job({manifest['name']!r}).adopt(...)",
        job=manifest["name"], attempt=attempt, shard=shard["index"], candidates=(batch_id,))


def adopt_chosen(store: Store, manifest: dict[str, Any], provider: Provider, batch_id: str | None, *,
                 attempt: int | None = None, shard: int | None = None) -> str:
    """The user's answer for an interrupted shard: adopt ``batch_id``, or (None) send the shard again.

    Examples
    --------
    >>> adopt_chosen(store, manifest, provider, "msgbatch_01")  # doctest: +SKIP
    "job 'reviews' attempt 1 shard 0: adopted remote batch msgbatch_01"
    """
    target_attempt, target = _creating_shard(manifest, attempt, shard)
    where = f"job {manifest['name']!r} attempt {target_attempt} shard {target['index']}"
    if batch_id is None:
        move(target, ShardState.PLANNED, error={"message": "the user declared that no remote batch is this shard's"})
        return _report(f"{where}: no remote batch adopted; it will be sent again")
    owner = known_batches(store).get(batch_id)
    if owner is not None:
        raise JobError(f"batch {batch_id} already belongs to job {owner[0]!r} (attempt {owner[1]} shard {owner[2]})")
    batch = provider.retrieve(batch_id)
    if batch.n_requests != target["n_requests"]:
        raise JobError(f"batch {batch_id} has {batch.n_requests} requests, {where} sent {target['n_requests']}: "
                       "it cannot be this shard's batch")
    adopt_batch(target, batch, how="user")
    return _report(f"{where}: adopted remote batch {batch_id}")


def _creating_shard(manifest: dict[str, Any], attempt: int | None, shard: int | None) -> tuple[int, dict]:
    found = [(a, s) for a, s in iter_shards(manifest) if state_of(s) is ShardState.CREATING
             and (attempt is None or a == attempt) and (shard is None or s["index"] == shard)]
    if len(found) != 1:
        what = "no shard" if not found else f"{len(found)} shards"
        raise JobError(f"job {manifest['name']!r}: {what} left 'creating' match; name one with attempt=..., shard=...")
    return found[0]
