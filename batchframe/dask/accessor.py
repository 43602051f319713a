"""``ddf.batch``: the accessor of Dask DataFrames. It holds only the frame and forwards to
:mod:`batchframe.dask.api`; importing this module registers it (and imports ``dask.dataframe``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dask.dataframe as dd
from dask.dataframe.extensions import register_dataframe_accessor

from batchframe import api
from batchframe.dask import api as dask_api


@register_dataframe_accessor("batch")
class DaskBatchAccessor:
    """Run an LLM over the rows of this Dask frame through a batch API; the pandas accessor's verbs.

    Examples
    --------
    >>> import dask.dataframe as dd, pandas as pd, batchframe
    >>> ddf = dd.from_pandas(pd.DataFrame({"q": ["a", "b", "c"]}), npartitions=2)
    >>> ddf.batch.requests(prompt="q", model="claude-haiku-4-5", max_tokens=8).custom_id.compute().tolist()
    ['r0', 'r1', 'r2']
    """

    def __init__(self, ddf: dd.DataFrame):
        self._ddf = ddf

    def requests(self, **kwargs: Any) -> dd.DataFrame:
        """Dry run, lazily: the request of every row (custom_ids numbered across partitions); nothing is sent."""
        return dask_api.requests(self._ddf, **kwargs)

    def estimate(self, **kwargs: Any) -> api.Estimate:
        """What :meth:`submit` would send and cost; the requests are built on the workers, nothing is sent.

        Examples
        --------
        >>> ddf.batch.estimate(prompt="q", model="claude-haiku-4-5", max_tokens=16)  # doctest: +SKIP
        """
        return dask_api.estimate(self._ddf, **kwargs)

    def submit(self, **kwargs: Any) -> api.Job:
        """Submit every row: built on the workers, sent from here; see :func:`batchframe.submit`.

        Examples
        --------
        >>> job = ddf.batch.submit(prompt="q", model="claude-haiku-4-5", max_tokens=16,
        ...                        provider="local")  # doctest: +SKIP
        """
        return dask_api.submit(self._ddf, **kwargs)

    def embed(self, input: str, **kwargs: Any) -> api.Job:
        """Embed a text column (or a template over columns) of every row; see :func:`batchframe.embed`.

        Examples
        --------
        >>> job = ddf.batch.embed("review", model="text-embedding-3-small", provider="openai")  # doctest: +SKIP
        >>> ddf.batch.merge(job)["llm_embedding"].compute()  # doctest: +SKIP
        """
        return dask_api.embed(self._ddf, input, **kwargs)

    def merge(self, job: api.Job | str, *, prefix: str = api.DEFAULT_PREFIX) -> dd.DataFrame:
        """This frame plus the job's result columns, lazily (each partition reads its own rows' results).

        Examples
        --------
        >>> ddf.batch.merge(job).compute()  # doctest: +SKIP
        """
        return dask_api.merge(self._ddf, job, prefix=prefix)

    def to_parquet(self, path: str | os.PathLike, job: api.Job | str, *,
                   prefix: str = api.DEFAULT_PREFIX) -> list[Path]:
        """Write the merged frame as one Parquet file per partition, with the job's metadata.

        Examples
        --------
        >>> ddf.batch.to_parquet("answers/", job)  # doctest: +SKIP
        """
        return dask_api.to_parquet(self._ddf, path, job, prefix=prefix)
