"""``df.batch.estimate``: what a submit would cost, before paying; nothing billable is sent.

The estimate plans exactly what the submit would (:mod:`batchframe.jobs.plan`: the same shards, the same
requests left out because an identical row or the store's ledger answers them), counts input tokens with
the provider (:mod:`batchframe.jobs.tokens`: every request, or a stratified sample with a stated bound) and
prices them with the provider's table at batch rates. Three promises:

* the **worst case** is an upper bound: input tokens at the top of the error bound, every shared prefix
  written to the cache by every request (the dearest input rate), every answer ``max_tokens`` long;
* the **expected** cost says its basis: output tokens from finished jobs of the store with the same model
  and prompt, else :data:`DEFAULT_OUTPUT_RATIO` of ``max_tokens``; with ``cache="auto"``, one cache write
  per shard (or one in all with ``prime_cache``) and reads for the rest, once the prefix is long enough;
* cache writes and reads are priced apart from plain input.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd

from batchframe.jobs.ledger import lookup
from batchframe.jobs.plan import Plan, Prepared, plan_requests, prepare
from batchframe.jobs.states import ShardState, state_of
from batchframe.jobs.store import Store
from batchframe.jobs.tokens import SAMPLE_SIZE, TokenCount, count_requests_of
from batchframe.providers import Endpoint, provider_class
from batchframe.providers.http import RetryPolicy
from batchframe.results.cost import Price

#: Expected answer length when the store has no finished job to learn from: this share of ``max_tokens``.
DEFAULT_OUTPUT_RATIO = 0.5
#: Options of ``submit`` that change nothing an estimate looks at.
_SUBMIT_ONLY = ("budget_usd", "retry")


@dataclass(frozen=True)
class ShardEstimate:
    """One shard (remote batch) of an estimate."""

    index: int
    n_requests: int
    input_tokens: int
    max_output_tokens: int
    expected_output_tokens: int
    worst_case_usd: float | None
    expected_usd: float | None


@dataclass(frozen=True)
class Estimate:
    """What a submit with the same arguments would send and cost (USD at batch prices).

    Examples
    --------
    >>> est = df.batch.estimate(prompt="q", model="claude-haiku-4-5", max_tokens=64,
    ...                         provider="local")  # doctest: +SKIP
    >>> est.worst_case_usd >= est.expected_usd  # doctest: +SKIP
    True
    """

    provider: str
    model: str
    n_rows: int
    n_requests: int  # requests that would be sent
    n_skipped: int  # rows with an empty prompt
    n_reused: int  # rows answered through an identical row of the frame
    n_in_ledger: int  # requests the store's ledger carries: not sent again
    input_tokens: int
    input_exact: bool
    input_error_bound: int  # on input_tokens (0 when exact)
    n_counted: int  # requests whose tokens were counted
    token_count: str  # how the provider counts: "exact" or "approximate"
    max_output_tokens: int
    expected_output_tokens: int
    output_basis: str
    cache_prefix_tokens: int  # tokens of the shared prefix cache="auto" marks (0 without)
    worst_case_usd: float | None
    expected_usd: float | None
    price_basis: str
    shards: tuple[ShardEstimate, ...] = field(repr=False)

    @property
    def n_shards(self) -> int:
        """Remote batches the submit would create."""
        return len(self.shards)

    @property
    def input_basis(self) -> str:
        """How ``input_tokens`` was obtained, in words."""
        if self.input_exact:
            return f"counted every request ({self.token_count} counts)"
        return (f"a stratified sample of {self.n_counted} of {self.n_requests} requests, extrapolated; "
                f"±{self.input_error_bound:,} tokens (3 standard errors)")

    def to_frame(self) -> pd.DataFrame:
        """One row per shard, and a total row.

        Examples
        --------
        >>> est.to_frame().loc["total", "worst_case_usd"]  # doctest: +SKIP
        0.0123
        """
        rows = {f"shard {s.index}": _row(s) for s in self.shards}
        rows["total"] = {"requests": self.n_requests, "input_tokens": self.input_tokens,
                         "max_output_tokens": self.max_output_tokens,
                         "expected_output_tokens": self.expected_output_tokens,
                         "worst_case_usd": self.worst_case_usd, "expected_usd": self.expected_usd}
        return pd.DataFrame.from_dict(rows, orient="index")

    def _notes(self) -> list[str]:
        notes = [f"estimate for {self.model} on {self.provider}: {self.n_requests:,} requests of {self.n_rows:,} rows "
                 f"in {self.n_shards} shard(s); {self.n_skipped:,} skipped, {self.n_reused:,} reused, "
                 f"{self.n_in_ledger:,} already answered in the store (not sent again)",
                 f"input tokens: {self.input_basis}",
                 f"expected output: {self.output_basis}",
                 f"prices: {self.price_basis}"]
        if self.cache_prefix_tokens:
            notes.append(f"cache: a shared prefix of {self.cache_prefix_tokens:,} tokens")
        return notes

    def __repr__(self) -> str:
        table = self.to_frame().to_string(float_format=lambda v: f"{v:,.4f}")
        return "\n".join([*self._notes(), table])

    def _repr_html_(self) -> str:
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self._notes())
        table = self.to_frame().to_html(float_format=lambda v: f"{v:,.4f}", na_rep="—")
        return f'<div class="bf-estimate"><ul>{notes}</ul>{table}</div>'


def estimate(
    df: pd.DataFrame | None,
    *,
    exact: bool = False,
    sample_size: int = SAMPLE_SIZE,
    prime_cache: bool = False,
    new: bool = False,
    dedupe: bool = True,
    retry: RetryPolicy | None = None,
    **kwargs: Any,
) -> Estimate:
    """What ``submit`` with the same arguments would send and cost; nothing billable is sent.

    Parameters
    ----------
    df : DataFrame or None
        None only with ``build=`` (see :func:`batchframe.jobs.plan.prepare`).
    exact : bool
        Count the tokens of every request (one ``count_tokens`` call each, a few at a time, with a progress
        bar). Default: every request up to ``sample_size``, beyond that a stratified sample by request
        size, extrapolated with a stated error bound.
    sample_size : int
        Requests counted when the count is sampled.
    prime_cache, new, dedupe, retry, **kwargs
        As for :func:`batchframe.submit` (``budget_usd`` is accepted and ignored).

    Examples
    --------
    >>> est = df.batch.estimate(prompt="Sentiment of: {review}", model="claude-haiku-4-5",
    ...                         max_tokens=16, provider="local")  # doctest: +SKIP
    >>> est.n_shards, est.input_exact  # doctest: +SKIP
    (1, True)
    """
    for key in _SUBMIT_ONLY:
        kwargs.pop(key, None)
    prepared = prepare(df, dedupe=dedupe, **kwargs)
    matches = lookup(prepared.store, prepared.answerer, prepared.digests) if dedupe and not new else None
    plan = plan_requests(prepared, matches, prime=prime_cache)
    return price_plan(prepared, plan, exact=exact, sample_size=sample_size, prime=prime_cache, retry=retry)


def price_plan(p: Prepared, plan: Plan, *, exact: bool = False, sample_size: int = SAMPLE_SIZE,
               prime: bool = False, retry: RetryPolicy | None = None) -> Estimate:
    """The :class:`Estimate` of a plan: count its requests' tokens with the provider, then price them.

    Examples
    --------
    >>> price_plan(prepared, plan_requests(prepared, None)).n_shards  # doctest: +SKIP
    1
    """
    params = [p.requests.params[i] for i in plan.send.tolist()]
    sizes = np.fromiter((len(b) for b in params), np.int64, count=len(params))
    counted, prefix = count_plan(p.endpoint, sizes, lambda chosen: [params[i] for i in chosen.tolist()],
                                 p.requests.cache, params[0] if params else None, exact=exact,
                                 sample_size=sample_size, retry=retry)
    requests = p.requests
    basis = Basis(p.endpoint.provider, requests.model, p.prompt, p.store, n_rows=requests.n_rows,
                  n_skipped=int(requests.skipped.sum()),
                  n_reused=int((p.sent_as != np.arange(requests.n_sent)).sum()), n_in_ledger=plan.n_linked)
    max_out = np.array([orjson.loads(b).get("max_tokens", 0) for b in params], float)
    return price(basis, counted, max_out, prefix, shard_bounds(plan.shards), prime=prime)


@dataclass(frozen=True)
class Basis:
    """What an estimate is of, besides its tokens: who answers, the prompt and store (for the output history),
    and the frame's rows by fate."""

    provider: str
    model: str
    prompt: str | None
    store: Store
    n_rows: int
    n_skipped: int
    n_reused: int
    n_in_ledger: int


