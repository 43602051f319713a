"""The public functions, one place for the notebook API, the ``df.batch`` accessor and the CLI to call.

The pipeline they drive, in order: :mod:`batchframe.requests` (DataFrame -> requests) ->
:mod:`batchframe.providers` (wire formats, HTTP) -> :mod:`batchframe.jobs` (the job store, sending, polling,
harvesting) -> :mod:`batchframe.results` (one row of result columns per source row, merged, exported).

Examples
--------
>>> from batchframe import api
>>> api.requests_preview(pd.DataFrame({"q": ["hi"]}), prompt="q", model="claude-haiku-4-5",
...                      max_tokens=8)["custom_id"].tolist()
['r0']
"""

from __future__ import annotations

import os

import pandas as pd

from batchframe.jobs.catalog import jobs, open_job, remote_batches
from batchframe.jobs.embed import embed
from batchframe.jobs.estimate import Estimate, estimate
from batchframe.jobs.job import Job
from batchframe.jobs.store import Store
from batchframe.jobs.submit import requests_preview, submit
from batchframe.results.export import table_metadata, write_frame
from batchframe.results.schema import DEFAULT_PREFIX

__all__ = [
    "DEFAULT_PREFIX",
    "Estimate",
    "Job",
    "Store",
    "as_job",
    "embed",
    "estimate",
    "jobs",
    "open_job",
    "remote_batches",
    "requests_preview",
    "submit",
    "table_metadata",
    "to_parquet",
]


def as_job(job: Job | str, *, store: str | Store | None = None) -> Job:
    """``job`` itself, or the job of that name re-opened from the store (no network).

    Examples
    --------
    >>> as_job("reviews").name  # doctest: +SKIP
    'reviews'
    """
    return job if isinstance(job, Job) else open_job(job, store=store)


def to_parquet(df: pd.DataFrame, path: str | os.PathLike, job: Job | str, *, prefix: str = DEFAULT_PREFIX) -> None:
    """Write ``df`` merged with the job's results to Parquet, with the job's metadata in the file.

    The ``batchframe`` key-value metadata holds the job name, provider, model, batch ids, creation
    time and fingerprint (read it back with :func:`table_metadata`).

    Examples
    --------
    >>> to_parquet(df, "answers.parquet", job)  # doctest: +SKIP
    >>> table_metadata("answers.parquet")["job"]  # doctest: +SKIP
    'reviews'
    """
    job = as_job(job)
    write_frame(job.merge(df, prefix=prefix), path, job.export_metadata())
