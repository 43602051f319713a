"""What a submit would send, worked out without sending or storing anything: shared by ``submit`` and
``estimate``, so that an estimate describes exactly the batches its submit creates.

:func:`prepare` builds the requests and their identities (the job fingerprint, each request's ledger
digest); :func:`plan_requests` decides, given the ledger's matches, which requests go out and in which
shards (a request identical to an earlier row's, or one the ledger already carries, goes out nowhere).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from batchframe.errors import InputError
from batchframe.jobs.ledger import Matches
from batchframe.jobs.links import linked_shard
from batchframe.jobs.states import ShardRecord, new_shard
from batchframe.jobs.store import Store, check_index_storable, validate_name
from batchframe.providers import Endpoint, open_endpoint, provider_class
from batchframe.providers.base import Codec
from batchframe.requests.build import RequestSet, build_requests
from batchframe.requests.fingerprint import fingerprint, request_digests
from batchframe.requests.keys import digest_keys, first_by_key
from batchframe.requests.shards import ShardLimits, plan_shards
from batchframe.results.merge import input_hashes
from batchframe.results.typed import typed_columns


@dataclass(frozen=True)
class Built:
    """Requests built from a frame, with what the job store keeps of the frame: its row labels and, when the
    frame is not at hand (built elsewhere), each row's input hash (:func:`batchframe.results.merge.input_hashes`).
    """

    requests: RequestSet
    index: pd.Index
    hashes: np.ndarray | None = None


#: Builds the requests of a frame that is not a pandas frame in this process (built elsewhere, then handed
#: here whole): called with :func:`build_requests`' keyword arguments, as ``prepare`` gives them.
Builder = Callable[..., Built]


@dataclass
class Prepared:
    """A frame's requests and who would answer them; nothing sent, nothing stored.

    ``answerer`` names the remote side and how it is asked (betas); ``digest`` is the job fingerprint and
    ``digests`` each request's ledger digest; ``sent_as[i]`` is the request that answers request ``i``.
    """

    endpoint: Endpoint
    codec: Codec
    limits: ShardLimits
    requests: RequestSet
    store: Store
    betas: list[str]
    answerer: str
    sent_as: np.ndarray
    all_lines: list[bytes]
    digest: str
    digests: list[bytes]
    prompt: str
    built: Built
    frame: pd.DataFrame | None = None

    @property
    def index(self) -> pd.Index:
        """The labels of the frame's rows, in position order."""
        return self.built.index

    def input_hashes(self) -> np.ndarray:
        """Each row's input hash: from the build, else hashed from the frame now (only a stored job needs it)."""
        if self.built.hashes is not None:
            return self.built.hashes
        assert self.frame is not None, "a Builder without a frame returns the hashes"
        return input_hashes(self.frame, self.requests.columns)


def prepare(
    df: pd.DataFrame | None,
    *,
    prompt: str,
    model: str,
    max_tokens: int | str,
    name: str | None = None,
    provider: str | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    max_batch_requests: int | None = None,
    max_batch_bytes: int | None = None,
    max_in_flight: int | None = None,
    store: str | Store | None = None,
    provider_options: dict[str, Any] | None = None,
    betas: Sequence[str] = (),
    dedupe: bool = True,
    cache: str | None = None,
    build: Builder | None = None,
    **params: Any,
) -> Prepared:
    """Build and identify the requests of ``df`` as ``submit`` would (see its parameters).

    ``build`` builds them instead, where ``df`` is not a pandas frame of this process (``df`` is then None).

    Examples
    --------
    >>> p = prepare(df, prompt="q", model="claude-haiku-4-5", max_tokens=8, provider="local")  # doctest: +SKIP
    >>> p.requests.n_sent  # doctest: +SKIP
    40
    """
    ctx = context(model=model, provider=provider, api_key=api_key, base_url=base_url,
                  max_batch_requests=max_batch_requests, max_batch_bytes=max_batch_bytes,
                  max_in_flight=max_in_flight, store=store, provider_options=provider_options)
    built = (build or _in_process(df))(prompt=prompt, model=model, max_tokens=max_tokens, cache=cache,
                                       schema_via=ctx.schema_via, **params)
    requests = built.requests
    check_built(requests)
    if requests.n_sent == 0:
        raise InputError(f"no row to send: all {requests.n_rows} prompts are empty (NaN, None or blank)")
    check_index_storable(built.index)
    if name is not None:
        validate_name(name)
    betas = check_betas(betas)
    answerer = answerer_of(ctx.endpoint, betas)
    all_lines = ctx.codec.encode_lines(requests.custom_ids, requests.params)
    # Over every row's line, as before dedupe existed: re-running a cell written then finds its job. Hashed on
    # a thread of its own (sha256 of large chunks releases the GIL) while the request digests are computed.
    with ThreadPoolExecutor(1, thread_name_prefix="batchframe-fingerprint") as pool:
        job_digest = pool.submit(fingerprint, answerer + ("" if dedupe else "|dedupe=False"), all_lines)
        digests = request_digests(answerer, requests.params)
        # Identical params have identical digests (one answerer): dedupe on the 16 bytes, not the bodies.
        sent_as = first_by_key(digest_keys(digests)) if dedupe else np.arange(requests.n_sent)
        digest = job_digest.result()
    return Prepared(ctx.endpoint, ctx.codec, ctx.limits, requests, ctx.store, betas, answerer, sent_as, all_lines,
                    digest, digests, prompt, built, df)


