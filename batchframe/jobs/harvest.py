"""Download one ended shard's results, match them to rows through the persisted mapping, and write
them to the job store in one atomic step.

A cut download is retried; lines already received count (results are keyed by custom_id, so the
union of several partial downloads, deduplicated, is the result). A shard is recorded as harvested
only once every request it sent has a result line, so a crash or a cut stream never leaves a file
that could be taken for a complete one.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batchframe.errors import TransportError
from batchframe.jobs.labels import labels_table, read_labels
from batchframe.jobs.links import answered_elsewhere
from batchframe.jobs.manifest import iter_shards
from batchframe.jobs.states import ShardState, state_of
from batchframe.jobs.store import Store
from batchframe.providers.base import Provider
from batchframe.requests.keys import positions_of
from batchframe.results.combine import combine, dedupe, to_frame
from batchframe.results.cost import PriceLookup, cost_array, total_cost
from batchframe.results.schema import DEFAULT_PREFIX, HARVEST_SCHEMA, INPUT_HASH, SAME_AS, SKIPPED

#: Downloads of one shard's results per harvest before giving up until the next refresh.
MAX_DOWNLOADS = 4


def shard_mapping(store: Store, name: str, attempt: int, shard: int) -> tuple[pa.Array, np.ndarray]:
    """The custom_ids a shard sent and their row positions, from the persisted requests.

    Examples
    --------
    >>> ids, positions = shard_mapping(job.store, job.name, attempt=1, shard=0)  # doctest: +SKIP
    >>> ids[0].as_py(), positions[0]  # doctest: +SKIP
    ('r0', 0)
    """
    table = store.read_table(store.requests_path(name, attempt), columns=["position", "custom_id", "shard"])
    table = table.filter(pc.equal(table.column("shard"), shard))
    return table.column("custom_id").combine_chunks(), table.column("position").to_numpy()


def download(
    provider: Provider,
    batch_id: str,
    expected: int,
    *,
    max_downloads: int = MAX_DOWNLOADS,
    known: pa.Array | None = None,
) -> pa.Table:
    """All result lines of a batch, deduplicated; re-downloads while fewer than ``expected`` arrived.

    Raises
    ------
    TransportError
        Still incomplete after ``max_downloads`` attempts.

    Examples
    --------
    >>> download(provider, "msgbatch_01...", expected=100).num_rows  # doctest: +SKIP
    100
    """
    tables: list[pa.Table] = []
    got, cut = 0, None
    for n in range(max_downloads):
        parser = provider.result_parser()
        try:
            with provider.stream_results(batch_id) as chunks:
                for chunk in chunks:
                    parser.feed(chunk)
        except TransportError as exc:
            cut = exc
        tables.append(parser.finish())
        table = dedupe(pa.concat_tables(tables))
        tables = [table]
        got = _count_known(table, known)
        if got >= expected:
            return table
        time.sleep(min(0.05 * 2**n, 2.0))
    raise TransportError(
        f"results of batch {batch_id} incomplete after {max_downloads} downloads: "
        f"{got} of {expected} lines" + (f" (last error: {cut})" if cut else "")
    )


def _count_known(table: pa.Table, known: pa.Array | None) -> int:
    if known is None:
        return table.num_rows
    return int(pc.sum(pc.is_in(table.column("custom_id"), value_set=known)).as_py() or 0)


def harvest_shard(
    provider: Provider, store: Store, manifest: dict[str, Any], attempt: int, shard: dict[str, Any]
) -> dict[str, Any]:
    """Download, match and persist one ended shard; returns the fields to record on the shard as it
    moves to ``harvested``.

    Examples
    --------
    >>> move(shard, ShardState.HARVESTED, **harvest_shard(provider, store, manifest, 1, shard))  # doctest: +SKIP
    """
    name = manifest["name"]
    known, positions = shard_mapping(store, name, attempt, shard["index"])
    table = download(provider, shard["batch_id"], len(known), known=known)
    rows = positions_of(table.column("custom_id"), known, positions)
    table = table.filter(pa.array(rows >= 0))  # lines this shard never sent cannot land on any row
    rows = rows[rows >= 0]
    table = table.append_column("position", pa.array(rows, pa.int64()))
    table = table.append_column("attempt", pa.array(np.full(len(rows), attempt, np.int32)))
    table = table.append_column("batch_id", pa.array([shard["batch_id"]] * len(rows), pa.string()))
    indexed, names = _with_index(store, name, table.select(HARVEST_SCHEMA.names), rows)
    path = store.results_path(name, attempt, shard["index"])
    store.write_table(path, indexed, metadata={**_metadata(manifest, attempt, shard), **names})
    return {
        "results_file": str(path.relative_to(store.job_dir(name))),
        "n_results": len(rows),
        "result_counts": _status_counts(table),
        "input_tokens": _sum(table, "input_tokens"),
        "output_tokens": _sum(table, "output_tokens"),
        "cost_usd": total_cost(table, provider.price_for),
    }


def _with_index(store: Store, name: str, table: pa.Table, rows: np.ndarray) -> tuple[pa.Table, dict[str, Any]]:
    """The results with the source index labels of their rows (under reserved names), and their names."""
    index = read_labels(store.read_table(store.requests_path(name, 1), columns=["position"]))
    frame = table.to_pandas(types_mapper=pd.ArrowDtype)
    return labels_table(index[rows], {name: column.array for name, column in frame.items()})


def _metadata(manifest: dict[str, Any], attempt: int, shard: dict[str, Any]) -> dict[str, Any]:
    return {
        "job": manifest["name"],
        "provider": manifest["provider"],
        "model": manifest["model"],
        "batch_ids": [shard["batch_id"]],
        "attempt": attempt,
        "shard": shard["index"],
        "created_at": manifest["created_at"],
        "batch_created_at": shard.get("created_at"),
    }


def _status_counts(table: pa.Table) -> dict[str, int]:
    counts = pc.value_counts(table.column("status")).to_pylist()
    return {item["values"]: item["counts"] for item in counts if item["values"] is not None}


def _sum(table: pa.Table, column: str) -> int:
    return int(pc.sum(table.column(column)).as_py() or 0)


def submitted_hashes(store: Store, name: str) -> np.ndarray | None:
    """The input hash of every submitted row (see :func:`batchframe.results.merge.input_hashes`), in position
    order; None for a job stored before they were kept.

    Examples
    --------
    >>> submitted_hashes(job.store, job.name)[:2]  # doctest: +SKIP
    array([ 8245413815327335137, 11938398744120497386], dtype=uint64)
    """
    path = store.requests_path(name, 1)
    if INPUT_HASH not in pq.read_schema(path).names:
        return None
    return store.read_table(path, columns=[INPUT_HASH]).column(INPUT_HASH).to_numpy()


def stored_results(store: Store, manifest: dict[str, Any], *, price_for: PriceLookup,
                   prefix: str = DEFAULT_PREFIX) -> pd.DataFrame:
    """The result columns of a job from its store: one row per source row, indexed like the submitted frame.

    Each row takes its latest attempt's result; rows not harvested yet are ``pending``, rows never sent
    ``skipped``. Cost is priced with the provider's ``price_for``.

    Examples
    --------
    >>> stored_results(job.store, job.manifest, price_for=provider.price_for)["llm_status"][:2]  # doctest: +SKIP
    """
    name = manifest["name"]
    path = store.requests_path(name, 1)
    same_as_stored = SAME_AS in pq.read_schema(path).names
    source = store.read_table(path, columns=["position", "shard", *([SAME_AS] if same_as_stored else [])])
    tables = [
        store.read_table(store.job_dir(name) / s["results_file"], columns=HARVEST_SCHEMA.names)
        for _, s in iter_shards(manifest)
        if state_of(s) is ShardState.HARVESTED
    ]
    skipped = source.column("shard").to_numpy() == SKIPPED
    same_as = source.column(SAME_AS).to_numpy() if same_as_stored else None
    index = read_labels(source)
    pricer = functools.partial(cost_array, price_for=price_for)
    linked = answered_elsewhere(store, manifest, source.column("shard").to_numpy())
    table = combine(len(skipped), skipped, tables, pricer=pricer, same_as=same_as, linked=linked)
    return to_frame(table, index, prefix)
