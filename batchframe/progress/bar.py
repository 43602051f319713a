"""Text progress for ``Job.wait``: a tqdm.auto bar fed only from :class:`batchframe.types.JobStatus`.

The job is the state source; this renderer reads snapshots. ``BATCHFRAME_NO_PROGRESS=1`` turns it off.
The bar ends green when every row succeeded, red when some failed or the wait was interrupted.
"""

from __future__ import annotations

from batchframe.config import progress_enabled
from batchframe.types import JobStatus


class TextProgress:
    """A tqdm bar over the requests of a job (rows done / rows sent).

    Examples
    --------
    >>> bar = TextProgress("reviews", total=10, enabled=False)
    >>> bar.close(ok=True)
    """

    def __init__(self, name: str, *, total: int, enabled: bool | None = None):
        self._bar = None
        if enabled if enabled is not None else progress_enabled():
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=name, unit="req", dynamic_ncols=True)

    def update(self, status: JobStatus) -> None:
        """Show a new snapshot."""
        if self._bar is None:
            return
        counts = status.counts
        self._bar.total = sum(counts.values())
        self._bar.n = self._bar.total - counts["processing"]
        self._bar.set_postfix_str(f"{status.state} ok={counts['succeeded']} err={counts['errored']}", refresh=False)
        self._bar.refresh()

    def close(self, *, ok: bool) -> None:
        """End the bar: green when ``ok``, red otherwise."""
        if self._bar is None:
            return
        self._bar.colour = "green" if ok else "red"
        self._bar.refresh()
        self._bar.close()


class CountProgress:
    """A tqdm bar over a count of items (e.g. requests whose tokens are counted by ``estimate(exact=True)``).

    Examples
    --------
    >>> bar = CountProgress("counting tokens", total=3, enabled=False)
    >>> bar.advance(1); bar.close(ok=True)
    """

    def __init__(self, label: str, *, total: int, enabled: bool | None = None):
        self._bar = None
        if enabled if enabled is not None else progress_enabled():
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=label, unit="req", dynamic_ncols=True)

    def advance(self, n: int) -> None:
        """Count ``n`` more items done."""
        if self._bar is not None:
            self._bar.update(n)

    def close(self, *, ok: bool) -> None:
        """End the bar: green when ``ok``, red otherwise."""
        if self._bar is None:
            return
        self._bar.colour = "green" if ok else "red"
        self._bar.close()