def count_plan(endpoint: Endpoint, sizes: np.ndarray, fetch: Callable[[np.ndarray], Sequence[bytes]], cache: Any,
               first: bytes | None, *, exact: bool, sample_size: int,
               retry: RetryPolicy | None) -> tuple[TokenCount, int]:
    """The input tokens of the requests sent (``sizes``: their parameters' bytes, ``fetch``: see
    :func:`batchframe.jobs.tokens.count_requests_of`) and of the shared prefix ``cache`` marks (counted from
    ``first``, any request's parameters), counted with the provider of ``endpoint``."""
    cls = provider_class(endpoint.provider)
    with httpx.Client(timeout=httpx.Timeout(60.0, connect=5.0)) as client:
        provider = cls(endpoint, client=client, retry=retry)
        counted = count_requests_of(sizes, fetch, provider.count_tokens, exact=exact, sample_size=sample_size)
        prefix = _prefix_tokens(provider.count_tokens, cache, first) if cache and first is not None else 0
    return counted, prefix


def shard_bounds(shards: Sequence[Any]) -> np.ndarray:
    """Where each sent shard's requests start and end in the requests sent (the linked shards send none).

    Examples
    --------
    >>> shard_bounds([{"n_requests": 3}, {"n_requests": 2}, {"n_requests": 4, "linked": {}}]).tolist()
    [0, 3, 5]
    """
    return np.cumsum([0] + [s["n_requests"] for s in shards if "linked" not in s])


