"""Each source row's latest attempt and its result there, read from a job's files.

The one reading of "where does each row stand" that retry selection (:mod:`batchframe.jobs.resubmit`) and
the manifest migration that rebuilds older jobs' ``replaces`` (:mod:`batchframe.jobs.migrations`) share.
Files are read through a ``read(relative_path, columns)`` callable, so this module needs no store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from batchframe.jobs.manifest import iter_shards
from batchframe.jobs.states import ShardState, state_of

#: Reads a Parquet file of a job folder (path relative to it) with the given columns.
Reader = Callable[[str, list[str]], pa.Table]


def requests_file(attempt: int) -> str:
    """The requests file of an attempt, relative to the job folder.

    Examples
    --------
    >>> requests_file(1), requests_file(3)
    ('requests.parquet', 'requests-a3.parquet')
    """
    return "requests.parquet" if attempt == 1 else f"requests-a{attempt}.parquet"


def store_reader(store: Any, name: str) -> Reader:
    """A :data:`Reader` over job ``name`` of a :class:`~batchframe.jobs.store.Store`.

    Examples
    --------
    >>> read = store_reader(job.store, job.name)  # doctest: +SKIP
    >>> read("requests.parquet", ["position"]).num_rows  # doctest: +SKIP
    40
    """
    folder = store.job_dir(name)
    return lambda path, columns: store.read_table(folder / path, columns=columns)


def latest_results(manifest: dict[str, Any], read: Reader) -> dict[str, np.ndarray]:
    """Per source row: the latest attempt that sent it, whether that shard is harvested, and its result there.

    Returns arrays of length ``n_rows``: ``attempt`` (0 = never sent), ``shard`` (in that attempt, -1 if
    never sent), ``harvested`` (bool),
    ``status`` and ``error_type`` (object, None where there is no result from that attempt).

    Examples
    --------
    >>> latest_results(job.manifest, store_reader(job.store, job.name))["status"]  # doctest: +SKIP
    array(['succeeded', 'expired', None], dtype=object)
    """
    n = manifest["n_rows"]
    attempt = np.zeros(n, np.int32)
    shard_of = np.full(n, -1, np.int32)
    for record in manifest["attempts"]:
        table = read(requests_file(record["attempt"]), ["position", "shard"])
        pos, shard = table.column("position").to_numpy(), table.column("shard").to_numpy()
        sent = shard >= 0
        attempt[pos[sent]], shard_of[pos[sent]] = record["attempt"], shard[sent]
    done = [shard_key(a, s["index"]) for a, s in iter_shards(manifest) if state_of(s) is ShardState.HARVESTED]
    harvested = np.isin(shard_key(attempt.astype(np.int64), shard_of.astype(np.int64)), np.array(done, np.int64))
    status = np.full(n, None, dtype=object)
    error_type = np.full(n, None, dtype=object)
    for a, s in iter_shards(manifest):
        if state_of(s) is not ShardState.HARVESTED:
            continue
        table = read(s["results_file"], ["position", "status", "error_type"])
        pos = table.column("position").to_numpy()
        mine = attempt[pos] == a  # a result of an older attempt is superseded by the later sending
        status[pos[mine]] = np.asarray(table.column("status").to_pylist(), dtype=object)[mine]
        error_type[pos[mine]] = np.asarray(table.column("error_type").to_pylist(), dtype=object)[mine]
    return {"attempt": attempt, "shard": shard_of, "harvested": harvested, "status": status, "error_type": error_type}


def previous_counts(outcome: dict[str, np.ndarray], positions: np.ndarray) -> dict[str, int]:
    """How many of the resent rows were in each state in their previous attempt (``missing``: no line).

    Recorded on the new attempt (``replaces``) so that request counts summed over batches can be turned into
    row counts (:func:`batchframe.jobs.manifest.row_counts`).

    Examples
    --------
    >>> outcome = {"status": np.array(["errored", None, "succeeded"], dtype=object)}
    >>> previous_counts(outcome, np.array([0, 1]))
    {'errored': 1, 'missing': 1}
    """
    states = np.where(is_none(outcome["status"][positions]), "missing",
                      outcome["status"][positions].astype(str))
    values, counts = np.unique(states, return_counts=True)
    return {str(v): int(c) for v, c in zip(values, counts, strict=True)}


def is_none(values: np.ndarray) -> np.ndarray:
    """Where an object array holds None (no result line).

    Examples
    --------
    >>> is_none(np.array(["a", None], dtype=object)).tolist()
    [False, True]
    """
    return np.fromiter((v is None for v in values), dtype=bool, count=len(values))


def shard_key(attempt: Any, shard: Any) -> Any:
    """One integer for (attempt, shard), scalars or arrays, to look shards up by.

    Examples
    --------
    >>> shard_key(2, 3) == 2 * (1 << 32) + 3
    True
    """
    return attempt * (1 << 32) + shard


