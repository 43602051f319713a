"""Waiting for a job: poll, send what is proven unsent, show progress, stop cleanly on Ctrl-C.

The job is the state source; the bar (:mod:`batchframe.progress`) only renders its snapshots.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TYPE_CHECKING

from .errors import JobError, JobTimeoutError, OverloadedError, RateLimitError, ServerError, TransportError
from .manifest import iter_shards
from .progress import TextProgress
from .status import JobStatus

if TYPE_CHECKING:
    from .job import Job

#: Polls in a row that may fail transiently before wait() gives up (each already retried over HTTP).
POLL_FAILURES = 3
_TRANSIENT = (TransportError, RateLimitError, OverloadedError, ServerError)
_sleep = time.sleep  # the one blocking pause of wait(); a name of its own so a test can interrupt it
_INTERRUPTED = (
    "\nStopped waiting for job {name!r}. Its remote batches were NOT canceled and keep running; "
    "re-attach later with Job.open({name!r}) (then .wait() / .results()), or cancel with job.cancel()."
)


def wait(job: Job, *, poll_interval: float = 10.0, timeout: float | None = None) -> JobStatus:
    """Block until every shard of ``job`` has ended and its results are stored (see :meth:`Job.wait`).

    Examples
    --------
    >>> wait(job, poll_interval=5, timeout=3600).state  # doctest: +SKIP
    'ended'
    """
    from .catalog import with_row_counts  # catalog imports job, which imports this module

    deadline = None if timeout is None else time.monotonic() + timeout
    bar = TextProgress(job.name, total=sum(job.status.row_outcomes.values()))
    ok, failures = False, [0]
    try:
        while True:
            status = poll(job, failures)
            if status is not None:
                status = with_row_counts(job, status)
                bar.update(status)
                if finished(job, status):
                    outcomes = status.row_outcomes
                    ok = outcomes["succeeded"] == sum(outcomes.values())
                    return status
            _sleep(pause(job, poll_interval, deadline, timeout))
    except KeyboardInterrupt:
        print(_INTERRUPTED.format(name=job.name), file=sys.stderr)
        raise
    finally:
        bar.close(ok=ok)


async def wait_async(job: Job, *, poll_interval: float = 10.0, timeout: float | None = None) -> JobStatus:
    """:func:`wait` for an event loop: refreshes run in a worker thread, the pauses are ``asyncio.sleep``.

    Examples
    --------
    >>> status = await wait_async(job, poll_interval=5)  # doctest: +SKIP
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    failures = [0]
    while True:
        status = await asyncio.to_thread(poll, job, failures)
        if status is not None and finished(job, status):
            return status
        await asyncio.sleep(pause(job, poll_interval, deadline, timeout))


def poll(job: Job, failures: list[int]) -> JobStatus | None:
    """One refresh, then sending any ``planned`` shard (proven to have no remote batch); None after a
    transient failure, tolerated :data:`POLL_FAILURES` times in a row (``failures`` counts them).

    Examples
    --------
    >>> poll(job, [0]).state  # doctest: +SKIP
    'in_progress'
    """
    try:
        status = job.refresh()
        if any(s["state"] == "planned" for _, s in iter_shards(job.manifest)):
            status = job.send_unsent()
    except _TRANSIENT:
        failures[0] += 1
        if failures[0] > POLL_FAILURES:
            raise
        return None
    failures[0] = 0
    return status


def finished(job: Job, status: JobStatus) -> bool:
    """Whether waiting is over. A refused shard stops it; an interrupted one (``creating``) is reconciled
    by the next refresh.

    Examples
    --------
    >>> finished(job, job.status)  # doctest: +SKIP
    False
    """
    refused = [s for _, s in iter_shards(job.manifest) if s["state"] == "failed"]
    if refused:
        raise JobError(
            f"job {job.name!r}: shard {refused[0]['index']} was refused by the provider "
            f"({refused[0].get('error')}); fix the cause and submit again to send it"
        )
    return status.ended


def pause(job: Job, poll_interval: float, deadline: float | None, timeout: float | None) -> float:
    """Seconds to sleep before the next poll; raises JobTimeoutError once the deadline has passed.

    Examples
    --------
    >>> pause(job, 5.0, None, None)  # doctest: +SKIP
    5.0
    """
    if deadline is None:
        return poll_interval
    left = deadline - time.monotonic()
    if left <= 0:
        raise JobTimeoutError(
            f"job {job.name!r} still running after {timeout} s; its batches keep running "
            f"(re-attach with Job.open({job.name!r}))"
        )
    return min(poll_interval, left)
