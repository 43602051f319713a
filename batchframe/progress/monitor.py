"""A background thread that drives the one poll loop (:class:`batchframe.jobs.polling.PollLoop`) and hands each
snapshot to a renderer.

The state source is anything with ``refresh() -> JobStatus`` (a :class:`~batchframe.jobs.job.Job`, usually); the
renderers (text, ipywidgets) only receive :class:`~batchframe.types.JobStatus` objects. The thread:

- polls at a growing interval (:class:`~batchframe.jobs.polling.Backoff`): a 20-hour batch costs a few thousand
  requests, not millions; it never sends a shard (displaying a job never spends money);
- stops by itself once the job has ended, after ``max_errors`` failed polls in a row, or after
  ``max_seconds``;
- stops at once when closed (it waits on an :class:`threading.Event`, never in ``time.sleep``);
- is a daemon thread that never holds a lock the kernel needs, so other notebook cells keep running.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import weakref
from collections.abc import Callable

from batchframe.errors import JobTimeoutError
from batchframe.jobs.polling import Backoff, PollLoop, StateSource
from batchframe.types import JobStatus

__all__ = ["Monitor", "live_monitors"]


# Every monitor whose thread is alive, so a notebook (or a test) can see and close them.
_LIVE: weakref.WeakSet[Monitor] = weakref.WeakSet()


def live_monitors() -> list[Monitor]:
    """The monitors whose polling thread is still running.

    Examples
    --------
    >>> from batchframe.progress.monitor import live_monitors
    >>> [m.close() for m in live_monitors()]  # stop every live widget  # doctest: +SKIP
    """
    return [m for m in list(_LIVE) if m.running]


@atexit.register
def _close_live_monitors() -> None:
    """Stop polling before the interpreter tears down modules under a still-running daemon thread."""
    for monitor in live_monitors():
        monitor.close(timeout=1.0)


class Monitor:
    """Poll ``source.refresh()`` in a daemon thread and pass each :class:`JobStatus` to ``on_update``.

    Parameters
    ----------
    source
        Anything with ``refresh() -> JobStatus``.
    on_update
        Called in the monitor thread with every snapshot (keep it quick; it must not raise).
    on_error
        Called with the exception when a poll fails; the monitor keeps polling (backing off) until
        ``max_errors`` polls in a row have failed.
    on_stop
        Called once, in the monitor thread, when it stops, with the reason: ``"ended"``, ``"closed"``,
        ``"errors"`` (too many failed polls), ``"timeout"`` or ``"error"`` (a callback raised).
    backoff, max_seconds, max_errors
        The polling policy and its bounds.

    Examples
    --------
    >>> monitor = Monitor(job, on_update=print).start()  # doctest: +SKIP
    >>> monitor.close()  # doctest: +SKIP
    """

    def __init__(
        self,
        source: StateSource,
        *,
        on_update: Callable[[JobStatus], None],
        on_error: Callable[[BaseException], None] | None = None,
        on_stop: Callable[[str], None] | None = None,
        backoff: Backoff | None = None,
        max_seconds: float = 26 * 3600.0,  # a batch expires after 24 h; leave room for the final poll
        max_errors: int = 10,
    ) -> None:
        self._source = source
        self._on_update = on_update
        self._on_error = on_error
        self._on_stop = on_stop
        self.backoff = backoff or Backoff()
        self.max_seconds = max_seconds
        self.max_errors = max_errors
        self._closed = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.polls = 0
        self.stop_reason: str | None = None
        self.last_status: JobStatus | None = None
        self.last_error: BaseException | None = None

    # -- control -------------------------------------------------------------------------------------------
    def start(self) -> Monitor:
        if self._thread is not None:
            raise RuntimeError("a Monitor can be started once")
        self._thread = threading.Thread(target=self._run, name="batchframe-monitor", daemon=True)
        _LIVE.add(self)
        self._thread.start()
        return self

    def poke(self) -> None:
        """Poll now and restart the backoff from its initial interval (the Refresh button)."""
        self._wake.set()

    def close(self, timeout: float | None = 5.0) -> None:
        """Stop the thread and wait up to ``timeout`` seconds for it (it stops within one HTTP request)."""
        self._closed.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to stop by itself; True once it has."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    # -- the thread ----------------------------------------------------------------------------------------
    def _run(self) -> None:
        # Nothing may escape this thread: there is no cell to raise into, and a traceback printed from a
        # dying kernel is noise. A renderer that fails stops the monitor; the error stays in last_error.
        reason = "closed"
        try:
            reason = self._loop()
        except Exception as exc:
            self.last_error, reason = exc, "error"
        finally:
            self.stop_reason = reason
            _LIVE.discard(self)
            if self._on_stop is not None:
                with contextlib.suppress(Exception):
                    self._on_stop(reason)

    def _loop(self) -> str:
        loop = PollLoop(self._source, backoff=self.backoff, timeout=self.max_seconds,
                        max_failures=self.max_errors - 1, tolerate=(Exception,))
        while not self._closed.is_set():
            status = loop.poll()
            self.polls = loop.polls
            if status is None:
                self.last_error = loop.last_error
                if self._on_error is not None and loop.last_error is not None:
                    self._on_error(loop.last_error)
                if loop.gave_up:
                    return "errors"
            else:
                self.last_status, self.last_error = status, None
                if not self._closed.is_set():
                    self._on_update(status)
                if status.ended:
                    return "ended"
            try:
                pause = loop.pause()
            except JobTimeoutError:
                return "timeout"
            if self._sleep(pause):
                loop.restart()  # poked: poll now, then start the backoff over
        return "closed"

    def _sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` or until poked/closed; True if poked."""
        woke = self._wake.wait(seconds)
        self._wake.clear()
        return woke and not self._closed.is_set()
