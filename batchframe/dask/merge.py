"""``ddf.batch.merge(job)``: a lazy Dask frame of the partitions plus their result columns, each row proven.

Each partition, on a worker, finds its rows in the job (:func:`batchframe.dask.rows.locate`), reads only those
rows' results from the store's files, and merges them by label with the rule of the pandas merge
(:func:`batchframe.results.merge.merge_into`): a row gets an answer only if its label is in the job and its
inputs hash to what was submitted. Dask may hand the rows over in another order or other partitions; the
labels and hashes decide, never the order. Unlike the pandas merge, a partition none of whose rows match does
not raise (nothing is computed when merge is called): its rows are ``stale`` or ``not_submitted``.

The workers read the job's files (never write them) from the store's folder, so that folder must be one the
workers see (on one machine it is). The manifest is the driver's snapshot taken when ``merge`` is called, so
every partition sees the same state of the job.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from dask.dataframe.utils import make_meta

from batchframe.dask.rows import locate, read_rows
from batchframe.errors import InputError
from batchframe.jobs.job import Job
from batchframe.jobs.labels import name_from_json, read_labels
from batchframe.jobs.links import answered_elsewhere
from batchframe.jobs.manifest import is_embeddings, iter_shards
from batchframe.jobs.states import ShardState, state_of
from batchframe.jobs.store import Store
from batchframe.jobs.structured import with_typed
from batchframe.providers import provider_class
from batchframe.results.combine import combine, latest_per_position, to_frame
from batchframe.results.cost import cost_array
from batchframe.results.merge import NOT_SUBMITTED, STALE, input_hashes, merge_into
from batchframe.results.schema import EMBEDDING, HARVEST_SCHEMA, INPUT_HASH, SAME_AS, SKIPPED, check_prefix


@dataclass(frozen=True)
class Snapshot:
    """What a partition needs to read its results: the store's folder and the job's manifest, as the driver
    read them when ``merge`` was called."""

    root: str
    manifest: dict[str, Any]

    @property
    def store(self) -> Store:
        return Store(self.root)

    @property
    def requests_path(self) -> Path:
        return self.store.requests_path(self.manifest["name"], 1)


def merge(ddf: dd.DataFrame, job: Job, *, prefix: str) -> dd.DataFrame:
    """``ddf`` with the job's result columns, lazily (see the module docstring).

    Examples
    --------
    >>> out = ddf.batch.merge(job)  # doctest: +SKIP
    >>> out.llm_status.value_counts().compute()  # doctest: +SKIP
    """
    check_prefix(prefix)
    snapshot = Snapshot(str(job.store.root.resolve()), job.manifest)
    meta = _merged_meta(make_meta(ddf), snapshot.manifest, prefix)
    return ddf.map_partitions(merge_partition, snapshot, prefix, meta=meta)


def merge_partition(part: pd.DataFrame, snapshot: Snapshot, prefix: str,
                    partition_info: dict[str, Any] | None = None) -> pd.DataFrame:
    """On a worker: one partition merged with its own rows' results.

    Examples
    --------
    >>> merge_partition(part, Snapshot(str(job.store.root), job.manifest), "llm_")  # doctest: +SKIP
    """
    manifest = snapshot.manifest
    number = partition_info["number"] if partition_info else None
    take = locate(snapshot.requests_path, manifest, part.index, number)
    positions = np.unique(take[take >= 0])
    results, submitted = partition_results(snapshot.store, manifest, positions, prefix=prefix)
    columns = (manifest.get("request") or {}).get("columns")
    current = input_hashes(part, [name_from_json(c) for c in columns]) if columns is not None else None
    at = np.searchsorted(positions, np.maximum(take, 0))  # each row's place among ``positions``
    known = take >= 0
    proven = known.copy()
    if current is not None and submitted is not None:
        proven[known] = current[known] == submitted[at[known]]
    if not proven.any():
        return _unmatched(part, results, known, f"{prefix}status")
    if not results.index.equals(part.index):
        # The known rows' results in the partition's order, under its labels: merge_into then aligns them by label.
        rows = at[known]
        results = results.iloc[rows].set_axis(part.index[known])
        submitted = None if submitted is None else submitted[rows]
    return merge_into(part, results, prefix=prefix, current=current, submitted=submitted,
                      job=f"job {manifest['name']!r}")


def partition_results(store: Store, manifest: dict[str, Any], positions: np.ndarray, *,
                      prefix: str) -> tuple[pd.DataFrame, np.ndarray | None]:
    """The result columns of the job's rows at ``positions`` (sorted, unique), indexed by their stored labels,
    and their submitted input hashes; as :meth:`batchframe.Job.results` gives them, for these rows only.

    A row answered through an identical row elsewhere in the frame (``same_as``) reads that row's result too.

    Examples
    --------
    >>> frame, hashes = partition_results(job.store, job.manifest, np.arange(100, 200), prefix="llm_")  # doctest: +SKIP
    """
    name = manifest["name"]
    path = store.requests_path(name, 1)
    stored = set(pq.read_schema(path).names)
    extra = [c for c in (SAME_AS, INPUT_HASH) if c in stored]
    own = read_rows(path, ["position", "shard", *extra], positions, labels=True)
    labels = read_labels(own)
    same_as = own.column(SAME_AS).to_numpy() if SAME_AS in stored else None
    need, shard_of = positions, own.column("shard").to_numpy()
    if same_as is not None:  # the rows whose answers these rows take (a sent row takes its own)
        others = np.setdiff1d(same_as[same_as >= 0], positions)
        if len(others):
            carriers = read_rows(path, ["position", "shard"], others)
            need = np.concatenate([positions, others])
            shard_of = np.concatenate([shard_of, carriers.column("shard").to_numpy()])
            order = np.argsort(need)
            need, shard_of = need[order], shard_of[order]
    local = _local_same_as(need, positions, same_as)
    table = combine(len(need), shard_of == SKIPPED, _harvested(store, manifest, need),
                    pricer=_pricer(manifest), same_as=local, linked=_linked(store, manifest, need, shard_of))
    if is_embeddings(manifest):
        table = table.append_column(EMBEDDING.name, _vectors(store, manifest, need, local))
    table = table.take(pa.array(np.searchsorted(need, positions)))
    frame = with_typed(to_frame(table, labels, prefix), manifest, prefix)
    hashes = own.column(INPUT_HASH).to_numpy() if INPUT_HASH in stored else None
    return frame, hashes


def _local_same_as(need: np.ndarray, positions: np.ndarray, same_as: np.ndarray | None) -> np.ndarray | None:
    """``same_as`` of the rows of ``need`` as places in ``need`` (carriers outside ``positions`` answer
    themselves)."""
    if same_as is None:
        return None
    out = np.arange(len(need), dtype=np.int64)
    mine = np.searchsorted(need, positions)
    out[mine] = np.where(same_as >= 0, np.searchsorted(need, np.maximum(same_as, 0)), -1)
    return out


def _harvested(store: Store, manifest: dict[str, Any], need: np.ndarray) -> list[pa.Table]:
    """Every harvested shard's results for the rows ``need``, their positions made places in ``need``."""
    name, tables = manifest["name"], []
    for _, shard in iter_shards(manifest):
        if state_of(shard) is not ShardState.HARVESTED:
            continue
        path = store.job_dir(name) / shard["results_file"]
        columns = [c for c in HARVEST_SCHEMA.names if c in pq.read_schema(path).names]
        table = read_rows(path, columns, need)
        places = np.searchsorted(need, table.column("position").to_numpy())
        tables.append(table.set_column(table.schema.get_field_index("position"), "position",
                                       pa.array(places, pa.int64())))
    return tables


