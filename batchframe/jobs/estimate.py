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
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd

from batchframe.jobs.ledger import lookup
from batchframe.jobs.plan import Plan, Prepared, plan_requests, prepare
from batchframe.jobs.states import ShardState, state_of
from batchframe.jobs.tokens import SAMPLE_SIZE, count_requests
from batchframe.providers import provider_class
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
    cls = provider_class(p.endpoint.provider)
    params = [p.requests.params[i] for i in plan.send.tolist()]
    with httpx.Client(timeout=httpx.Timeout(60.0, connect=5.0)) as client:
        provider = cls(p.endpoint, client=client, retry=retry)
        counted = count_requests(params, provider.count_tokens, exact=exact, sample_size=sample_size)
        prefix = _prefix_tokens(provider.count_tokens, p, params[0]) if p.requests.cache and params else 0
    lookup_price, note = cls.pricer(p.requests.model)
    price = lookup_price(p.requests.model)
    max_out = np.array([orjson.loads(b)["max_tokens"] for b in params], float)
    per_answer, output_basis = output_history(p.store, p.requests.model, p.prompt)
    expected_out = np.minimum(max_out, per_answer) if per_answer is not None else max_out * DEFAULT_OUTPUT_RATIO
    minimum = cls.min_cacheable_tokens(p.requests.model)
    caches = bool(prefix) and (minimum is None or prefix >= minimum)
    bounds = np.cumsum([0] + [s["n_requests"] for s in plan.shards[: plan.n_sent_shards]])
    upper = counted.per_request * (1 + counted.relative_bound)
    worst = _worst(price, upper, prefix, max_out)
    expected = _expected(price, counted.per_request, prefix if caches else 0, expected_out, bounds, prime)
    shards = tuple(
        ShardEstimate(k, int(b - a), int(round(counted.per_request[a:b].sum())), int(max_out[a:b].sum()),
                      int(round(expected_out[a:b].sum())), _sum(worst, a, b), _sum(expected, a, b))
        for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True))
    )
    requests = p.requests
    return Estimate(
        provider=p.endpoint.provider, model=requests.model, n_rows=requests.n_rows, n_requests=len(params),
        n_skipped=int(requests.skipped.sum()), n_reused=int((p.sent_as != np.arange(requests.n_sent)).sum()),
        n_in_ledger=plan.n_linked, input_tokens=int(round(counted.total)), input_exact=counted.exact,
        input_error_bound=int(np.ceil(counted.bound)), n_counted=counted.n_counted, token_count=cls.token_count,
        max_output_tokens=int(max_out.sum()), expected_output_tokens=int(round(expected_out.sum())),
        output_basis=output_basis, cache_prefix_tokens=int(prefix),
        worst_case_usd=_sum(worst, 0, len(params)), expected_usd=_sum(expected, 0, len(params)),
        price_basis=_price_basis(requests.model, price, note), shards=shards,
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


def _prefix_tokens(count: Any, p: Prepared, first: bytes) -> int:
    """Tokens of the shared prefix: a request holding only it, less a request holding only a stand-in
    message (the framing every request has)."""
    body = orjson.loads(first)
    stub = {"role": "user", "content": "."}
    if p.requests.cache is None or p.requests.cache.where is None:
        return 0
    head = {k: body[k] for k in ("model", "tools", "system") if k in body}
    if p.requests.cache.where == "prompt":
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
