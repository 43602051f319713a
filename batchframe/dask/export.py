"""``ddf.batch.to_parquet(path, job)``: the merged frame as a folder of Parquet files, one per partition.

Each partition is merged and written by a worker (atomically: a temporary file renamed over the target, see
:func:`batchframe.results.export.write_frame`), index included, with the job's metadata (job, provider, model,
batch ids, creation time) plus the partition's number under the ``batchframe`` key. Files are named
``part.<NNNNN>.parquet`` so that ``dd.read_parquet(path)`` reads them in partition order with the index.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dask
import dask.dataframe as dd
import pandas as pd

from batchframe.dask.merge import merge
from batchframe.jobs.job import Job
from batchframe.results.export import write_frame


def to_parquet(ddf: dd.DataFrame, path: str | os.PathLike, job: Job, *, prefix: str) -> list[Path]:
    """Write ``ddf`` merged with the job's results, one Parquet file per partition; returns the files.

    Files ``part.*.parquet`` of the folder beyond this frame's partitions (an earlier, longer write) are removed,
    so that the folder reads back as this frame alone.

    Examples
    --------
    >>> ddf.batch.to_parquet("answers/", job)  # doctest: +SKIP
    >>> dd.read_parquet("answers/").llm_status.value_counts().compute()  # doctest: +SKIP
    """
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    parts = merge(ddf, job, prefix=prefix).to_delayed()
    metadata = {**job.export_metadata(), "npartitions": len(parts)}
    files = [folder / f"part.{k:05d}.parquet" for k in range(len(parts))]
    dask.compute(*[dask.delayed(_write)(part, target, {**metadata, "partition": k})
                   for k, (part, target) in enumerate(zip(parts, files, strict=True))])
    for stale in set(folder.glob("part.*.parquet")) - set(files):
        stale.unlink()
    return files


def _write(part: pd.DataFrame, target: Path, metadata: dict[str, Any]) -> None:
    write_frame(part, target, metadata)
