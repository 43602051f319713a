"""Parquet export of a merged frame, with the job's metadata in the file."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow as pa

from .job import Job
from .store import Store


def write_parquet(frame: pd.DataFrame, path: str | os.PathLike, job: Job) -> None:
    """Write ``frame`` (index preserved) atomically, with job name, provider, model, batch ids and
    creation time under the ``batchframe`` key-value metadata.

    Examples
    --------
    >>> write_parquet(df.batch.merge(job), "out.parquet", job)  # doctest: +SKIP
    """
    m = job.manifest
    metadata = {
        "job": job.name,
        "provider": job.provider_name,
        "model": job.model,
        "batch_ids": job.batch_ids(),
        "created_at": m.get("created_at"),
        "fingerprint": m.get("fingerprint"),
    }
    table = pa.Table.from_pandas(frame, preserve_index=True)
    Store(Path(path).parent).write_table(Path(path), table, metadata=metadata)