def _vectors(store: Store, manifest: dict[str, Any], need: np.ndarray, local: np.ndarray | None) -> pa.Array:
    """The vector of each row of ``need`` at its latest attempt (an identical row's, for a row answered through
    it), as :func:`batchframe.jobs.harvest.stored_results` gives them."""
    tables = []
    for _, shard in iter_shards(manifest):
        if state_of(shard) is not ShardState.HARVESTED:
            continue
        path = store.job_dir(manifest["name"]) / shard["results_file"]
        if EMBEDDING.name in pq.read_schema(path).names:
            tables.append(read_rows(path, ["position", "attempt", EMBEDDING.name], need))
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return pa.nulls(len(need), EMBEDDING.type)
    found = latest_per_position(tables)
    take = np.full(len(need), -1, np.int64)
    take[np.searchsorted(need, found.column("position").to_numpy())] = np.arange(found.num_rows)
    if local is not None:
        other = (local >= 0) & (local != np.arange(len(need)))
        take[other] = take[local[other]]
    vectors = found.column(EMBEDDING.name).take(pa.array(take, mask=take < 0)).combine_chunks()
    return vectors.cast(EMBEDDING.type)  # Parquet names the list's item "element": one dtype whatever was read


def _linked(store: Store, manifest: dict[str, Any], need: np.ndarray, shard_of: np.ndarray) -> np.ndarray:
    """Whether each row's answer was copied from the job that paid for it (see ``answered_elsewhere``)."""
    every = np.full(int(manifest.get("n_rows") or (need.max(initial=-1) + 1)), SKIPPED, np.int32)
    every[need] = shard_of
    return answered_elsewhere(store, manifest, every)[need]


def _pricer(manifest: dict[str, Any]) -> Any:
    price_for, _ = provider_class(manifest["provider"]).pricer(manifest["model"])
    return functools.partial(cost_array, price_for=price_for)


def _results_meta(manifest: dict[str, Any], prefix: str) -> pd.DataFrame:
    table = combine(0, np.zeros(0, bool), [])
    if is_embeddings(manifest):
        table = table.append_column(EMBEDDING.name, pa.nulls(0, EMBEDDING.type))
    return with_typed(to_frame(table, pd.RangeIndex(0), prefix), manifest, prefix)


def _merged_meta(meta: pd.DataFrame, manifest: dict[str, Any], prefix: str) -> pd.DataFrame:
    results = _results_meta(manifest, prefix)
    clash = [c for c in results.columns if c in meta.columns]
    if clash:
        raise InputError(f"result column(s) {clash} already exist in the frame; choose another prefix "
                         "(merge(job, prefix=...)) or drop them first")
    return pd.concat([meta, results.set_axis(meta.index[:0])], axis=1)


def _unmatched(part: pd.DataFrame, results: pd.DataFrame, known: np.ndarray, status: str) -> pd.DataFrame:
    """The partition with empty result columns: every row ``stale`` (known, changed) or ``not_submitted``."""
    out = part.copy(deep=False)
    missing = np.full(len(part), -1)
    for name in results.columns:
        out[name] = results[name].array.take(missing, allow_fill=True)
    out[status] = pd.array(np.where(known, STALE, NOT_SUBMITTED), dtype=results[status].dtype)
    return out
