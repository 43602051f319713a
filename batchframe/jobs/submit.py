"""``df.batch.submit``: build, fingerprint, persist, then send shard by shard.

Idempotency: the fingerprint (provider identity + every request body) is stored in the manifest. A
submit whose fingerprint is already in the store returns that job and sends only the shards it never
managed to send (none, normally), so a re-run cell never pays twice. ``new=True`` asks for a new job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from batchframe.errors import InputError, JobError
from batchframe.jobs.job import Job
from batchframe.jobs.labels import index_names, labels_table, name_to_json
from batchframe.jobs.manifest import iter_shards, now, plan_shard_records
from batchframe.jobs.migrations import FORMAT
from batchframe.jobs.states import SENDABLE, ShardState, state_of
from batchframe.jobs.store import Store, check_index_storable, validate_name
from batchframe.providers import Endpoint, open_endpoint, provider_class
from batchframe.providers.base import Codec
from batchframe.providers.http import RetryPolicy
from batchframe.requests.build import RequestSet, build_requests, preview
from batchframe.requests.fingerprint import fingerprint
from batchframe.requests.keys import first_occurrences
from batchframe.requests.shards import ShardLimits
from batchframe.results.merge import input_hashes
from batchframe.results.schema import INPUT_HASH, REUSED, SAME_AS, SKIPPED


def submit(
    df: pd.DataFrame,
    *,
    prompt: str,
    model: str,
    max_tokens: int | str,
    name: str | None = None,
    provider: str | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    new: bool = False,
    max_batch_requests: int | None = None,
    max_batch_bytes: int | None = None,
    store: str | Store | None = None,
    provider_options: dict[str, Any] | None = None,
    retry: RetryPolicy | None = None,
    betas: Sequence[str] = (),
    dedupe: bool = True,
    **params: Any,
) -> Job:
    """Send every row of ``df`` as Message Batches requests and return the :class:`Job`.

    Parameters
    ----------
    df : DataFrame
    prompt, model, max_tokens, **params
        See :func:`batchframe.requests.build.build_requests` (templates, per-row columns, documents, images).
    name : str, optional
        Job name (a folder of the job store); generated when omitted.
    provider : {"anthropic", "local"}, optional
        Default ``$BATCHFRAME_PROVIDER`` or ``"anthropic"`` (which needs ``ANTHROPIC_API_KEY``).
    api_key, base_url : str, optional
        Override ``ANTHROPIC_API_KEY`` / ``ANTHROPIC_BASE_URL``. The key is never stored, and goes only to
        the environment's host or a ``base_url`` passed explicitly; plain ``http://`` only to loopback.
    new : bool
        Submit again even if the same requests were already submitted (pays again). Without it, a
        submit whose fingerprint matches a job of the store returns that job, whatever ``name`` says,
        and only sends its shards that were never created.
    max_batch_requests, max_batch_bytes : int, optional
        Lower the per-batch limits (defaults: the provider's, 100,000 requests and 256 MB).
    store : str or Store, optional
        Job store folder (default ``$BATCHFRAME_STORE``, else ``jobs`` in the per-user data folder).
    provider_options : dict, optional
        Extra settings of the provider (for ``local``: ``data_dir``, ``engine``, ``engine_options``). A local
        job records the engine, its model and options that answered it, and is never answered by another.
    retry : RetryPolicy, optional
        Retries and backoff of every HTTP call of this job (in this process).
    betas : list of str, optional
        Feature betas for the requests (e.g. ``["structured-outputs-2025-11-13"]``), sent as the
        ``anthropic-beta`` header of each create call (a batch refuses them inside ``params``).
    dedupe : bool
        Rows whose requests are identical go out once and share the answer (``reused`` column True, cost
        counted once). ``dedupe=False`` sends every row, e.g. to sample the same prompt several times.

    Examples
    --------
    >>> job = df.batch.submit(prompt="Summarize: {text}", model="claude-haiku-4-5", max_tokens=200,
    ...                       provider="local")  # doctest: +SKIP
    >>> job.wait()  # doctest: +SKIP
    """
    endpoint = open_endpoint(provider, api_key=api_key, base_url=base_url, **(provider_options or {}))
    codec = provider_class(endpoint.provider).codec
    limits = _limits(endpoint, max_batch_requests, max_batch_bytes)
    requests = build_requests(df, prompt=prompt, model=model, max_tokens=max_tokens, **params)
    if requests.n_sent == 0:
        raise InputError(f"no row to send: all {requests.n_rows} prompts are empty (NaN, None or blank)")
    check_index_storable(df.index)
    store = store if isinstance(store, Store) else Store(store)
    betas = _betas(betas)
    sent = first_occurrences(requests.params) if dedupe else np.arange(requests.n_sent)
    unique = np.flatnonzero(sent == np.arange(requests.n_sent))
    all_lines = codec.encode_lines(requests.custom_ids, requests.params)
    lines = all_lines if len(unique) == requests.n_sent else [all_lines[i] for i in unique]
    # Over every row's line, as before dedupe existed: re-running a cell written then finds its job.
    identity = endpoint.identity + (f"|betas={','.join(betas)}" if betas else "") + ("" if dedupe else "|dedupe=False")
    digest = fingerprint(identity, all_lines)
    del all_lines
    with store.lock():
        existing = None if new else store.find_fingerprint(digest)
        fresh = existing is None or _never_sent(store, existing)
        job_name = existing or _new_name(store, name, digest, new)
        if fresh:  # a job no batch was ever created for is (re)planned with the limits given now
            plan = _Plan(requests, lines, limits, codec, sent)
            spec = {"prompt": prompt, "betas": betas, "columns": [name_to_json(c) for c in requests.columns]}
            _persist_new(store, job_name, df, plan, endpoint, digest, spec)
    job = Job(job_name, store=store, endpoint=endpoint, retry=retry)
    job.send_unsent(lines if fresh else None, fingerprint=digest)
    return job


@dataclass(frozen=True)
class _Plan:
    """What a new job persists: its requests, their encoded lines, and the shard limits."""

    requests: RequestSet
    lines: list[bytes]
    limits: ShardLimits
    codec: Codec
    #: For each sent row (in order), the index of the first row with the identical request (itself if none).
    sent_as: np.ndarray


def _betas(betas: Sequence[str]) -> list[str]:
    if isinstance(betas, str) or not all(isinstance(b, str) and b and "," not in b for b in betas):
        raise InputError(f"betas must be a list of beta names, e.g. ['structured-outputs-2025-11-13'], got {betas!r}")
    return list(betas)


def _never_sent(store: Store, name: str, *, refused_only: bool = False) -> bool:
    """True when every shard of the job is ``planned`` or ``failed`` (refused): nothing exists remotely.

    With ``refused_only`` (before another frame takes the name), a ``failed`` shard counts only when the
    provider refused it outright (4xx other than 408/409/429): after a retryable error a late batch could
    still appear, and it must stay this job's.
    """
    with store.lock(name):
        manifest = store.read_manifest(name)
    shards = [s for _, s in iter_shards(manifest)]
    if not all(state_of(s) in SENDABLE for s in shards):
        return False
    return not refused_only or all(_refused_outright(s) for s in shards if state_of(s) is ShardState.FAILED)


def _refused_outright(shard: dict[str, Any]) -> bool:
    status = (shard.get("error") or {}).get("status")
    return isinstance(status, int) and 400 <= status < 500 and status not in (408, 409, 429)


def requests_preview(
    df: pd.DataFrame, *, prompt: str, model: str, max_tokens: int | str, **params: Any
) -> pd.DataFrame:
    """Dry run: the request of every row (``custom_id``, ``params``, ``skipped``); nothing is sent.

    Examples
    --------
    >>> df = pd.DataFrame({"q": ["hi", None]})
    >>> requests_preview(df, prompt="q", model="claude-haiku-4-5", max_tokens=8)["skipped"].tolist()
    [False, True]
    """
    for key in (
        "betas",
        "name",
        "provider",
        "api_key",
        "base_url",
        "new",
        "max_batch_requests",
        "max_batch_bytes",
        "store",
        "provider_options",
        "retry",
    ):
        params.pop(key, None)
    requests = build_requests(df, prompt=prompt, model=model, max_tokens=max_tokens, **params)
    return preview(requests, df.index)


def _limits(endpoint: Endpoint, max_requests: int | None, max_bytes: int | None) -> ShardLimits:
    own = provider_class(endpoint.provider).limits()
    wanted = ShardLimits(max_requests=max_requests or own.max_requests, max_bytes=max_bytes or own.max_bytes)
    return wanted.within(own)


def _new_name(store: Store, name: str | None, fingerprint: str, new: bool) -> str:
    if name is not None:
        validate_name(name)
        # A job nothing was ever created for (refused, e.g. a typo'd parameter) takes the corrected frame.
        if store.exists(name) and not _never_sent(store, name, refused_only=True):
            raise JobError(
                f"job {name!r} already exists with other requests; choose another name, or open it "
                f"with batchframe.open_job({name!r})"
            )
        return name
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    base = f"job-{stamp}-{fingerprint[:8]}"
    candidate, n = base, 1
    while store.exists(candidate):
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def _persist_new(
    store: Store,
    name: str,
    df: pd.DataFrame,
    plan: _Plan,
    endpoint: Endpoint,
    digest: str,
    request: dict[str, Any],
) -> None:
    """Write requests.parquet and the manifest (all shards ``planned``) before anything is sent."""
    requests, limits = plan.requests, plan.limits
    line_shards, shards = plan_shard_records(plan.lines, limits, plan.codec)
    own = plan.sent_as == np.arange(requests.n_sent)
    shard_of = np.full(requests.n_rows, SKIPPED, dtype=np.int32)
    shard_of[requests.positions[own]] = line_shards
    shard_of[requests.positions[~own]] = REUSED
    same_as = np.full(requests.n_rows, -1, dtype=np.int64)
    same_as[requests.positions] = requests.positions[plan.sent_as]
    with store.lock(name):
        store.write_table(
            store.requests_path(name, 1),
            requests_table(df.index, requests, plan.lines, shard_of, same_as, input_hashes(df, requests.columns)),
            metadata={"job": name, "provider": endpoint.provider, "model": requests.model, **index_names(df.index)},
        )
        store.write_manifest(
            name,
            {
                "format": FORMAT,
                "name": name,
                "provider": endpoint.provider,
                "identity": endpoint.identity,
                "base_url": endpoint.base_url,
                "data_dir": endpoint.data_dir,
                "service": endpoint.service,
                "model": requests.model,
                "fingerprint": digest,
                "created_at": now(),
                "n_rows": requests.n_rows,
                "n_skipped": int(requests.skipped.sum()),
                "n_reused": int((~own).sum()),
                "request": request,
                "limits": {"max_requests": limits.max_requests, "max_bytes": limits.max_bytes},
                "attempts": [
                    {
                        "attempt": 1,
                        "created_at": now(),
                        "reason": "submit",
                        "n_requests": len(plan.lines),
                        "requests_file": store.requests_path(name, 1).name,
                        "shards": shards,
                    }
                ],
            },
        )


def requests_table(index: pd.Index, requests: RequestSet, lines: list[bytes], shard_of: np.ndarray,
                   same_as: np.ndarray, hashes: np.ndarray) -> pa.Table:
    """One row per source row: index labels, position, custom_id, shard (``SKIPPED``, ``REUSED`` or the
    shard that sends it), body (the line sent), same_as (the row whose request answers it) and the hash of
    the row's inputs (what merge checks)."""
    n = requests.n_rows
    ids: list = [None] * n
    bodies: list = [None] * n
    own = np.flatnonzero(same_as[requests.positions] == requests.positions)  # indices of the sent requests
    for k, pos, line in zip(own.tolist(), requests.positions[own].tolist(), lines, strict=True):
        ids[pos], bodies[pos] = requests.custom_ids[k], line
    table, _ = labels_table(index, {"position": np.arange(n, dtype=np.int64)})
    table = table.append_column("custom_id", pa.array(ids, pa.string()))
    table = table.append_column("shard", pa.array(shard_of, pa.int32()))
    table = table.append_column("body", pa.array(bodies, pa.binary()))
    table = table.append_column(SAME_AS, pa.array(same_as, pa.int64()))
    return table.append_column(INPUT_HASH, pa.array(hashes, pa.uint64()))
