"""``df.batch.submit``: build, fingerprint, persist, then send shard by shard.

Idempotency: the fingerprint (provider identity + every request body) is stored in the manifest. A
submit whose fingerprint is already in the store returns that job and sends only the shards it never
managed to send (none, normally), so a re-run cell never pays twice. ``new=True`` asks for a new job.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from batchframe.errors import InputError
from batchframe.jobs.job import Job
from batchframe.jobs.labels import index_names, labels_table, name_to_json
from batchframe.jobs.ledger import DIGEST, Matches, lookup
from batchframe.jobs.links import VIA, linked_shard
from batchframe.jobs.manifest import iter_shards, now, plan_shard_records
from batchframe.jobs.migrations import FORMAT
from batchframe.jobs.states import SENDABLE, ShardRecord, ShardState, state_of
from batchframe.jobs.store import REVISION_MARK, Store, check_index_storable, validate_name
from batchframe.providers import Endpoint, open_endpoint, provider_class
from batchframe.providers.base import Codec
from batchframe.providers.http import RetryPolicy
from batchframe.requests.build import RequestSet, build_requests, preview
from batchframe.requests.fingerprint import fingerprint, request_digests
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
    if name is not None:
        validate_name(name)
    store = store if isinstance(store, Store) else Store(store)
    betas = _betas(betas)
    answerer = endpoint.identity + (f"|betas={','.join(betas)}" if betas else "")  # who answers, and how
    sent_as = first_occurrences(requests.params) if dedupe else np.arange(requests.n_sent)
    all_lines = codec.encode_lines(requests.custom_ids, requests.params)
    # Over every row's line, as before dedupe existed: re-running a cell written then finds its job.
    digest = fingerprint(answerer + ("" if dedupe else "|dedupe=False"), all_lines)
    digests = request_digests(answerer, requests.params)
    with store.lock():
        job_name, fresh, previous = _choose(store, name, digest, new)
        if fresh:  # a job no batch was ever created for is (re)planned with the limits given now
            use_ledger = dedupe and not new
            matches = lookup(store, answerer, digests, exclude=job_name) if use_ledger else None
            plan = _plan(requests, all_lines, digests, sent_as, matches, limits, codec)
            spec = {"prompt": prompt, "betas": betas, "columns": [name_to_json(c) for c in requests.columns]}
            _persist_new(store, job_name, df, plan, endpoint, digest, spec, previous)
    del all_lines
    job = Job(job_name, store=store, endpoint=endpoint, retry=retry)
    job.send_unsent(plan.send_lines if fresh else None, fingerprint=digest)
    if fresh and plan.n_linked:
        job.refresh()  # answers the store already holds are copied now; others are waited for by wait()
    return job


def _choose(store: Store, name: str | None, digest: str, new: bool) -> tuple[str, bool, str | None]:
    """The job this submit is: its name, whether it is (re)planned now, and the earlier revision it replaces.

    * The same requests under the same name (or under no name): the job that has them, as it is (a
      re-run cell), unless nothing was ever created for it.
    * A name whose job has other requests: its next revision; the earlier one moves aside, and the
      ledger links every request it carries.
    * A name given that is not taken: a new job of that name, whatever other job has the same requests.
    """
    if name is None:
        existing = None if new else store.find_fingerprint(digest)
        if existing is None:
            return _new_name(store, digest), True, None
        return existing, _never_sent(store, existing), None
    if not store.exists(name):
        return name, True, None
    same = store.read_manifest(name).get("fingerprint") == digest
    if same and not new:
        return name, _never_sent(store, name), None
    if _never_sent(store, name, refused_only=True):
        return name, True, None  # nothing exists remotely (refused, e.g. a typo'd parameter): replan it
    return name, True, store.revise(name)


@dataclass(frozen=True)
class _Plan:
    """What a new job persists: its rows' requests and how each is answered.

    ``lines`` are the request lines of the rows that carry a request (not answered through an identical
    row), in position order; ``shard_of`` their shard (sent, or linked to another job of the store);
    ``send_lines`` those of the sent shards, in shard order; ``via`` a linked row's position in its source.
    """

    requests: RequestSet
    lines: list[bytes]
    digests: list[bytes]
    sent_as: np.ndarray
    shard_of: np.ndarray
    via: np.ndarray
    shards: list[ShardRecord]
    send_lines: list[bytes]
    limits: ShardLimits
    n_linked: int


def _plan(requests: RequestSet, all_lines: list[bytes], digests: list[bytes], sent_as: np.ndarray,
          matches: Matches | None, limits: ShardLimits, codec: Codec) -> _Plan:
    own = np.flatnonzero(sent_as == np.arange(requests.n_sent))  # requests that carry their own answer
    linked = matches.found[own] if matches is not None else np.zeros(len(own), bool)
    send = own[~linked]
    send_lines = [all_lines[i] for i in send.tolist()]
    line_shards, shards = plan_shard_records(send_lines, limits, codec)
    shard_of = np.empty(len(own), np.int32)
    shard_of[~linked] = line_shards
    via = np.full(len(own), -1, np.int64)
    if matches is not None and linked.any():
        carried = own[linked]
        sources = list(dict.fromkeys(zip(matches.job[carried].tolist(), matches.uid[carried].tolist(), strict=True)))
        group = {source: len(shards) + k for k, source in enumerate(sources)}
        index = np.array([group[s] for s in zip(matches.job[carried], matches.uid[carried], strict=True)], np.int32)
        shard_of[linked] = index
        via[linked] = matches.position[carried]
        for (job, uid), k in group.items():
            shards.append(linked_shard(k, int((index == k).sum()), job, uid))
    return _Plan(requests, [all_lines[i] for i in own.tolist()], [digests[i] for i in own.tolist()], sent_as,
                 shard_of, via, shards, send_lines, limits, int(linked.sum()))


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


def _new_name(store: Store, fingerprint: str) -> str:
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
    previous: str | None,
) -> None:
    """Write requests.parquet and the manifest (shards ``planned`` or ``linked``) before anything is sent."""
    requests, limits = plan.requests, plan.limits
    own = plan.sent_as == np.arange(requests.n_sent)
    rows = requests.positions
    shard_of = np.full(requests.n_rows, SKIPPED, dtype=np.int32)
    shard_of[rows[own]] = plan.shard_of
    shard_of[rows[~own]] = REUSED
    same_as = np.full(requests.n_rows, -1, dtype=np.int64)
    same_as[rows] = rows[plan.sent_as]
    via = np.full(requests.n_rows, -1, dtype=np.int64)
    via[rows[own]] = plan.via
    digests: list[bytes | None] = [None] * requests.n_rows
    for pos, d in zip(rows.tolist(), (plan.digests[k] for k in np.cumsum(own) - 1), strict=True):
        digests[pos] = d  # a row answered through an identical one has that one's digest
    table = requests_table(df.index, requests, plan.lines, shard_of, same_as, input_hashes(df, requests.columns))
    table = table.append_column(DIGEST, pa.array(digests, pa.binary(16))).append_column(VIA, pa.array(via, pa.int64()))
    with store.lock(name):
        store.write_table(
            store.requests_path(name, 1),
            table,
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
                "n_reused": int((~own).sum()) + plan.n_linked,
                "n_linked": plan.n_linked,
                "uid": uuid.uuid4().hex,
                "revision": _revision(previous),
                "previous": previous,
                "request": request,
                "limits": {"max_requests": limits.max_requests, "max_bytes": limits.max_bytes},
                "attempts": [
                    {
                        "attempt": 1,
                        "created_at": now(),
                        "reason": "submit",
                        "n_requests": len(plan.lines),
                        "requests_file": store.requests_path(name, 1).name,
                        "shards": plan.shards,
                    }
                ],
            },
        )


def _revision(previous: str | None) -> int:
    return 1 if previous is None else int(previous.rsplit(REVISION_MARK, 1)[1]) + 1


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
