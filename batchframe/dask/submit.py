"""``ddf.batch.submit`` on the driver: it decides from fingerprints and line lengths, never from request bodies.

**Only the driver decides, creates batches and writes the job's files; it never holds the request bodies.**
The workers stage each partition (:mod:`batchframe.dask.stage`: lines written to a staging file, digests and
line lengths handed back). The driver then, as the pandas submit does (:mod:`batchframe.jobs.submit`):

* identifies the job: its fingerprint is the sha256 of who answers and of each partition's hash of its lines,
  in order (fixed-size pieces; it differs from the pandas job of the same frame, whose identical requests
  the ledger's digests still keep from being paid twice);
* dedupes identical requests by digest and looks the digests up in the store's ledger;
* cuts shards from the line lengths under the provider's limits, across partition boundaries;
* writes ``requests.parquet`` streaming, one partition's staging file at a time, then the manifest, before
  anything is sent; then sends each shard reading its lines back from that file
  (:meth:`batchframe.jobs.job.Job.send_unsent`), and removes the staging folder.

A partition rebuilt after its worker died rewrites its own staging file; nothing a worker does creates a
batch, so nothing is paid twice. With ``budget_usd`` the plan is priced before anything is stored, and so is
it by :func:`estimate`, from what the workers handed back (each request's parameters' length and
``max_tokens``) and the sampled requests read back from the staging files (:func:`price_staged`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import dask.dataframe as dd
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from dask.dataframe.utils import make_meta

from batchframe.dask.build import check_spec, first_row
from batchframe.dask.rows import PARTITIONS, record_partitions
from batchframe.dask.stage import Post, Stage, Staged, build, fetch_params, stage_partition, staging
from batchframe.errors import InputError
from batchframe.jobs.bodies import drop_other_lines
from batchframe.jobs.estimate import Basis, Estimate, count_plan, price, shard_bounds
from batchframe.jobs.job import Job
from batchframe.jobs.labels import index_names
from batchframe.jobs.ledger import DIGEST, Matches, as_keys, lookup
from batchframe.jobs.links import VIA
from batchframe.jobs.plan import Context, answerer_of, check_betas, check_built, context, shard_plan
from batchframe.jobs.store import Store, validate_name
from batchframe.jobs.submit import (
    check_budget,
    choose_job,
    kept_uid,
    new_manifest,
    request_record,
    warn_short_prefix_of,
    waves_record,
)
from batchframe.jobs.tokens import SAMPLE_SIZE
from batchframe.providers.http import RetryPolicy
from batchframe.requests.build import RequestSet
from batchframe.requests.fingerprint import fingerprint
from batchframe.requests.keys import first_by_key
from batchframe.results.export import METADATA_KEY, replacing
from batchframe.results.schema import INPUT_HASH, REUSED, SAME_AS, SKIPPED

#: Rows of a staging file the driver reads at a time while writing the requests file (one row group each).
BATCH_ROWS = 65_536


def submit(ddf: dd.DataFrame, *, post: Post | None = None, **kwargs: Any) -> Job:
    """Submit every row of ``ddf``: staged on the workers, decided and sent from here (see the module docstring).

    ``kwargs`` are :func:`batchframe.submit`'s; ``post`` turns the built requests into the ones sent
    (embeddings). The job records each partition's row count, so that merge finds a partition's rows directly.

    Examples
    --------
    >>> job = submit(ddf, prompt="q", model="claude-haiku-4-5", max_tokens=16, provider="local")  # doctest: +SKIP
    """
    job, sizes = _submit_staged(ddf, post=post, **kwargs)
    record_partitions(job, sizes)
    return job


def estimate(ddf: dd.DataFrame, *, exact: bool = False, sample_size: int = SAMPLE_SIZE, prime_cache: bool = False,
             new: bool = False, dedupe: bool = True, retry: RetryPolicy | None = None, name: str | None = None,
             budget_usd: float | None = None, **kwargs: Any) -> Estimate:
    """What :func:`submit` with the same arguments would send and cost (see :func:`batchframe.estimate`): the
    partitions are staged and planned as for a submit, priced (:func:`price_staged`), and the staging
    folder removed; nothing is stored or sent.

    Examples
    --------
    >>> estimate(ddf, prompt="q", model="claude-haiku-4-5", max_tokens=16, provider="local").n_shards  # doctest: +SKIP
    1
    """
    if name is not None:
        validate_name(name)
    setup = Setup.of(ddf, None, **kwargs)
    with staging(setup.ctx.store) as folder:
        staged, decided, _ = setup.stage(ddf, folder, dedupe=dedupe)
        matches = lookup(setup.ctx.store, setup.answerer, decided.digests) if dedupe and not new else None
        rows = decided.plan(matches, setup.ctx, prime=prime_cache)
        return price_staged(setup.ctx, folder, staged, decided, rows, setup.described, setup.prompt, exact=exact,
                            sample_size=sample_size, prime=prime_cache, retry=retry)


@dataclass(frozen=True)
class Setup:
    """What the driver settles before any work on the workers: where and to whom (``ctx``, ``answerer``), the
    build's arguments (``spec``, ``post``) and the requests of the frame's first row (``described``), which
    checked them."""

    ctx: Context
    betas: list[str]
    answerer: str
    spec: dict[str, Any]
    post: Post | None
    described: RequestSet
    prompt: str
    cache: str | None

    @classmethod
    def of(cls, ddf: dd.DataFrame, post: Post | None, *, prompt: str, model: str, max_tokens: Any,
           provider: str | None = None, api_key: str | None = None, base_url: str | None = None,
           max_batch_requests: int | None = None, max_batch_bytes: int | None = None,
           max_in_flight: int | None = None, store: str | Store | None = None,
           provider_options: dict[str, Any] | None = None, betas: Sequence[str] = (), cache: str | None = None,
           schema: Any = None, **params: Any) -> Setup:
        ctx = context(model=model, provider=provider, api_key=api_key, base_url=base_url,
                      max_batch_requests=max_batch_requests, max_batch_bytes=max_batch_bytes,
                      max_in_flight=max_in_flight, store=store, provider_options=provider_options)
        betas = check_betas(betas)
        spec = {"prompt": prompt, "model": model, "max_tokens": max_tokens, "cache": cache,
                "schema_via": ctx.schema_via, **({"schema": schema} if schema is not None else {}), **params}
        check_spec(spec)
        described = build(first_row(ddf), spec, post)  # bad arguments fail here, before any work on the workers
        check_built(described)
        return cls(ctx, betas, answerer_of(ctx.endpoint, betas), spec, post, described, prompt, cache)

    def stage(self, ddf: dd.DataFrame, folder: Path, *, dedupe: bool) -> tuple[list[Staged], Decided, pa.Schema]:
        """Stage every partition into ``folder``; the driver's view of them; the schema they are read as."""
        staged = stage_all(ddf, Stage(str(folder), self.answerer, self.ctx.endpoint.provider, self.spec, self.post))
        decided = Decided.of(staged, self.answerer + ("" if dedupe else "|dedupe=False"), dedupe=dedupe)
        return staged, decided, staged_schema(folder, staged)


