"""``df.batch.submit``: build, fingerprint, persist, then send shard by shard.

Idempotency: the fingerprint (provider identity + every request body) is stored in the manifest. A
submit whose fingerprint is already in the store returns that job and sends only the shards it never
managed to send (none, normally), so a re-run cell never pays twice. ``new=True`` asks for a new job.

With ``budget_usd`` the worst case is estimated (:mod:`batchframe.jobs.estimate`) and checked before
anything is stored or created; ``budget_usd``, ``max_in_flight`` and ``prime_cache`` are recorded as the
job's ``waves`` and the shards go as :mod:`batchframe.jobs.waves` lets them.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from batchframe.errors import BudgetError, InputError, PromptCacheWarning
from batchframe.jobs.bodies import FRAMES_KEY, LINES_KEY, SIZE, START, drop_other_lines, layout, lines_path, write_lines
from batchframe.jobs.estimate import Estimate, price_plan
from batchframe.jobs.job import Job
from batchframe.jobs.labels import index_names, labels_table, name_to_json
from batchframe.jobs.ledger import DIGEST, lookup
from batchframe.jobs.links import VIA
from batchframe.jobs.manifest import iter_shards, now
from batchframe.jobs.migrations import FORMAT
from batchframe.jobs.plan import Builder, Plan, Prepared, plan_requests, prepare
from batchframe.jobs.states import SENDABLE, ShardRecord, ShardState, refused_outright, state_of
from batchframe.jobs.store import REVISION_MARK, Store
from batchframe.providers import Endpoint, provider_class
from batchframe.providers.base import BYTES_PER_TOKEN
from batchframe.providers.http import RetryPolicy
from batchframe.requests.build import RequestSet, build_requests, preview
from batchframe.results.schema import INPUT_HASH, REUSED, SAME_AS, SKIPPED


def submit(
    df: pd.DataFrame | None,
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
    budget_usd: float | None = None,
    max_in_flight: int | None = None,
    cache: str | None = None,
    prime_cache: bool = False,
    schema: Any = None,
    build: Builder | None = None,
    **params: Any,
) -> Job:
    """Send every row of ``df`` as Message Batches requests and return the :class:`Job`.

    Parameters
    ----------
    df : DataFrame or None
        None only with ``build``.
    prompt, model, max_tokens, **params
        See :func:`batchframe.requests.build.build_requests` (templates, per-row columns, documents, images).
    name : str, optional
        Job name (a folder of the job store); generated when omitted.
    provider : {"anthropic", "local", "openai"}, optional
        Default ``$BATCHFRAME_PROVIDER`` or ``"anthropic"`` (which needs ``ANTHROPIC_API_KEY``).
    api_key, base_url : str, optional
        Override the provider's key and host variables (``ANTHROPIC_API_KEY`` / ``ANTHROPIC_BASE_URL``,
        ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL``). The key is never stored, and goes only to the environment's
        host or a ``base_url`` passed explicitly; plain ``http://`` only to loopback.
    new : bool
        Pay again on purpose: nothing is taken from the store's ledger. Without it, the same cell run again
        returns its job; an edited frame under the same name becomes the name's next revision; and any
        request the ledger already carries (under any name, frame or revision) is not sent again.
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
    budget_usd : float, optional
        A cap on the job's cost. The worst case is estimated first (:func:`batchframe.estimate`); over the
        cap, :class:`batchframe.errors.BudgetError` is raised and nothing is created. Shards then go in
        waves: the next only while the spent cost plus the worst case of those in flight stays within it.
    max_in_flight : int, optional
        Most requests queued at the provider at once: shards are cut to fit, and later ones wait for
        earlier ones to end (sent by ``wait()`` and by each ``refresh()``).
    cache : {"auto"}, optional
        Put a prompt-cache breakpoint (1 hour) at the end of the prefix every row shares (tools, system,
        the template's fixed leading text); warns when it is shorter than the model caches.
    prime_cache : bool
        Send one request alone first, and the rest once it has ended, so that they read the cache it wrote.
    schema : Pydantic model class or JSON-schema dict, optional
        The shape of every answer: its fields become typed result columns (``<prefix><field>``, nested objects
        as ``<field>.<sub>``) with ``parse_status`` / ``parse_error`` / ``json`` (see
        :mod:`batchframe.results.typed`). Sent as structured outputs (``output_config.format``; OpenAI:
        ``response_format``, strict), or as a forced tool to a model without them; the manifest's
        ``request.structured`` says which. A forced tool (``tool_choice={"type": "tool", ...}``) gives typed
        columns from its ``input_schema`` without ``schema=``.
    build : callable, optional
        Builds the requests where the frame is (``df`` is then None); see :data:`batchframe.jobs.plan.Builder`.
        (The Dask accessor does not use it: its driver plans from staged digests, :mod:`batchframe.dask.submit`.)

    Examples
    --------
    >>> job = df.batch.submit(prompt="Summarize: {text}", model="claude-haiku-4-5", max_tokens=200,
    ...                       provider="local", budget_usd=1.0)  # doctest: +SKIP
    >>> job.wait()  # doctest: +SKIP
    >>> class Review(pydantic.BaseModel):  # doctest: +SKIP
    ...     sentiment: Literal["positive", "negative", "mixed"]
    ...     stars: int
    >>> job = df.batch.submit(prompt="Rate: {review}", model="claude-haiku-4-5", max_tokens=64,
    ...                       schema=Review, provider="local")  # doctest: +SKIP
    >>> job.wait()  # doctest: +SKIP
    >>> df.batch.merge(job)[["llm_sentiment", "llm_stars", "llm_parse_status"]]  # doctest: +SKIP
    """
    p = prepare(df, prompt=prompt, model=model, max_tokens=max_tokens, name=name, provider=provider,
                api_key=api_key, base_url=base_url, max_batch_requests=max_batch_requests,
                max_batch_bytes=max_batch_bytes, max_in_flight=max_in_flight, store=store,
                provider_options=provider_options, betas=betas, dedupe=dedupe, cache=cache,
                build=build, **({"schema": schema} if schema is not None else {}), **params)
    warn_short_prefix(p)
    waves = waves_record(budget_usd, max_in_flight, prime_cache)
    store, requests, digest = p.store, p.requests, p.digest
    with store.lock():
        job_name, fresh, previous = choose_job(store, name, digest, new)
        if fresh:  # a job no batch was ever created for is (re)planned with the limits given now
            use_ledger = dedupe and not new
            matches = lookup(store, p.answerer, p.digests, exclude=job_name) if use_ledger else None
            plan = plan_requests(p, matches, prime=prime_cache)
            if budget_usd is not None:  # counted and checked before anything is stored or created
                check_budget(price_plan(p, plan, prime=prime_cache, retry=retry), plan.shards, budget_usd)
            spec = request_record(prompt, p.betas, cache, requests)
            _persist_new(store, job_name, p, plan, p.endpoint, digest, spec, previous, waves)
    job = Job(job_name, store=store, endpoint=p.endpoint, retry=retry)
    job.send_unsent(plan.send_lines if fresh else None, fingerprint=digest)
    if fresh and plan.n_linked:
        job.refresh()  # answers the store already holds are copied now; others are waited for by wait()
    return job


def waves_record(budget_usd: float | None, max_in_flight: int | None, prime: bool) -> dict[str, Any] | None:
    if budget_usd is not None and (isinstance(budget_usd, bool) or not isinstance(budget_usd, int | float)
                                   or not budget_usd >= 0):
        raise InputError(f"budget_usd must be a number of US dollars >= 0, got {budget_usd!r}")
    if budget_usd is None and max_in_flight is None and not prime:
        return None
    return {"budget_usd": None if budget_usd is None else float(budget_usd), "max_in_flight": max_in_flight,
            "prime": bool(prime)}


def check_budget(est: Estimate, shards: list[ShardRecord], cap: float) -> None:
    """Refuse a job whose worst case is over the cap; else write each sent shard's worst case on its record
    (``shards``: the plan's, sent ones first)."""
    if est.worst_case_usd is None:
        raise BudgetError(
            f"budget_usd={cap:g} cannot be enforced: no price is known for model {est.model!r} on provider "
            f"{est.provider!r}; nothing was created. Name a model of the price table, or leave budget_usd out.",
            worst_case_usd=float("nan"), cap_usd=cap)
    if est.worst_case_usd > cap:
        raise BudgetError(
            f"the worst case of this job is ${est.worst_case_usd:,.4f} ({est.n_requests:,} requests, "
            f"{est.input_tokens:,} input tokens, up to {est.max_output_tokens:,} output tokens; expected "
            f"${est.expected_usd or 0:,.4f}), over budget_usd=${cap:,.4f}; nothing was created. Send fewer "
            "rows, lower max_tokens, or raise budget_usd (df.batch.estimate(...) shows the figures by shard).",
            worst_case_usd=est.worst_case_usd, cap_usd=cap)
    for record, shard in zip(shards, est.shards, strict=False):
        record["worst_usd"] = shard.worst_case_usd  # type: ignore[typeddict-unknown-key]
        record["expected_usd"] = shard.expected_usd  # type: ignore[typeddict-unknown-key]


def request_record(prompt: str, betas: list[str], cache: str | None, requests: RequestSet) -> dict[str, Any]:
    """The manifest's ``request``: what the requests were built from (the columns merge re-hashes)."""
    return {"prompt": prompt, "betas": betas, "cache": cache, "columns": [name_to_json(c) for c in requests.columns],
            **({"structured": requests.structured.to_json()} if requests.structured else {}),
            **({"endpoint": requests.endpoint} if requests.endpoint != "messages" else {})}


def warn_short_prefix(p: Prepared) -> None:
    """Warn when ``cache="auto"`` found no shared prefix, or one shorter than the model caches (by the
    stated byte rule: counting it needs the network, and a warning should not)."""
    warn_short_prefix_of(p.requests, p.endpoint, stacklevel=4)


def warn_short_prefix_of(requests: RequestSet, endpoint: Endpoint, *, stacklevel: int = 3) -> None:
    """:func:`warn_short_prefix` for built ``requests`` (any RequestSet of the job's arguments)."""
    prefix = requests.cache
    if prefix is None:
        return
    if prefix.where is None:
        warnings.warn("cache='auto': the requests share no prefix (no common tools, system or leading template "
                      "text), so nothing is cached", PromptCacheWarning, stacklevel=stacklevel)
        return
    minimum = provider_class(endpoint.provider).min_cacheable_tokens(requests.model)
    approx = len(prefix.text.encode()) // BYTES_PER_TOKEN
    if minimum is not None and approx < minimum:
        warnings.warn(
            f"cache='auto': the shared prefix (up to the {prefix.where}) is about {approx:,} tokens, shorter than "
            f"the {minimum:,} tokens {requests.model} caches, so it will not be cached; lengthen the shared "
            "part (system, tools, leading text) or leave cache out", PromptCacheWarning, stacklevel=stacklevel)


def choose_job(store: Store, name: str | None, digest: str, new: bool) -> tuple[str, bool, str | None]:
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
    return not refused_only or all(refused_outright(s) for s in shards if state_of(s) is ShardState.FAILED)


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
        "dedupe",
        "budget_usd",
        "max_in_flight",
        "prime_cache",
    ):
        params.pop(key, None)
    requests = build_requests(df, prompt=prompt, model=model, max_tokens=max_tokens, **params)
    return preview(requests, df.index)


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
    p: Prepared,
    plan: Plan,
    endpoint: Endpoint,
    digest: str,
    request: dict[str, Any],
    previous: str | None,
    waves: dict[str, Any] | None = None,
) -> None:
    """Write the lines (``lines-<token>.bin``, :mod:`batchframe.jobs.bodies`), requests.parquet and the manifest
    (shards ``planned`` or ``linked``) before anything is sent.

    A job replanned with the same requests (nothing was ever created for it) keeps its uid: jobs of the store
    that linked to its rows find it again (the rows, by position, are the same).
    """
    requests, limits = plan.requests, plan.limits
    uid = kept_uid(store, name, digest, previous)
    own = plan.sent_as == np.arange(requests.n_sent)
    rows = requests.positions
    shard_of = np.full(requests.n_rows, SKIPPED, dtype=np.int32)
    shard_of[rows[own]] = plan.shard_of
    shard_of[rows[~own]] = REUSED
    same_as = np.full(requests.n_rows, -1, dtype=np.int64)
    same_as[rows] = rows[plan.sent_as]
    via = np.full(requests.n_rows, -1, dtype=np.int64)
    via[rows[own]] = plan.via
    # Each sent row its own digest (a row answered through an identical one has an equal digest); null: skipped.
    where = np.full(requests.n_rows, -1, dtype=np.int64)
    where[rows] = np.arange(requests.n_sent)
    joined = pa.py_buffer(b"".join(p.digests))
    digests = pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), len(p.digests), [None, joined])
    if requests.n_sent < requests.n_rows:
        digests = digests.take(pa.array(where, mask=where < 0))
    place = layout(requests.n_rows, rows[own], plan.lines)
    with store.lock(name), ThreadPoolExecutor(1, thread_name_prefix="batchframe-lines") as pool:
        # The lines (to a file of this plan's own: see jobs.bodies) and the requests file, which names that file
        # and says where each line is, are written at the same time; the manifest, after both.
        lines = lines_path(store, name)
        # The requests file is written under a name of its own, moved in place once the lines are. (A name no
        # file has yet: renamed over a file, even an empty one, ext4 writes its data out at once, and the
        # manifest's fsync then waits for tens of MB.)
        target = store.requests_path(name, 1)
        staged = target.with_name(f".{target.name}.{lines.stem}.tmp")
        placed = pool.submit(write_lines, lines, plan.lines, place)
        try:
            table = requests_table(p.index, requests, shard_of, same_as, p.input_hashes())
            table = table.append_column(DIGEST, digests).append_column(VIA, pa.array(via, pa.int64()))
            table = table.append_column(START, pa.array(place.start, pa.int64()))
            store.write_table(staged, table.append_column(SIZE, pa.array(place.size, pa.int32())),
                              metadata={"job": name, "provider": endpoint.provider, "model": requests.model,
                                        **index_names(p.index), LINES_KEY: lines.name, FRAMES_KEY: place.frames})
            placed.result()
            os.replace(staged, target)
        except BaseException:
            if not placed.cancel():  # never started, or wait for it to end before its file goes
                placed.exception()
            lines.unlink(missing_ok=True)
            staged.unlink(missing_ok=True)
            raise
        drop_other_lines(store, name, keep=lines.name)
        store.write_manifest(name, new_manifest(
            name, endpoint, requests.model, digest, request, plan.shards, limits, uid=uid, previous=previous,
            waves=waves, n_rows=requests.n_rows, n_skipped=int(requests.skipped.sum()),
            n_reused=int((~own).sum()) + plan.n_linked, n_linked=plan.n_linked, n_requests=len(plan.lines),
            requests_file=target.name))


