"""The verbs of ``ddf.batch``, as functions of the Dask frame: the same arguments and meaning as pandas'.

``submit``, ``embed`` and ``estimate`` stage each partition's lines on the workers and decide (and price) on
the driver, which never holds the request bodies (:mod:`batchframe.dask.submit`); ``merge`` and
``to_parquet`` read each partition's own results on the workers.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import dask.dataframe as dd

from batchframe import api
from batchframe.dask import build, export
from batchframe.dask import merge as merging
from batchframe.dask import submit as submitting
from batchframe.jobs.embed import DEFAULT_MODEL, as_embeddings, embedding_options


def requests(ddf: dd.DataFrame, **kwargs: Any) -> dd.DataFrame:
    """Dry run, lazily: the request of every row; see :func:`batchframe.dask.build.requests_preview`."""
    for key in ("betas", "name", "provider", "api_key", "base_url", "new", "max_batch_requests", "max_batch_bytes",
                "store", "provider_options", "retry", "dedupe", "budget_usd", "max_in_flight", "prime_cache"):
        kwargs.pop(key, None)  # submit's options, which change no request (as for pandas)
    return build.requests_preview(ddf, **kwargs)


def estimate(ddf: dd.DataFrame, **kwargs: Any) -> api.Estimate:
    """What :func:`submit` with the same arguments would send and cost, staged and planned as it would be and
    priced from the staged requests; see :func:`batchframe.estimate` and :func:`batchframe.dask.submit.estimate`."""
    return submitting.estimate(ddf, **kwargs)


def submit(ddf: dd.DataFrame, **kwargs: Any) -> api.Job:
    """Stage on the workers, then decide and send from here; see :func:`batchframe.submit` for the options
    and :mod:`batchframe.dask.submit` for how.

    The job records each partition's row count, so that :func:`merge` finds a partition's rows directly.
    """
    return submitting.submit(ddf, **kwargs)


def embed(ddf: dd.DataFrame, input: str, *, model: str = DEFAULT_MODEL, dimensions: int | None = None,
          provider: str | None = None, **options: Any) -> api.Job:
    """Embed ``input`` (a column, or a template over columns) of every row, as :func:`batchframe.embed` does;
    the requests are built on the workers, and merge gives the ``llm_embedding`` column."""
    name, extra = embedding_options(provider, dimensions, options)
    post = functools.partial(as_embeddings, extra=extra)
    return submitting.submit(ddf, prompt=input, model=model, max_tokens=1, provider=name, post=post, **options)


def merge(ddf: dd.DataFrame, job: api.Job | str, *, prefix: str = api.DEFAULT_PREFIX) -> dd.DataFrame:
    """``ddf`` plus the job's result columns, lazily; see :mod:`batchframe.dask.merge`."""
    return merging.merge(ddf, api.as_job(job), prefix=prefix)


def to_parquet(ddf: dd.DataFrame, path: str | os.PathLike, job: api.Job | str, *,
               prefix: str = api.DEFAULT_PREFIX) -> list[Path]:
    """One Parquet file per partition, with the job's metadata; see :mod:`batchframe.dask.export`."""
    return export.to_parquet(ddf, path, api.as_job(job), prefix=prefix)