def _submit_staged(ddf: dd.DataFrame, *, post: Post | None = None, name: str | None = None, new: bool = False,
                   retry: RetryPolicy | None = None, dedupe: bool = True, budget_usd: float | None = None,
                   max_in_flight: int | None = None, prime_cache: bool = False,
                   **kwargs: Any) -> tuple[Job, list[int]]:
    if name is not None:
        validate_name(name)
    setup = Setup.of(ddf, post, max_in_flight=max_in_flight, **kwargs)
    ctx = setup.ctx
    warn_short_prefix_of(setup.described, ctx.endpoint, stacklevel=5)
    waves = waves_record(budget_usd, max_in_flight, prime_cache)
    with staging(ctx.store) as folder:
        staged, decided, schema = setup.stage(ddf, folder, dedupe=dedupe)
        with ctx.store.lock():
            job_name, fresh, previous = choose_job(ctx.store, name, decided.digest, new)
            if fresh:
                use_ledger = dedupe and not new
                matches = lookup(ctx.store, setup.answerer, decided.digests, exclude=job_name) if use_ledger else None
                rows = decided.plan(matches, ctx, prime=prime_cache)
                if budget_usd is not None:  # counted and checked before anything is stored or created
                    check_budget(price_staged(ctx, folder, staged, decided, rows, setup.described, setup.prompt,
                                              prime=prime_cache, retry=retry), rows.shards, budget_usd)
                request = request_record(setup.prompt, setup.betas, setup.cache, setup.described)
                _persist(ctx, job_name, previous, folder, staged, decided, rows, setup.described, request, waves,
                         make_meta(ddf).index, schema)
    job = Job(job_name, store=ctx.store, endpoint=ctx.endpoint, retry=retry)
    job.send_unsent(None, fingerprint=decided.digest)  # each shard's lines read back from requests.parquet
    if fresh and rows.n_linked:
        job.refresh()  # answers the store already holds are copied now; others are waited for by wait()
    return job, [s.n_rows for s in staged]