def price(basis: Basis, counted: TokenCount, max_out: np.ndarray, prefix: int, bounds: np.ndarray, *,
          prime: bool = False) -> Estimate:
    """The :class:`Estimate` from the requests' token counts (``counted``), their ``max_tokens``
    (``max_out``), the shared prefix's tokens and the shards' ``bounds`` (:func:`shard_bounds`).

    Examples
    --------
    >>> import tempfile
    >>> from batchframe.jobs.tokens import TokenCount
    >>> basis = Basis("anthropic", "claude-haiku-4-5", "q", Store(tempfile.mkdtemp()), n_rows=3, n_skipped=1,
    ...               n_reused=0, n_in_ledger=0)
    >>> est = price(basis, TokenCount(np.array([1e6, 1e6]), 0.0, True, 2), np.array([8.0, 8.0]), 0,
    ...             np.array([0, 1, 2]))
    >>> est.input_tokens, est.n_shards, est.worst_case_usd == 2 * 0.5 + 16 * 2.5 / 1e6
    (2000000, 2, True)
    """
    cls = provider_class(basis.provider)
    lookup_price, note = cls.pricer(basis.model)
    model_price = lookup_price(basis.model)
    per_answer, output_basis = output_history(basis.store, basis.model, basis.prompt)
    expected_out = np.minimum(max_out, per_answer) if per_answer is not None else max_out * DEFAULT_OUTPUT_RATIO
    minimum = cls.min_cacheable_tokens(basis.model)
    caches = bool(prefix) and (minimum is None or prefix >= minimum)
    upper = counted.per_request * (1 + counted.relative_bound)
    worst = _worst(model_price, upper, prefix, max_out)
    expected = _expected(model_price, counted.per_request, prefix if caches else 0, expected_out, bounds, prime)
    shards = tuple(
        ShardEstimate(k, int(b - a), int(round(counted.per_request[a:b].sum())), int(max_out[a:b].sum()),
                      int(round(expected_out[a:b].sum())), _sum(worst, a, b), _sum(expected, a, b))
        for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True))
    )
    n = len(max_out)
    return Estimate(
        provider=basis.provider, model=basis.model, n_rows=basis.n_rows, n_requests=n, n_skipped=basis.n_skipped,
        n_reused=basis.n_reused, n_in_ledger=basis.n_in_ledger, input_tokens=int(round(counted.total)),
        input_exact=counted.exact, input_error_bound=int(np.ceil(counted.bound)), n_counted=counted.n_counted,
        token_count=cls.token_count, max_output_tokens=int(max_out.sum()),
        expected_output_tokens=int(round(expected_out.sum())), output_basis=output_basis,
        cache_prefix_tokens=int(prefix), worst_case_usd=_sum(worst, 0, n), expected_usd=_sum(expected, 0, n),
        price_basis=_price_basis(basis.model, model_price, note), shards=shards,
    )


