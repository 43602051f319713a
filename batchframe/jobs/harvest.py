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
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batchframe.errors import TransportError
from batchframe.jobs.labels import read_labels
from batchframe.jobs.links import answered_elsewhere
from batchframe.jobs.manifest import is_embeddings, iter_shards
from batchframe.jobs.shard_file import (
    ResultsFiles,
    ShardSink,
    read_columns,
    read_labelled,
)
from batchframe.jobs.states import ShardState, state_of
from batchframe.jobs.store import Store
from batchframe.providers.base import Provider
from batchframe.providers.prefetch import read_ahead
from batchframe.results.combine import combine, latest_per_position, to_frame
from batchframe.results.cost import PriceLookup, cost_array
from batchframe.results.export import replacing
from batchframe.results.memory import release_unused
from batchframe.results.schema import DEFAULT_PREFIX, EMBEDDING, INPUT_HASH, SAME_AS, SKIPPED

#: Downloads of one shard's results per harvest before giving up until the next refresh.
MAX_DOWNLOADS = 4
#: Bytes of result lines parsed and written at a time (one Parquet row group). A harvest holds about a few
#: times this, whatever the shard's size; tests lower it to force many blocks through the streaming path.
#: 4 MB still parses in parallel (in parts of 1 MB, see ``results_arrow.PART_BYTES``) and halves what 8 MB held.
CHUNK_BYTES = 4 << 20

#: Takes one parsed block and returns how many of its lines were new (known and not seen before).
BlockWriter = Callable[[pa.Table], int]


def shard_mapping(store: Store, name: str, attempt: int, shard: int) -> tuple[pa.Array, np.ndarray]:
    """The custom_ids a shard sent and their row positions, from the persisted requests.

    Examples
    --------
    >>> ids, positions = shard_mapping(job.store, job.name, attempt=1, shard=0)  # doctest: +SKIP
    >>> ids[0].as_py(), positions[0]  # doctest: +SKIP
    ('r0', 0)
    """
    table = read_columns(store.requests_path(name, attempt), ["position", "custom_id", "shard"])
    table = table.filter(pc.equal(table.column("shard"), shard))
    return table.column("custom_id").combine_chunks(), table.column("position").to_numpy()


def download(
    provider: Provider,
    batch_id: str,
    expected: int,
    write: BlockWriter,
    *,
    max_downloads: int = MAX_DOWNLOADS,
    chunk_bytes: int | None = None,
) -> int:
    """Stream a batch's result lines to ``write`` in parsed blocks of about ``chunk_bytes`` (default
    :data:`CHUNK_BYTES`); re-download while fewer than ``expected`` new lines arrived. Returns that count.

    No more than one block is held at a time: ``write`` persists it and counts the lines it had not seen
    (so the lines of a cut download count, and a re-download adds only what was missing).

    Raises
    ------
    TransportError
        Still incomplete after ``max_downloads`` attempts.

    Examples
    --------
    >>> download(provider, "msgbatch_01...", 100, lambda table: table.num_rows)  # doctest: +SKIP
    100
    """
    got, cut = 0, None
    for n in range(max_downloads):
        parser = provider.result_parser(chunk_bytes=chunk_bytes or CHUNK_BYTES)
        try:
            with provider.stream_results(batch_id) as chunks:
                for chunk in read_ahead(chunks):  # the next bytes arrive while these are parsed and written
                    parser.feed(chunk)
                    got += sum(write(table) for table in parser.drain())
        except TransportError as exc:
            cut = exc
        got += write(parser.finish())
        if got >= expected:
            return got
        time.sleep(min(0.05 * 2**n, 2.0))
    raise TransportError(
        f"results of batch {batch_id} incomplete after {max_downloads} downloads: "
        f"{got} of {expected} lines" + (f" (last error: {cut})" if cut else "")
    )


def harvest_shard(
    provider: Provider, store: Store, manifest: dict[str, Any], attempt: int, shard: dict[str, Any]
) -> dict[str, Any]:
    """Download, match and persist one ended shard; returns the fields to record on the shard as it
    moves to ``harvested``.

    The results stream into the shard's Parquet file block by block (one row group each) through a
    temporary file renamed over it only once every line arrived: memory stays bounded by the block size.

    Examples
    --------
    >>> move(shard, ShardState.HARVESTED, **harvest_shard(provider, store, manifest, 1, shard))  # doctest: +SKIP
    """
    try:
        return _harvest_shard(provider, store, manifest, attempt, shard)
    finally:
        release_unused()  # the blocks' memory, before the next shard (or the merge) takes its own


