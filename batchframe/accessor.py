"""``df.batch``: the pandas accessor. It holds only the frame and forwards to :mod:`batchframe.api`."""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

from batchframe import api


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

    def submit(self, **kwargs: Any) -> api.Job:
        """Submit every row; see :func:`batchframe.api.submit` for the options.

        Examples
        --------
        >>> job = df.batch.submit(prompt="q", model="claude-haiku-4-5", max_tokens=16,
        ...                       provider="local")  # doctest: +SKIP
        """
        return api.submit(self._df, **kwargs)

    def embed(self, input: str, **kwargs: Any) -> api.Job:
        """Embed a text column (or a template over columns) of every row; see :func:`batchframe.api.embed`.

        Examples
        --------
        >>> job = df.batch.embed("review", model="text-embedding-3-small", provider="openai")  # doctest: +SKIP
        """
        return api.embed(self._df, input, **kwargs)

    def estimate(self, **kwargs: Any) -> api.Estimate:
        """What :meth:`submit` with the same arguments would send and cost; nothing billable is sent.

        See :func:`batchframe.api.estimate` (``exact=True`` counts every row's tokens).

        Examples
        --------
        >>> est = df.batch.estimate(prompt="q", model="claude-haiku-4-5", max_tokens=16,
        ...                         provider="local")  # doctest: +SKIP
        >>> est.worst_case_usd  # doctest: +SKIP
        0.00042
        """
        return api.estimate(self._df, **kwargs)

    def requests(self, **kwargs: Any) -> pd.DataFrame:
        """Dry run: the request bodies that :meth:`submit` would send; nothing is sent.

        Examples
        --------
        >>> df.batch.requests(prompt="q", model="claude-haiku-4-5", max_tokens=16)  # doctest: +SKIP
        """
        return api.requests_preview(self._df, **kwargs)

    def merge(self, job: api.Job | str, *, prefix: str = api.DEFAULT_PREFIX) -> pd.DataFrame:
        """This frame plus the job's result columns (a name clash is an error).

        Examples
        --------
        >>> merged = df.batch.merge(job)  # doctest: +SKIP
        """
        return api.as_job(job).merge(self._df, prefix=prefix)

    def to_parquet(self, path: str | os.PathLike, job: api.Job | str, *, prefix: str = api.DEFAULT_PREFIX) -> None:
        """Write this frame merged with the job's results to Parquet, with job metadata.

        The file's ``batchframe`` key-value metadata holds the job name, provider, model, batch ids and
        creation time (read it back with :func:`batchframe.table_metadata`).

        Examples
        --------
        >>> df.batch.to_parquet("answers.parquet", job)  # doctest: +SKIP
        """
        api.to_parquet(self._df, path, job, prefix=prefix)