def _worst(price: Price | None, tokens: np.ndarray, prefix: int, max_out: np.ndarray) -> np.ndarray | None:
    if price is None:
        return None
    # Every request may write the prefix (no hit at all): the dearest way to pay for it.
    write = prefix * max(price.cache_write_1h, price.input)
    return (write + np.maximum(tokens - prefix, 0) * price.input + max_out * price.output) / 1e6


def _expected(price: Price | None, tokens: np.ndarray, prefix: int, out: np.ndarray, bounds: np.ndarray,
              prime: bool) -> np.ndarray | None:
    if price is None:
        return None
    cached = np.full(len(tokens), prefix * price.cache_read)
    writers = bounds[:1] if prime else bounds[:-1]  # the first request of each shard (or of the job) writes
    cached[writers[writers < len(tokens)]] = prefix * price.cache_write_1h
    return (cached + np.maximum(tokens - prefix, 0) * price.input + out * price.output) / 1e6


def _sum(values: np.ndarray | None, start: int, stop: int) -> float | None:
    return None if values is None else float(values[start:stop].sum())


def _row(s: ShardEstimate) -> dict[str, Any]:
    return {"requests": s.n_requests, "input_tokens": s.input_tokens, "max_output_tokens": s.max_output_tokens,
            "expected_output_tokens": s.expected_output_tokens, "worst_case_usd": s.worst_case_usd,
            "expected_usd": s.expected_usd}


def _price_basis(model: str, price: Price | None, note: str | None) -> str:
    if price is None:
        return f"no price known for {model!r}: costs are unknown"
    rates = (f"input ${price.input:g}, output ${price.output:g}, cache write (1 h) ${price.cache_write_1h:g}, "
             f"cache read ${price.cache_read:g} per million tokens")
    return f"{model} at batch rates ({rates})" + (f"; {note}" if note else "")


def _prefix_tokens(count: Any, cache: Any, first: bytes) -> int:
    """Tokens of the shared prefix: a request holding only it, less a request holding only a stand-in
    message (the framing every request has)."""
    body = orjson.loads(first)
    stub = {"role": "user", "content": "."}
    if cache is None or cache.where is None:
        return 0
    head = {k: body[k] for k in ("model", "tools", "system") if k in body}
    if cache.where == "prompt":
        lead = body["messages"][0]["content"][0]
        return int(count(orjson.dumps({**head, "messages": [{"role": "user", "content": [lead]}]})))
    with_prefix = count(orjson.dumps({**head, "messages": [stub]}))
    return max(0, int(with_prefix) - int(count(orjson.dumps({"model": body["model"], "messages": [stub]}))))


def output_history(store: Any, model: str, prompt: str | None) -> tuple[float | None, str]:
    """Output tokens per answer in finished jobs of the store with this model and prompt, and the basis.

    Examples
    --------
    >>> output_history(Store(tmp_path), "claude-haiku-4-5", "q")  # doctest: +SKIP
    (None, 'default: 50% of max_tokens (no finished job of the store with this model and prompt)')
    """
    tokens = answers = jobs = 0
    for _, manifest in store.manifests():
        if isinstance(manifest, Exception) or manifest.get("model") != model:
            continue
        if prompt is None or (manifest.get("request") or {}).get("prompt") != prompt:
            continue
        done = [s for a in manifest["attempts"] for s in a["shards"]
                if state_of(s) is ShardState.HARVESTED and "linked" not in s]
        n = sum(int((s.get("result_counts") or {}).get("succeeded", 0)) for s in done)
        if n:
            jobs += 1
            answers += n
            tokens += sum(int(s.get("output_tokens") or 0) for s in done)
    if not answers:
        return None, (f"default: {DEFAULT_OUTPUT_RATIO:.0%} of max_tokens (no finished job of the store with this "
                      "model and prompt)")
    per = tokens / answers
    return per, f"{per:,.1f} tokens an answer, the mean of {answers:,} answers in {jobs} finished job(s) of the store"