@dataclass(frozen=True)
class Context:
    """Who answers a submit and under which limits, before any request is built: the endpoint, its codec,
    the shard limits, how a schema is asked for (``schema_via``) and the job store."""

    endpoint: Endpoint
    codec: Codec
    limits: ShardLimits
    schema_via: str
    store: Store


def context(*, model: Any, provider: str | None = None, api_key: str | None = None, base_url: str | None = None,
            max_batch_requests: int | None = None, max_batch_bytes: int | None = None,
            max_in_flight: int | None = None, store: str | Store | None = None,
            provider_options: dict[str, Any] | None = None) -> Context:
    """The :class:`Context` of a submit (no network: the endpoint is only resolved).

    Examples
    --------
    >>> context(model="claude-haiku-4-5", provider="local").limits.max_requests  # doctest: +SKIP
    100000
    """
    endpoint = open_endpoint(provider, api_key=api_key, base_url=base_url, **(provider_options or {}))
    cls = provider_class(endpoint.provider)
    limits = _limits(endpoint, max_batch_requests, max_batch_bytes, max_in_flight)
    via = cls.structured_via(model) if isinstance(model, str) else "output_config"
    return Context(endpoint, cls.codec, limits, via, store if isinstance(store, Store) else Store(store))


def answerer_of(endpoint: Endpoint, betas: list[str]) -> str:
    """Who answers, and how: the endpoint's identity and the betas (part of every fingerprint and digest)."""
    return endpoint.identity + (f"|betas={','.join(betas)}" if betas else "")


def check_built(requests: RequestSet) -> None:
    """What must hold of built requests before anything is sent: a schema's typed columns are derivable."""
    if requests.structured is not None:
        typed_columns(requests.structured.schema)


def _in_process(df: pd.DataFrame | None) -> Builder:
    if df is None:
        raise InputError("no frame given: pass a DataFrame")

    def build(**kwargs: Any) -> Built:
        return Built(build_requests(df, **kwargs), df.index)

    return build


@dataclass(frozen=True)
class Plan:
    """What a new job persists: its rows' requests and how each is answered.

    ``lines`` are the request lines of the rows that carry a request (not answered through an identical
    row), in position order; ``shard_of`` their shard (sent, or linked to another job of the store);
    ``send`` the indices (into ``requests.params``) of the requests sent, in shard order, and
    ``send_lines`` their lines; ``via`` a linked row's position in its source.
    """

    requests: RequestSet
    lines: list[bytes]
    digests: list[bytes]
    sent_as: np.ndarray
    shard_of: np.ndarray
    via: np.ndarray
    shards: list[ShardRecord]
    send: np.ndarray
    send_lines: list[bytes]
    limits: ShardLimits
    n_linked: int

    @property
    def n_sent_shards(self) -> int:
        """Shards that send requests (the others are linked to jobs of the store)."""
        return sum(1 for s in self.shards if "linked" not in s)