def price_staged(ctx: Context, folder: Path, staged: list[Staged], decided: Decided, rows: RowPlan,
                 described: RequestSet, prompt: str, *, exact: bool = False, sample_size: int = SAMPLE_SIZE,
                 prime: bool = False, retry: RetryPolicy | None = None) -> Estimate:
    """The :class:`~batchframe.jobs.estimate.Estimate` of a staged plan, priced as the pandas estimate is
    (:func:`batchframe.jobs.estimate.price`): the token count's sample is chosen from the parameters' lengths
    the workers handed back, and only the sampled requests are read back from the staging files
    (:func:`.stage.fetch_params`); ``described``, any RequestSet of the job's arguments (its shared prefix is
    every request's)."""
    send = rows.send  # the requests sent, in shard order (indices into the staged requests)
    params_sizes = np.concatenate([s.params_sizes for s in staged])[send].astype(np.int64)
    max_out = np.concatenate([s.max_tokens for s in staged])[send].astype(float)
    at = decided.positions[send]  # their rows in the frame

    def fetch(chosen: np.ndarray) -> list[bytes]:
        return fetch_params(folder, staged, at[chosen], ctx.codec)

    first = None
    if described.cache is not None and len(send):
        first = described.params[0] if len(described.params) else fetch(np.zeros(1, np.int64))[0]
    counted, prefix = count_plan(ctx.endpoint, params_sizes, fetch, described.cache, first, exact=exact,
                                 sample_size=sample_size, retry=retry)
    n_rows = len(decided.sent)
    basis = Basis(ctx.endpoint.provider, described.model, prompt, ctx.store, n_rows=n_rows,
                  n_skipped=n_rows - len(decided.sent_as), n_reused=rows.n_reused, n_in_ledger=rows.n_linked)
    return price(basis, counted, max_out, prefix, shard_bounds(rows.shards), prime=prime)


def stage_all(ddf: dd.DataFrame, stage: Stage) -> list[Staged]:
    """Stage every partition on the workers; their offsets come from a first pass that counts their rows.

    Raises :class:`batchframe.errors.InputError` when a partition's row count changed between the two passes
    (a frame that is not the same each time it is computed).
    """
    sizes = ddf.map_partitions(len).compute().tolist()
    offsets = np.cumsum([0, *sizes[:-1]]).tolist()
    tasks = [dask.delayed(stage_partition)(part, stage, k, int(offset))
             for k, (part, offset) in enumerate(zip(ddf.to_delayed(), offsets, strict=True))]
    staged = _compute_all(tasks)
    for s, n in zip(staged, sizes, strict=True):
        if s.n_rows != n:
            raise InputError(
                f"partition {s.number} had {n} rows when counted and {s.n_rows} when built: the frame gives other "
                "rows each time it is computed; persist it first (ddf = ddf.persist()) or write it to Parquet")
    return staged


