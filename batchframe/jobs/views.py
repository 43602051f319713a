"""How a job is shown while it runs: slots the progress layer fills in, so that ``jobs/`` never imports UI code.

:mod:`batchframe.progress` registers the tqdm bar :meth:`Job.wait` draws and the Jupyter display of a
``Job`` when ``import batchframe`` runs. Without it (``batchframe.jobs`` used alone) nothing is drawn and a
job displays as its ``repr``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from batchframe.types import JobStatus


class ProgressView(Protocol):
    """A renderer fed with snapshots while waiting: ``update`` per poll, ``close`` once."""

    def update(self, status: JobStatus) -> None: ...

    def close(self, *, ok: bool) -> None: ...


class Tally(Protocol):
    """A counter of work items (e.g. token counts): ``advance`` per item done, ``close`` once."""

    def advance(self, n: int) -> None: ...

    def close(self, *, ok: bool) -> None: ...


class _Silent:
    def update(self, status: JobStatus) -> None:
        pass

    def advance(self, n: int) -> None:
        pass

    def close(self, *, ok: bool) -> None:
        pass


@dataclass
class Views:
    """The registered views: ``bar(name, total)`` makes a :class:`ProgressView`; ``display(job)`` shows a job;
    ``tally(label, total)`` makes a :class:`Tally`."""

    bar: Callable[[str, int], ProgressView] = lambda name, total: _Silent()
    display: Callable[[Any], object] | None = None
    tally: Callable[[str, int], Tally] = lambda label, total: _Silent()


#: The one registry; :mod:`batchframe.progress` fills it at import.
VIEWS = Views()


def register_views(*, bar: Callable[[str, int], ProgressView], display: Callable[[Any], object],
                   tally: Callable[[str, int], Tally] | None = None) -> None:
    """Install the progress bar and the Jupyter display (called by :mod:`batchframe.progress`).

    Examples
    --------
    >>> register_views(bar=VIEWS.bar, display=VIEWS.display)  # doctest: +SKIP
    """
    VIEWS.bar, VIEWS.display = bar, display
    if tally is not None:
        VIEWS.tally = tally
