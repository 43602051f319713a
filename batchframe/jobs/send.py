"""Sending a shard: persist the intent, POST its batch, record the answer, and never pay twice.

The shard moves to ``creating`` (with ``intent_at``) and the manifest is saved *before* the POST, so a
process killed after it is detectable (:mod:`batchframe.jobs.orphans`); the batch id is saved right after.

A create POST answered with a retryable error (429, 529, 5xx, 408, 409) is not simply sent again:
the error may have been raised *after* the provider created the batch (the answer was lost). Since the
provider has answered, it is done with that POST, so a batch it created is already in its batch list.
Before every resend the list is checked for a candidate (unknown to the store, same request count,
created since the intent; see :func:`batchframe.jobs.orphans.candidates`): one candidate is adopted (and
verified before harvest), none means nothing was created and the POST is sent again, several are left
to :func:`batchframe.jobs.orphans.reconcile`, which asks the user.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from batchframe.errors import APIError, TransportError
from batchframe.jobs.bodies import sent_lines
from batchframe.jobs.ledger import job_uid
from batchframe.jobs.manifest import now, parse_time
from batchframe.jobs.orphans import SKEW_SECONDS, adopt_batch, candidates, known_batches, recent_batches
from batchframe.jobs.states import ShardState, move, record_batch
from batchframe.jobs.store import Store
from batchframe.providers.base import Provider, RemoteBatch
from batchframe.providers.http import RetryPolicy


def send_shard(
    store: Store,
    manifest: dict[str, Any],
    shard: dict[str, Any],
    body: bytes,
    provider: Provider,
    policy: RetryPolicy,
    save: Callable[[], None],
    *,
    record: Callable[[], None] | None = None,
) -> None:
    """Create ``shard``'s remote batch from its ``body`` (``provider.codec.frame_shard`` of its request lines),
    persisting before and after the POST (after it through ``record`` when given: the caller then saves,
    e.g. with the next shard's intent).

    Raises what the provider raised, after recording it on the shard: ``failed`` when it refused and
    created nothing, ``planned`` when the request provably never left, ``creating`` when a batch may exist.

    Examples
    --------
    >>> send_shard(job.store, manifest, shard, provider.codec.frame_shard(lines), provider, RetryPolicy(),
    ...            job.save)  # doctest: +SKIP
    >>> shard["state"]  # doctest: +SKIP
    'submitted'
    """
    options: dict[str, Any] = {}
    if provider.capabilities.client_tags:  # the batch names its job and shard: orphans match exactly
        shard["tag"] = options["tag"] = shard_tag(manifest, shard)
    move(shard, ShardState.CREATING, intent_at=now(), error=None)
    save()  # persisted BEFORE the POST: a crash after it is detectable
    if provider.capabilities.needs_upload:  # the upload is a step of its own, persisted before the create
        if not shard.get("staged"):
            shard["staged"] = provider.stage(body, tag=options.get("tag") or shard_tag(manifest, shard))
            save()
        options["staged"] = shard["staged"]
    betas = (manifest.get("request") or {}).get("betas") or ()
    try:
        batch = create_checked(provider, store, shard, body, policy, betas=betas, **options)
    except Ambiguous as exc:  # a batch may exist: stays "creating" for orphans.reconcile
        move(shard, ShardState.CREATING, error=_error_record(exc.error))
        save()
        raise exc.error from exc
    except APIError as exc:  # refused, and the batch list shows nothing was created
        move(shard, ShardState.FAILED, error=_error_record(exc))
        save()
        raise
    except TransportError as exc:
        move(shard, ShardState.CREATING if exc.maybe_sent else ShardState.PLANNED, error={"message": str(exc)})
        save()
        raise
    if batch is not None:
        record_batch(shard, batch)
    (record or save)()  # the batch id, right after the POST (``record``: saved by the caller, see Job._send_wave)


def shard_tag(manifest: dict[str, Any], shard: dict[str, Any]) -> str:
    """The tag a shard's batch carries (where the provider keeps client tags): the job's uid, attempt, shard.

    Examples
    --------
    >>> m = {"uid": "u1", "attempts": [{"attempt": 1, "shards": [{"index": 0}]}]}
    >>> shard_tag(m, m["attempts"][0]["shards"][0])
    'u1:a1:s0'
    """
    attempt = next(a["attempt"] for a in manifest["attempts"] if any(s is shard for s in a["shards"]))
    return f"{job_uid(manifest)}:a{attempt}:s{shard['index']}"


def shard_lines(store: Store, name: str, attempt: int, index: int) -> list[bytes]:
    """The request lines a shard sends, from the persisted requests of its attempt.

    Examples
    --------
    >>> len(shard_lines(job.store, job.name, 1, 0))  # doctest: +SKIP
    40
    """
    return sent_lines(store, name, attempt, shard=index)


def _error_record(exc: APIError) -> dict[str, Any]:
    return {"status": exc.status, "type": exc.error_type, "message": exc.message, "request_id": exc.request_id}


class Ambiguous(Exception):
    """The create failed and the batch list cannot tell whether a batch exists (leave it ``creating``).

    Examples
    --------
    >>> from batchframe.errors import ServerError
    >>> Ambiguous(ServerError("boom", status=500)).error.status
    500
    """

    def __init__(self, error: APIError):
        super().__init__(str(error))
        self.error = error


def create_checked(
    provider: Provider,
    store: Store,
    shard: dict[str, Any],
    body: bytes,
    retry: RetryPolicy,
    *,
    betas: Sequence[str] = (),
    sleep: Callable[[float], None] = time.sleep,
    **options: Any,
) -> RemoteBatch | None:
    """POST the shard's body; returns the new batch, or None when a batch created anyway was adopted
    (recorded on ``shard``).

    Raises
    ------
    APIError
        The provider refused it and created nothing (checked): safe to send again later.
    Ambiguous
        Several listed batches could be this shard's, or the list could not be read: the shard is left
        for :func:`batchframe.jobs.orphans.reconcile`.

    Examples
    --------
    >>> batch = create_checked(provider, store, shard, body, RetryPolicy())  # doctest: +SKIP
    """
    for attempt in range(retry.max_retries + 1):
        try:
            return provider.create(body, betas=betas, **options) if betas or options else provider.create(body)
        except APIError as exc:
            if not exc.retryable:
                raise
            try:
                found = _created_anyway(provider, store, shard)
            except (APIError, TransportError, ValueError) as check:
                raise Ambiguous(exc) from check
            if len(found) == 1 and not found.unreadable:
                adopt_batch(shard, found[0], how="after an error answer to its create call")
                return None
            if found:
                raise Ambiguous(exc) from exc
            if attempt == retry.max_retries:
                raise
            sleep(retry.delay(attempt, hinted=exc.retry_after))
    raise AssertionError("unreachable")


def _created_anyway(provider: Provider, store: Store, shard: dict[str, Any]) -> _Found:
    intent = parse_time(shard["intent_at"])
    if intent is None:  # recorded before every POST; without it the list cannot tell: never resend blindly
        raise ValueError(f"shard {shard['index']} has no intent time")
    since = intent - timedelta(seconds=SKEW_SECONDS)
    known = known_batches(store)
    found = _Found(candidates(shard, recent_batches(provider, since), known))
    found.unreadable = known.unreadable
    return found


class _Found(list[RemoteBatch]):
    """Candidate batches, and the jobs whose batches could not be read (then a single one is not adopted)."""

    unreadable: list[str]