def new_manifest(name: str, endpoint: Endpoint, model: str, digest: str, request: dict[str, Any],
                 shards: list[Any], limits: Any, *, uid: str | None, previous: str | None,
                 waves: dict[str, Any] | None, n_rows: int, n_skipped: int, n_reused: int, n_linked: int,
                 n_requests: int, requests_file: str) -> dict[str, Any]:
    """The manifest of a new job (its one attempt's shards ``planned`` or ``linked``), as persisted before
    anything is sent."""
    return {
        "format": FORMAT,
        "name": name,
        "provider": endpoint.provider,
        "identity": endpoint.identity,
        "base_url": endpoint.base_url,
        "data_dir": endpoint.data_dir,
        "service": endpoint.service,
        "model": model,
        "fingerprint": digest,
        "created_at": now(),
        "n_rows": n_rows,
        "n_skipped": n_skipped,
        "n_reused": n_reused,
        "n_linked": n_linked,
        "uid": uid or uuid.uuid4().hex,
        "revision": _revision(previous),
        "previous": previous,
        "request": request,
        "limits": {"max_requests": limits.max_requests, "max_bytes": limits.max_bytes},
        **({"waves": waves} if waves else {}),
        **_pricing(endpoint, model),
        "attempts": [
            {
                "attempt": 1,
                "created_at": now(),
                "reason": "submit",
                "n_requests": n_requests,
                "requests_file": requests_file,
                "shards": shards,
            }
        ],
    }