def plan_requests(p: Prepared, matches: Matches | None, *, prime: bool = False) -> Plan:
    """Shards for the requests of ``p`` that go out: not answered through an identical row, not carried by
    the ledger (``matches``). With ``prime``, the first request goes alone in shard 0 (see
    :mod:`batchframe.jobs.waves`).

    Examples
    --------
    >>> plan_requests(prepare(df, ...), None).n_sent_shards  # doctest: +SKIP
    1
    """
    requests, all_lines = p.requests, p.all_lines
    own = np.flatnonzero(p.sent_as == np.arange(requests.n_sent))  # requests that carry their own answer
    linked = matches.found[own] if matches is not None else np.zeros(len(own), bool)
    send = own[~linked]
    every = len(own) == len(all_lines)  # nothing answered through an identical row: no copy of the lists
    lines = all_lines if every else [all_lines[i] for i in own.tolist()]
    send_lines = lines if len(send) == len(lines) else [all_lines[i] for i in send.tolist()]
    sizes = np.fromiter(map(len, send_lines), dtype=np.int64, count=len(send_lines))
    shard_of, via, shards = shard_plan(sizes, own, linked, matches, p.limits, p.codec, prime=prime)
    digests = p.digests if every else [p.digests[i] for i in own.tolist()]
    return Plan(requests, lines, digests, p.sent_as, shard_of, via, shards, send, send_lines, p.limits,
                int(linked.sum()))


def shard_plan(sizes: np.ndarray, own: np.ndarray, linked: np.ndarray, matches: Matches | None, limits: ShardLimits,
               codec: Codec, *, prime: bool = False) -> tuple[np.ndarray, np.ndarray, list[ShardRecord]]:
    """The shards of the requests ``own`` (indices of the requests that carry their own answer): those not
    ``linked`` are cut by the line ``sizes`` (in order) under ``limits``; the linked ones are grouped by the
    job that carries them. Returns each own request's shard, its position in its source job (-1: sent here)
    and the shard records.

    Examples
    --------
    >>> from batchframe.providers.anthropic import codec
    >>> shard_of, via, shards = shard_plan(np.array([10, 10, 10]), np.arange(3), np.zeros(3, bool), None,
    ...                                    ShardLimits(max_requests=2), codec)
    >>> shard_of.tolist(), via.tolist(), [s["n_requests"] for s in shards]
    ([0, 0, 1], [-1, -1, -1], [2, 1])
    """
    line_shards, shards = _shard_records(sizes, limits, codec, prime=prime)
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
    return shard_of, via, shards


def _shard_records(sizes: np.ndarray, limits: ShardLimits, codec: Codec, *,
                   prime: bool) -> tuple[np.ndarray, list[ShardRecord]]:
    if not prime or len(sizes) < 2:
        return _records(sizes, limits, codec)
    # The priming request alone first: its batch writes the cache that the others then read.
    rest_of, rest = _records(sizes[1:], limits, codec)
    for record in rest:
        record["index"] += 1
    first = new_shard(0, 1, codec.body_size(sizes[:1]))
    return np.concatenate([[0], rest_of + 1]).astype(np.int32), [first, *rest]


def _records(sizes: np.ndarray, limits: ShardLimits, codec: Codec) -> tuple[np.ndarray, list[ShardRecord]]:
    """As :func:`batchframe.jobs.manifest.plan_shard_records`, from the lines' sizes (not the lines)."""
    ranges = plan_shards(sizes, limits, envelope=codec.ENVELOPE_BYTES)
    shard_of = np.repeat(np.arange(len(ranges), dtype=np.int32), [stop - start for start, stop in ranges])
    records = [new_shard(i, stop - start, codec.body_size(sizes[start:stop])) for i, (start, stop) in enumerate(ranges)]
    return shard_of, records


def check_betas(betas: Sequence[str]) -> list[str]:
    if isinstance(betas, str) or not all(isinstance(b, str) and b and "," not in b for b in betas):
        raise InputError(f"betas must be a list of beta names, e.g. ['structured-outputs-2025-11-13'], got {betas!r}")
    return list(betas)


def _limits(endpoint: Endpoint, max_requests: int | None, max_bytes: int | None,
            max_in_flight: int | None) -> ShardLimits:
    own = provider_class(endpoint.provider).limits()
    if max_in_flight is not None:
        if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int | np.integer) or max_in_flight < 1:
            raise InputError(f"max_in_flight must be a whole number >= 1, got {max_in_flight!r}")
        # A shard bigger than what may be queued at once could never go: shards are cut to fit.
        max_requests = min(max_requests or own.max_requests, int(max_in_flight))
    wanted = ShardLimits(max_requests=max_requests or own.max_requests, max_bytes=max_bytes or own.max_bytes)
    return wanted.within(own)
