"""What the job's feature modules (polling, resubmitting, deleting) need of a :class:`~batchframe.jobs.job.Job`.

They receive the job as this protocol, so that ``job.py`` can import them without an import cycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from batchframe.jobs.store import Store
from batchframe.providers.base import Provider
from batchframe.types import JobStatus


class JobHandle(Protocol):
    """A job of the store: its name and store, its last read manifest and status, and its network steps."""

    store: Store

    @property
    def name(self) -> str: ...

    @property
    def manifest(self) -> dict[str, Any]: ...

    @property
    def status(self) -> JobStatus: ...

    def session(self) -> AbstractContextManager[tuple[dict[str, Any], Provider]]: ...

    def save(self) -> None: ...

    def refresh(self) -> JobStatus: ...

    def send_unsent(self, lines: Sequence[bytes] | None = None) -> JobStatus: ...


__all__ = ["JobHandle"]
