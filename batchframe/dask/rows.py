"""Which stored rows a partition holds, and reading only those rows of a job's files.

The driver records, after a submit, how many rows each partition had (the manifest's ``partitions``); a
partition of the same frame then finds its rows as one run of positions and reads only that run of the
requests file (Parquet row groups outside it are skipped). A partition that is not one of the submitted
frame's (repartitioned, filtered, reordered) is matched by label against all the job's labels instead.
Workers only read here; the manifest is the driver's snapshot, handed to them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batchframe.errors import InputError
from batchframe.jobs.job import Job
from batchframe.jobs.labels import read_labels

#: The manifest key holding each partition's row count, as the frame was when submitted.
PARTITIONS = "partitions"


def record_partitions(job: Job, sizes: list[int]) -> None:
    """On the driver: write the partitions' row counts into the job's manifest (under its lock).

    Examples
    --------
    >>> record_partitions(job, [2500] * 8)  # doctest: +SKIP
    """
    with job.store.lock(job.name):
        manifest = job.store.read_manifest(job.name)
        if manifest.get(PARTITIONS) != sizes:
            manifest[PARTITIONS] = list(sizes)
            job.store.write_manifest(job.name, manifest)


def read_rows(path: Path, columns: list[str], positions: np.ndarray, *, labels: bool = False) -> pa.Table:
    """The rows of a store file at ``positions`` (sorted, unique), in position order.

    The range filter lets Parquet skip row groups wholly outside ``[min, max]``.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "t.parquet"
    >>> pq.write_table(pa.table({"position": [0, 1, 2, 3], "x": list("abcd")}), path)
    >>> read_rows(path, ["position", "x"], np.array([1, 3])).column("x").to_pylist()
    ['b', 'd']
    """
    if len(positions) == 0:
        table = pq.read_table(path, columns=columns, use_pandas_metadata=labels)
        return table.slice(0, 0)
    lo, hi = int(positions[0]), int(positions[-1])
    table = pq.read_table(path, columns=columns, use_pandas_metadata=labels,
                          filters=[("position", ">=", lo), ("position", "<=", hi)])
    if table.num_rows != len(positions):
        table = table.filter(pc.is_in(table.column("position"), value_set=pa.array(positions, pa.int64())))
    order = np.argsort(table.column("position").to_numpy(), kind="stable")
    return table if (np.diff(order) == 1).all() else table.take(pa.array(order))


def locate(path: Path, manifest: dict[str, Any], index: pd.Index, number: int | None) -> np.ndarray:
    """For each label of a partition's ``index``, its position in the job, or -1 (a label it does not know).

    Examples
    --------
    >>> locate(job.store.requests_path(job.name), job.manifest, part.index, 3)  # doctest: +SKIP
    array([7500, 7501, ...])
    """
    sizes = manifest.get(PARTITIONS)
    if sizes and number is not None and number < len(sizes) and sizes[number] == len(index):
        start = int(sum(sizes[:number]))
        run = np.arange(start, start + len(index), dtype=np.int64)
        stored = read_labels(read_rows(path, ["position"], run, labels=True))
        if stored.equals(index):
            return run
    table = pq.read_table(path, columns=["position"], use_pandas_metadata=True)
    stored = read_labels(table)
    if not (stored.is_unique and index.is_unique):
        raise InputError(
            "this partition's rows are not where the submitted frame had them and the labels are not unique, so "
            "rows cannot be matched; merge the frame you submitted (same partitions, same order)")
    take = stored.get_indexer(index)
    positions = table.column("position").to_numpy()
    return np.where(take >= 0, positions[np.maximum(take, 0)], -1)
