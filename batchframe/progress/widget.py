"""The live job view in Jupyter: an ipywidgets box refreshed by a :class:`~batchframe.progress.monitor.Monitor` thread.

Displaying a ``Job`` in a notebook calls :func:`display_job`. In a Jupyter kernel with ipywidgets it shows
:class:`JobWidget` and returns at once (the monitor thread updates it while other cells run); anywhere else,
or with ``BATCHFRAME_NO_PROGRESS=1``, it prints the same information as text, once.
"""

from __future__ import annotations

import html
import threading
import weakref
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from batchframe.config import progress_enabled
from batchframe.jobs.polling import Backoff
from batchframe.progress.monitor import Monitor
from batchframe.progress.render import to_html, to_text
from batchframe.types import JobStatus

__all__ = ["JobWidget", "display_job", "widgets_available"]

#: The widget poll policy: quick at first (small local jobs end in seconds), then at most every 30 s.
WIDGET_BACKOFF = Backoff(initial=0.5, factor=1.5, maximum=30.0)

# The live widget of each job name: displaying a job again closes the previous view's thread.
_BY_JOB: weakref.WeakValueDictionary[str, JobWidget] = weakref.WeakValueDictionary()
_LOCK = threading.Lock()


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def widgets_available() -> bool:
    """True inside a Jupyter kernel with ipywidgets installed and progress not switched off.

    Examples
    --------
    >>> widgets_available()  # in a plain Python process
    False
    """
    if not progress_enabled():  # BATCHFRAME_NO_PROGRESS: the one switch for bars and widgets
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return _in_kernel()


def display_job(job: Any, *, backoff: Backoff | None = None) -> JobWidget | None:
    """Show ``job``: the live widget in Jupyter, else its status as text (printed once).

    Returns the :class:`JobWidget`, or None when text was printed.

    Examples
    --------
    >>> view = display_job(job)  # in a notebook: returns at once, the view updates itself  # doctest: +SKIP
    >>> view.monitor.running  # doctest: +SKIP
    True
    """
    if not widgets_available():
        print(to_text(job.status))
        return None
    from IPython.display import display

    view = JobWidget(job, backoff=backoff)
    display(view)
    view.start()
    return view


