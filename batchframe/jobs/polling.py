"""The one poll loop: ask, (maybe) send what is proven unsent, decide whether it is over, pause, again.

:class:`PollLoop` holds the loop's state and policy; :func:`wait` (blocking, with a bar), :func:`wait_async`
(an event loop) and the widget's monitor thread (:mod:`batchframe.progress.monitor`) drive it and differ
only in how they pause. The job is the state source; renderers only receive its snapshots.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from batchframe.errors import JobError, JobTimeoutError, OverloadedError, RateLimitError, ServerError, TransportError
from batchframe.jobs.states import ShardState
from batchframe.jobs.views import VIEWS
from batchframe.types import JobStatus

#: Polls in a row that may fail transiently before wait() gives up (each already retried over HTTP).
POLL_FAILURES = 3
#: Failures wait() rides out; any other error is raised at once.
TRANSIENT: tuple[type[Exception], ...] = (TransportError, RateLimitError, OverloadedError, ServerError)
_sleep = time.sleep  # the one blocking pause of wait(); a name of its own so a test can interrupt it
_INTERRUPTED = (
    "\nStopped waiting for job {name!r}. Its remote batches were NOT canceled and keep running; "
    "re-attach later with batchframe.open_job({name!r}) (then .wait() / .results()), or cancel with job.cancel()."
)


class StateSource(Protocol):
    """Anything that can be polled: a Job, or a scripted source in a test."""

    def refresh(self) -> JobStatus: ...


class Sender(StateSource, Protocol):
    def send_unsent(self, lines: Sequence[bytes] | None = None) -> JobStatus: ...


@dataclass(frozen=True)
class Backoff:
    """Pauses between polls: start at ``initial`` seconds, times ``factor`` after each poll, capped at ``maximum``.

    Examples
    --------
    >>> list(Backoff(initial=1, factor=2, maximum=5).intervals(5))
    [1.0, 2.0, 4.0, 5.0, 5.0]
    """

    initial: float = 1.0
    factor: float = 1.5
    maximum: float = 60.0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.factor < 1 or self.maximum < self.initial:
            raise ValueError("Backoff needs initial > 0, factor >= 1 and maximum >= initial")

    @classmethod
    def fixed(cls, interval: float) -> Backoff:
        """The same pause every time.

        Examples
        --------
        >>> Backoff.fixed(5).intervals(2)
        [5.0, 5.0]
        """
        return cls(initial=interval, factor=1.0, maximum=interval)

    def next(self, interval: float) -> float:
        return float(min(self.maximum, interval * self.factor))

    def intervals(self, n: int) -> list[float]:
        out, value = [], float(self.initial)
        for _ in range(n):
            out.append(value)
            value = self.next(value)
        return out


class PollLoop:
    """The state of one poll loop over ``source``.

    Parameters
    ----------
    source
        ``refresh() -> JobStatus``; with ``send_planned``, also ``send_unsent()``.
    backoff
        The pauses.
    timeout
        Seconds after which :meth:`pause` raises :class:`JobTimeoutError`; None for no limit.
    max_failures
        Failed polls in a row tolerated; :attr:`gave_up` after one more.
    tolerate
        The errors a poll may fail with (counted, kept in :attr:`last_error`); any other propagates.
    send_planned
        After a refresh, send the shards proven to have no remote batch (``planned``). The monitor behind
        a notebook widget leaves this off: displaying a job never spends money.

    Examples
    --------
    >>> loop = PollLoop(job, backoff=Backoff.fixed(5), send_planned=True)  # doctest: +SKIP
    >>> status = loop.poll(); loop.finished(status), loop.pause()  # doctest: +SKIP
    (False, 5.0)
    """

    def __init__(
        self,
        source: StateSource,
        *,
        backoff: Backoff,
        timeout: float | None = None,
        max_failures: int = POLL_FAILURES,
        tolerate: tuple[type[BaseException], ...] = TRANSIENT,
        send_planned: bool = False,
    ) -> None:
        self.source = source
        self.backoff = backoff
        self.timeout = timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.max_failures = max_failures
        self.tolerate = tolerate
        self.send_planned = send_planned
        self.failures = 0
        self.polls = 0
        self.last_error: BaseException | None = None
        self._interval = float(backoff.initial)

    @property
    def gave_up(self) -> bool:
        """True once more than ``max_failures`` polls in a row have failed."""
        return self.failures > self.max_failures

    def poll(self) -> JobStatus | None:
        """One refresh (then sending planned shards, if asked); None when it failed with a tolerated error."""
        self.polls += 1
        try:
            status = self.source.refresh()
            if self.send_planned and any(s.local_state == ShardState.PLANNED for s in status.shards):
                status = self.source.send_unsent()  # type: ignore[attr-defined]
        except self.tolerate as exc:
            self.failures += 1
            self.last_error = exc
            return None
        self.failures, self.last_error = 0, None
        return status

    def finished(self, status: JobStatus) -> bool:
        """Whether the loop is over. A refused shard ends it with an error; an interrupted one (``creating``)
        is reconciled by the next refresh."""
        refused = [s for s in status.shards if s.local_state == ShardState.FAILED]
        if refused:
            raise JobError(
                f"job {status.name!r}: attempt {refused[0].attempt} shard {refused[0].index} was refused by the "
                "provider (see job.manifest for the error); fix the cause and submit again to send it"
            )
        return status.ended

    def pause(self) -> float:
        """Seconds to wait before the next poll; raises JobTimeoutError once the deadline has passed."""
        interval, self._interval = self._interval, self.backoff.next(self._interval)
        if self.deadline is None:
            return interval
        left = self.deadline - time.monotonic()
        if left <= 0:
            name = getattr(self.source, "name", "?")
            raise JobTimeoutError(
                f"job {name!r} still running after {self.timeout} s; its batches keep running "
                f"(re-attach with batchframe.open_job({name!r}))"
            )
        return min(interval, left)

    def restart(self) -> None:
        """Start the backoff over (a poll was asked for now)."""
        self._interval = float(self.backoff.initial)


def wait(job: Sender, *, poll_interval: float = 10.0, timeout: float | None = None) -> JobStatus:
    """Block until every shard of ``job`` has ended and its results are stored, drawing a bar.

    Ctrl-C stops waiting and says so; the remote batches keep running.

    Examples
    --------
    >>> wait(job, poll_interval=5, timeout=3600).state  # doctest: +SKIP
    'ended'
    """
    loop = PollLoop(job, backoff=Backoff.fixed(poll_interval), timeout=timeout, send_planned=True)
    name = getattr(job, "name", "job")
    bar = VIEWS.bar(name, sum(job.status.counts.values()))  # type: ignore[attr-defined]
    ok = False
    try:
        while True:
            status = _checked(loop)
            if status is not None:
                bar.update(status)
                if loop.finished(status):
                    ok = status.counts["succeeded"] == sum(status.counts.values())
                    return status
            _sleep(loop.pause())
    except KeyboardInterrupt:
        print(_INTERRUPTED.format(name=name), file=sys.stderr)
        raise
    finally:
        bar.close(ok=ok)


async def wait_async(job: Sender, *, poll_interval: float = 10.0, timeout: float | None = None) -> JobStatus:
    """:func:`wait` for an event loop: polls run in a worker thread, the pauses are ``asyncio.sleep``.

    Examples
    --------
    >>> status = await wait_async(job, poll_interval=5)  # doctest: +SKIP
    """
    loop = PollLoop(job, backoff=Backoff.fixed(poll_interval), timeout=timeout, send_planned=True)
    while True:
        status = await asyncio.to_thread(_checked, loop)
        if status is not None and loop.finished(status):
            return status
        await asyncio.sleep(loop.pause())


def _checked(loop: PollLoop) -> JobStatus | None:
    status = loop.poll()
    if status is None and loop.gave_up and loop.last_error is not None:
        raise loop.last_error
    return status