def kept_uid(store: Store, name: str, digest: str, previous: str | None) -> str | None:
    """The uid a replanned job keeps: the same requests (nothing was ever created for it) under its name
    keep it, so that jobs of the store that linked to its rows (by position, the same) find it again."""
    if previous is None and store.exists(name):
        before = store.read_manifest(name)
        return before.get("uid") if before.get("fingerprint") == digest else None
    return None


def _pricing(endpoint: Endpoint, model: str) -> dict[str, Any]:
    """The job's note when its costs are an estimate (a local job priced as the model it named)."""
    _, note = provider_class(endpoint.provider).pricer(model)
    return {"cost_basis": note} if note else {}


def _revision(previous: str | None) -> int:
    return 1 if previous is None else int(previous.rsplit(REVISION_MARK, 1)[1]) + 1


def requests_table(index: pd.Index, requests: RequestSet, shard_of: np.ndarray, same_as: np.ndarray,
                   hashes: np.ndarray) -> pa.Table:
    """One row per source row: index labels, position, custom_id, shard (``SKIPPED``, ``REUSED`` or the
    shard that sends it), same_as (the row whose request answers it) and the hash of the row's inputs (what
    merge checks). Where each row's line is stored is added by the caller (:mod:`batchframe.jobs.bodies`)."""
    n = requests.n_rows
    own = np.flatnonzero(same_as[requests.positions] == requests.positions)  # indices of the sent requests
    ids = pa.array(requests.custom_ids, pa.string())
    if len(own) < n:  # some rows send nothing of their own: place each custom_id on its row (null elsewhere)
        which = np.full(n, -1, dtype=np.int64)
        which[requests.positions[own]] = np.arange(len(own))
        ids = ids.take(pa.array(own)).take(pa.array(which, mask=which < 0))
    table, _ = labels_table(index, {"position": np.arange(n, dtype=np.int64)})
    table = table.append_column("custom_id", ids)
    table = table.append_column("shard", pa.array(shard_of, pa.int32()))
    table = table.append_column(SAME_AS, pa.array(same_as, pa.int64()))
    return table.append_column(INPUT_HASH, pa.array(hashes, pa.uint64()))