def _harvest_shard(
    provider: Provider, store: Store, manifest: dict[str, Any], attempt: int, shard: dict[str, Any]
) -> dict[str, Any]:
    name = manifest["name"]
    known, positions = shard_mapping(store, name, attempt, shard["index"])
    index = read_labels(read_labelled(store.requests_path(name, 1), ["position"]))
    sink = ShardSink(known, positions, index[positions], attempt=attempt, batch_id=shard["batch_id"],
                     price_for=provider.pricer(manifest["model"])[0], metadata=_metadata(manifest, attempt, shard),
                     extra=[EMBEDDING] if is_embeddings(manifest) else [])
    del index
    path = store.results_path(name, attempt, shard["index"])
    with replacing(path) as tmp, sink.open(tmp):
        download(provider, shard["batch_id"], len(known), sink.write)
    return {"results_file": str(path.relative_to(store.job_dir(name))), **sink.summary()}


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
    return read_columns(path, [INPUT_HASH]).column(INPUT_HASH).to_numpy()


def stored_results(store: Store, manifest: dict[str, Any], *, price_for: PriceLookup,
                   prefix: str = DEFAULT_PREFIX) -> pd.DataFrame:
    """The result columns of a job from its store: one row per source row, indexed like the submitted frame.

    Each row takes its latest attempt's result; rows not harvested yet are ``pending``, rows never sent
    ``skipped``. Cost is priced with the provider's ``price_for``.

    Examples
    --------
    >>> stored_results(job.store, job.manifest, price_for=provider.price_for)["llm_status"][:2]  # doctest: +SKIP
    """
    try:
        return _stored_results(store, manifest, price_for=price_for, prefix=prefix)
    finally:
        release_unused()  # what combining freed, before the caller merges (and hashes the frame)


def _stored_results(store: Store, manifest: dict[str, Any], *, price_for: PriceLookup, prefix: str) -> pd.DataFrame:
    name = manifest["name"]
    path = store.requests_path(name, 1)
    same_as_stored = SAME_AS in pq.read_schema(path).names
    source = read_columns(path, ["shard", *([SAME_AS] if same_as_stored else [])])  # in position order
    paths = [store.job_dir(name) / s["results_file"] for _, s in iter_shards(manifest)
             if state_of(s) is ShardState.HARVESTED]
    shard_of = source.column("shard").to_numpy()
    skipped = shard_of == SKIPPED
    same_as = source.column(SAME_AS).to_numpy() if same_as_stored else None
    pricer = functools.partial(cost_array, price_for=price_for)
    linked = answered_elsewhere(store, manifest, shard_of)
    with ResultsFiles(paths) as files:  # read a column at a time: the results are never held twice
        table = combine(len(skipped), skipped, files.keys(), pricer=pricer, same_as=same_as, linked=linked,
                        read_column=files.column)
    if is_embeddings(manifest):
        table = table.append_column(EMBEDDING.name, _vectors(paths, len(skipped), same_as))
    # The labels last: the frame needs them, combining does not (nor the room they take while it runs).
    return to_frame(table, read_labels(read_labelled(path, ["position"])), prefix)


def _vectors(paths: list[Any], n_rows: int, same_as: np.ndarray | None) -> pa.Array:
    """Each row's vector at its latest attempt (fanned out to rows answered through an identical one)."""
    tables = [pq.read_table(p, columns=["position", "attempt", EMBEDDING.name]) for p in paths]
    found = latest_per_position(tables) if tables else pa.table({"position": pa.array([], pa.int64())})
    take = np.full(n_rows, -1, np.int64)
    take[found.column("position").to_numpy()] = np.arange(found.num_rows)
    if same_as is not None:
        other = (same_as >= 0) & (same_as != np.arange(n_rows))
        take[other] = take[same_as[other]]
    if not found.num_rows:
        return pa.nulls(n_rows, EMBEDDING.type)
    vectors = found.column(EMBEDDING.name).take(pa.array(take, mask=take < 0)).combine_chunks()
    return vectors.cast(EMBEDDING.type)  # Parquet names the list's item "element": one dtype whatever was read