def _compute_all(tasks: list[Any]) -> list[Staged]:
    """The tasks' results; when one fails on a cluster, the others are let finish first, so that none writes
    into the staging folder after the driver has removed it."""
    try:
        from distributed import default_client, wait

        client = default_client()
    except (ImportError, ValueError):  # no distributed client: dask's local schedulers
        return list(dask.compute(*tasks))
    futures = client.compute(tasks)
    try:
        return list(client.gather(futures))
    except BaseException:
        with contextlib.suppress(Exception):
            client.cancel(futures)  # tasks not started never start; those running are waited for
            wait(futures, timeout=120)
        raise


class Decided:
    """The driver's view of the staged requests: per request its digest (``keys``, ``(n, 2)`` uint64) and
    line size, per row whether it sends one; the job fingerprint; ``sent_as[i]``, the request answering ``i``.
    """

    def __init__(self, sent: np.ndarray, digests: pa.Array, sizes: np.ndarray, digest: str, dedupe: bool):
        self.sent, self.digests, self.sizes, self.digest = sent, digests, sizes, digest
        self.positions = np.flatnonzero(sent)
        keys = as_keys(digests)
        self.sent_as = first_by_key(keys) if dedupe else np.arange(len(keys), dtype=np.int64)

    @classmethod
    def of(cls, staged: list[Staged], identity: str, *, dedupe: bool) -> Decided:
        sent = np.concatenate([s.sent for s in staged]) if staged else np.zeros(0, bool)
        n_sent = int(sent.sum())
        if n_sent == 0:
            raise InputError(f"no row to send: all {len(sent)} prompts are empty (NaN, None or blank)")
        data = b"".join(s.digests for s in staged)
        digests = pa.Array.from_buffers(pa.binary(16), n_sent, [None, pa.py_buffer(data)])
        sizes = np.concatenate([s.sizes for s in staged])
        digest = fingerprint(identity + "|partitions", [s.lines_hash for s in staged])
        return cls(sent, digests, sizes, digest, dedupe)

    def plan(self, matches: Matches | None, ctx: Context, *, prime: bool) -> RowPlan:
        """Every row's shard, source row and carrier, from the ledger's ``matches`` and the line sizes."""
        n_sent = len(self.sent_as)
        own = np.flatnonzero(self.sent_as == np.arange(n_sent))
        linked = matches.found[own] if matches is not None else np.zeros(len(own), bool)
        shard_of, via, shards = shard_plan(self.sizes[own[~linked]], own, linked, matches, ctx.limits, ctx.codec,
                                           prime=prime)
        rows, n = self.positions, len(self.sent)
        is_own = np.zeros(n_sent, bool)
        is_own[own] = True
        row_shard = np.full(n, SKIPPED, np.int32)
        row_shard[rows[own]] = shard_of
        row_shard[rows[~is_own]] = REUSED
        same_as = np.full(n, -1, np.int64)
        same_as[rows] = rows[self.sent_as]
        row_via = np.full(n, -1, np.int64)
        row_via[rows[own]] = via
        return RowPlan(row_shard, same_as, row_via, shards, len(own), int(linked.sum()), int((~is_own).sum()),
                       own[~linked])


class RowPlan:
    """Per row of the frame: its shard (or ``SKIPPED`` / ``REUSED``), the row whose request answers it
    (``same_as``), its row in the job that carries it (``via``); the shard records; and ``send``, the requests
    sent (indices into the staged requests), in shard order."""

    def __init__(self, shard: np.ndarray, same_as: np.ndarray, via: np.ndarray, shards: list[Any], n_own: int,
                 n_linked: int, n_reused: int, send: np.ndarray):
        self.shard, self.same_as, self.via, self.shards = shard, same_as, via, shards
        self.n_own, self.n_linked, self.n_reused, self.send = n_own, n_linked, n_reused, send