class JobWidget:
    """An ipywidgets view of one job: bars per shard and in total, times, tokens, cost, Refresh and Cancel.

    Parameters
    ----------
    job
        The job (``.status``, ``.refresh()``, ``.cancel()``, ``.name``).
    backoff
        Polling policy of the monitor thread (default :data:`WIDGET_BACKOFF`).

    Examples
    --------
    >>> view = JobWidget(job)  # doctest: +SKIP
    >>> display(view); view.start()  # doctest: +SKIP
    >>> view.close()  # stops the thread  # doctest: +SKIP
    """

    def __init__(self, job: Any, *, backoff: Backoff | None = None) -> None:
        import ipywidgets as w

        self.job = job
        self.started = datetime.now(UTC)
        self.status: JobStatus = job.status
        self.view = w.HTML(value=self._html(self.status))
        self.message = w.HTML(value="")
        self.refresh_button = w.Button(description="Refresh", icon="refresh", tooltip="Poll the provider now")
        self.cancel_button = w.Button(description="Cancel", icon="stop", button_style="warning",
                                      tooltip="Cancel the remote batches (asks first)")
        self.confirm_button = w.Button(description="Yes, cancel", button_style="danger")
        self.keep_button = w.Button(description="No, keep running")
        self.confirm = w.HBox(
            [w.HTML("Cancel the remote batch? Requests already done keep their results. "),
             self.confirm_button, self.keep_button],
            layout=w.Layout(display="none"),
        )
        self.box = w.VBox([self.view, w.HBox([self.refresh_button, self.cancel_button]), self.confirm,
                           self.message])
        self.box.add_class("bf-widget")
        # Closing the view (box.close(), Widget.close_all()) drops its comm: stop polling then too.
        self.box.observe(self._on_comm, names="comm")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.cancel_button.on_click(lambda _: self._ask_cancel())
        self.keep_button.on_click(lambda _: self._hide_confirm())
        self.confirm_button.on_click(lambda _: self._confirmed_cancel())
        self.monitor = Monitor(job, on_update=self._update, on_error=self._error,
                               on_stop=self._stopped, backoff=backoff or WIDGET_BACKOFF)
        self._set_ended(self.status.ended)

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> JobWidget:
        """Start polling unless the job has already ended; closes an older live view of the same job."""
        with _LOCK:
            previous = _BY_JOB.get(self.job.name)
            _BY_JOB[self.job.name] = self
        if previous is not None and previous is not self:
            previous.monitor.close(timeout=0)
        if not self.status.ended:
            self.monitor.start()
        return self

    def close(self) -> None:
        """Stop the monitor thread and close the widgets."""
        self.monitor.close()
        self.box.close()

    def _on_comm(self, change: dict) -> None:
        if change["new"] is None:
            self.monitor.close(timeout=0)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        # The widget view, with the text view as the plain-text fallback (nbconvert, consoles, test logs).
        bundle = self.box._repr_mimebundle_()
        bundle["text/plain"] = to_text(self.status)
        display(bundle, raw=True)

    # -- updates (monitor thread) ----------------------------------------------------------------------------
    def _html(self, status: JobStatus) -> str:
        return to_html(status, now=datetime.now(UTC)) if status.created_at else to_html(
            _with_start(status, self.started))

    def _update(self, status: JobStatus) -> None:
        self.status = status
        self.view.value = self._html(status)
        when = datetime.now().strftime("%H:%M:%S")
        self.message.value = f'<span class="bf-checked" style="color:#757575">checked at {when}</span>'
        self._set_ended(status.ended)
        if status.state == "unsent":  # a shard has no remote batch: polling cannot change that
            self.monitor.close(timeout=0)
            self.message.value = ('<span class="bf-stopped" style="color:#c62828">a shard was never sent '
                                  f"(refused or interrupted): submit again to send it (checked at {when})</span>")

    def _error(self, exc: BaseException) -> None:
        self.message.value = (f'<span class="bf-error" style="color:#c62828">refresh failed: '
                              f'{type(exc).__name__}: {_escape(str(exc))} (retrying)</span>')

    def _stopped(self, reason: str) -> None:
        notes = {"errors": "stopped polling after repeated errors; press Refresh to try again",
                 "timeout": "stopped polling (time limit); press Refresh to check again"}
        if reason in notes:
            self.message.value = f'<span class="bf-stopped" style="color:#c62828">{notes[reason]}</span>'

    def _set_ended(self, ended: bool) -> None:
        self.cancel_button.disabled = ended
        if ended:  # greyed out: nothing left to cancel
            self.cancel_button.button_style = ""
            self._hide_confirm()

    # -- buttons (kernel thread) -------------------------------------------------------------------------
    def refresh(self) -> None:
        """Poll now: wake the monitor, or poll once in a short thread if it has stopped."""
        if self.monitor.running:
            self.monitor.poke()
        else:
            threading.Thread(target=self._poll_once, name="batchframe-refresh", daemon=True).start()

    def _poll_once(self) -> None:
        try:
            self._update(self.job.refresh())
        except Exception as exc:
            self._error(exc)

    def _ask_cancel(self) -> None:
        self.confirm.layout.display = "flex"

    def _hide_confirm(self) -> None:
        self.confirm.layout.display = "none"

    def _confirmed_cancel(self) -> None:
        self._hide_confirm()
        self.cancel_button.disabled = True
        self.message.value = '<span class="bf-canceling">canceling…</span>'
        threading.Thread(target=self._cancel, name="batchframe-cancel", daemon=True).start()

    def _cancel(self) -> None:
        try:
            self.job.cancel()
        except Exception as exc:
            self.cancel_button.disabled = False
            self.message.value = (f'<span class="bf-error" style="color:#c62828">cancel failed: '
                                  f'{type(exc).__name__}: {_escape(str(exc))}</span>')
            return
        self.message.value = '<span class="bf-canceling">cancel requested; the batch ends shortly</span>'
        self.refresh()


def _escape(text: str) -> str:
    return html.escape(text)


def _with_start(status: JobStatus, started: datetime) -> JobStatus:
    return replace(status, created_at=started)
