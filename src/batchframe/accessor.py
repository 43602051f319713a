"""``df.batch``: the pandas accessor. It holds only the frame and forwards to plain functions."""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

from .job import Job
from .merge import DEFAULT_PREFIX
from .store import Store


@pd.api.extensions.register_dataframe_accessor("batch")
class BatchAccessor:
    """Run an LLM over the rows of this frame through a batch API.

    Examples
    --------
    >>> import batchframe, pandas as pd
    >>> df = pd.DataFrame({"q": ["What is 2+2?"]})
    >>> df.batch.requests(prompt="q", model="claude-haiku-4-5", max_tokens=16).loc[0, "custom_id"]
    'r0'
    """

    def __init__(self, df: pd.DataFrame):
        self._df = df

    def submit(self, **kwargs: Any) -> Job:
        """Submit every row; see :func:`batchframe.submission.submit` for the options.

        Examples
        --------
        >>> job = df.batch.submit(prompt="q", model="claude-haiku-4-5", max_tokens=16,
        ...                       provider="local")  # doctest: +SKIP
        """
        from .submission import submit

        return submit(self._df, **kwargs)

    def requests(self, **kwargs: Any) -> pd.DataFrame:
        """Dry run: the request bodies that :meth:`submit` would send; nothing is sent.

        Examples
        --------
        >>> df.batch.requests(prompt="q", model="claude-haiku-4-5", max_tokens=16)  # doctest: +SKIP
        """
        from .submission import requests_preview

        return requests_preview(self._df, **kwargs)

    def merge(self, job: Job | str, *, prefix: str = DEFAULT_PREFIX) -> pd.DataFrame:
        """This frame plus the job's result columns (a name clash is an error).

        Examples
        --------
        >>> merged = df.batch.merge(job)  # doctest: +SKIP
        """
        return _job(job).merge(self._df, prefix=prefix)

    def to_parquet(self, path: str | os.PathLike, job: Job | str, *, prefix: str = DEFAULT_PREFIX) -> None:
        """Write this frame merged with the job's results to Parquet, with job metadata.

        The file's ``batchframe`` key-value metadata holds the job name, provider, model, batch ids and
        creation time (read it back with :func:`batchframe.store.table_metadata`).

        Examples
        --------
        >>> df.batch.to_parquet("answers.parquet", job)  # doctest: +SKIP
        """
        from .export import write_parquet

        job = _job(job)
        write_parquet(job.merge(self._df, prefix=prefix), path, job)


def _job(job: Job | str) -> Job:
    return job if isinstance(job, Job) else Job.open(job, store=Store())
