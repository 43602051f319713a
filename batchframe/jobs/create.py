"""Creating a shard's remote batch without ever paying twice.

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
from batchframe.jobs.manifest import parse_time
from batchframe.jobs.orphans import SKEW_SECONDS, adopt_batch, candidates, known_batches, recent_batches
from batchframe.jobs.store import Store
from batchframe.providers.base import Provider, RemoteBatch
from batchframe.providers.http import RetryPolicy


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
            return provider.create(body, betas=betas) if betas else provider.create(body)
        except APIError as exc:
            if not exc.retryable:
                raise
            try:
                found = _created_anyway(provider, store, shard)
            except (APIError, TransportError) as check:
                raise Ambiguous(exc) from check
            if len(found) == 1:
                adopt_batch(shard, found[0], how="after an error answer to its create call")
                return None
            if found:
                raise Ambiguous(exc) from exc
            if attempt == retry.max_retries:
                raise
            sleep(retry.delay(attempt, hinted=exc.retry_after))
    raise AssertionError("unreachable")


def _created_anyway(provider: Provider, store: Store, shard: dict[str, Any]) -> list[RemoteBatch]:
    intent = parse_time(shard["intent_at"])
    if intent is None:  # the intent is recorded before every POST; without it nothing can be matched
        return []
    since = intent - timedelta(seconds=SKEW_SECONDS)
    return candidates(shard, recent_batches(provider, since), known_batches(store))