def _persist(ctx: Context, name: str, previous: str | None, folder: Path, staged: list[Staged], decided: Decided,
             rows: RowPlan, described: RequestSet, request: dict[str, Any], waves: dict[str, Any] | None,
             index_meta: Any, schema: pa.Schema) -> None:
    """Write requests.parquet (streamed from the staging files) and the manifest, before anything is sent."""
    store = ctx.store
    uid = kept_uid(store, name, decided.digest, previous)
    path = store.requests_path(name, 1)
    meta = {"job": name, "provider": ctx.endpoint.provider, "model": described.model, **index_names(index_meta)}
    with store.lock(name):
        write_requests(path, folder, staged, rows, meta, schema)
        n_rows = len(decided.sent)
        manifest = new_manifest(
            name, ctx.endpoint, described.model, decided.digest, request, rows.shards, ctx.limits, uid=uid,
            previous=previous, waves=waves, n_rows=n_rows, n_skipped=n_rows - len(decided.sent_as),
            n_reused=rows.n_reused + rows.n_linked, n_linked=rows.n_linked, n_requests=rows.n_own,
            requests_file=path.name)
        store.write_manifest(name, {**manifest, PARTITIONS: [s.n_rows for s in staged]})
        drop_other_lines(store, name, keep=None)  # a pandas plan's lines, if this name had one: not this job's


def write_requests(path: Path, folder: Path, staged: list[Staged], rows: RowPlan, meta: dict[str, Any],
                   schema: pa.Schema) -> None:
    """The job's requests file, in the pandas submit's columns (:func:`batchframe.jobs.submit.requests_table`),
    written atomically a slice of a staging file (``schema``: see :func:`staged_schema`) at a time, so the
    driver holds at most :data:`BATCH_ROWS` lines: a row's custom_id and body only where it carries its own
    request."""
    writer: pq.ParquetWriter | None = None
    offset = 0
    with replacing(path) as tmp:
        try:
            for s in staged:
                if s.n_rows == 0:
                    continue
                with pq.ParquetFile(s.path(folder)) as source:
                    for batch in source.iter_batches(batch_size=BATCH_ROWS):
                        part = pa.Table.from_batches([batch]).replace_schema_metadata(schema.metadata)
                        table = _requests_part(part if part.schema == schema else part.cast(schema), rows,
                                               slice(offset, offset + batch.num_rows))
                        offset += batch.num_rows
                        table = table.replace_schema_metadata(
                            {**(schema.metadata or {}), METADATA_KEY: json.dumps(meta, default=str).encode()})
                        if writer is None:
                            writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
                        writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()


def staged_schema(folder: Path, staged: list[Staged]) -> pa.Schema:
    """The schema every staging file is read as: the first one's whose labels have a type (a partition whose
    labels are all missing has none); raises :class:`batchframe.errors.InputError` when the partitions'
    labels have types that cannot be stored in one file. Checked before anything is stored."""
    schemas = [(s.number, pq.read_schema(s.path(folder))) for s in staged if s.n_rows]
    typed = [x for x in schemas if not any(pa.types.is_null(f.type) for f in x[1])]
    number, schema = (typed or schemas)[0]
    for k, other in schemas:
        for field in other:
            want = schema.field(field.name).type
            if field.type != want and not pa.types.is_null(field.type):
                raise InputError(
                    f"the frame's index has values of another type in partition {k} ({field.type}) than in "
                    f"partition {number} ({want}), which one Parquet file cannot hold; convert it, e.g. "
                    "ddf = ddf.set_index(ddf.index.astype(str)), or reset the index")
    return schema


def _requests_part(part: pa.Table, rows: RowPlan, at: slice) -> pa.Table:
    """One partition's rows of the requests file, from its staging file and the plan."""
    carries = pa.array(rows.same_as[at] == np.arange(at.start, at.stop))  # sent, and answered by itself
    labels = part.select(part.column_names[: part.column_names.index("custom_id")])
    ids, bodies = part.column("custom_id"), part.column("body")
    return (labels
            .append_column("custom_id", pc.if_else(carries, ids, pa.scalar(None, ids.type)))
            .append_column("shard", pa.array(rows.shard[at], pa.int32()))
            .append_column("body", pc.if_else(carries, bodies, pa.scalar(None, bodies.type)))
            .append_column(SAME_AS, pa.array(rows.same_as[at], pa.int64()))
            .append_column(INPUT_HASH, part.column(INPUT_HASH))
            .append_column(DIGEST, part.column(DIGEST))
            .append_column(VIA, pa.array(rows.via[at], pa.int64())))
