"""Counting the input tokens of many requests: every one, or a stratified sample extrapolated with a bound.

The sample is stratified by request size (the bytes of its serialized parameters): requests are sorted by
size and cut into :data:`STRATA` groups of equal count, and each group gets its share of the sample (at
least two, so its spread is measured). Within a group, tokens are taken as proportional to bytes (the
ratio estimator), and each uncounted request is estimated as ``its bytes * the group's tokens per byte``.
The bound on the total is three standard errors of that estimator (about 99.7%), with the finite
population correction: it is 0 when every request was counted.

Counting is the provider's (:meth:`batchframe.providers.base.Provider.count_tokens`); the calls run on a
few threads at once (:data:`CONCURRENCY`) and never send anything billable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from batchframe.jobs.views import VIEWS

#: Requests counted when the count is sampled (``exact=False``).
SAMPLE_SIZE = 200
#: Size groups of the stratified sample.
STRATA = 10
#: Count calls in flight at once (the provider's rate limits are answered by the HTTP layer's retries).
CONCURRENCY = 8
#: Standard errors in the stated bound.
Z = 3.0


@dataclass(frozen=True)
class TokenCount:
    """Input tokens of a list of requests.

    ``per_request`` holds each request's count (exact where counted, else its estimate); ``bound`` is the
    error bound on ``total`` (0 when ``exact``).

    Examples
    --------
    >>> c = count_requests([b"a b", b"c d e"], lambda p: len(p.split()))
    >>> c.total, c.exact, c.bound
    (5.0, True, 0.0)
    """

    per_request: np.ndarray
    bound: float
    exact: bool
    n_counted: int

    @property
    def total(self) -> float:
        return float(self.per_request.sum())

    @property
    def relative_bound(self) -> float:
        """``bound / total`` (0 for an empty or exact count)."""
        return self.bound / self.total if self.total else 0.0


def sample_indices(sizes: np.ndarray, size: int, *, strata: int = STRATA, seed: int = 0) -> list[np.ndarray]:
    """The sampled indices of each size group (groups of equal count, by ascending size).

    Examples
    --------
    >>> groups = sample_indices(np.arange(100), 20, strata=4)
    >>> [len(g) for g in groups], all(g.max() < 25 for g in groups[:1])
    ([5, 5, 5, 5], True)
    """
    order = np.argsort(sizes, kind="stable")
    rng = np.random.default_rng(seed)
    out = []
    for group in np.array_split(order, min(strata, max(1, len(order)))):
        if len(group) == 0:
            continue
        n = min(len(group), max(2, round(size * len(group) / len(order))))
        out.append(np.sort(rng.choice(group, size=n, replace=False)))
    return out


def extrapolate(sizes: np.ndarray, groups: Sequence[np.ndarray], counted: dict[int, int]) -> tuple[np.ndarray, float]:
    """Each request's tokens (counted, or estimated by its group's tokens per byte) and the bound on the sum.

    Examples
    --------
    >>> sizes = np.array([10, 20, 30, 40])
    >>> est, bound = extrapolate(sizes, [np.array([0, 1, 2, 3])], {0: 5, 1: 10, 2: 15, 3: 20})
    >>> est.tolist(), bound
    ([5.0, 10.0, 15.0, 20.0], 0.0)
    """
    order = np.argsort(sizes, kind="stable")
    population = np.array_split(order, min(len(groups), max(1, len(order)))) if groups else []
    estimate = np.zeros(len(sizes))
    variance = 0.0
    for members, sample in zip(population, groups, strict=True):
        x = sizes[sample].astype(float)
        y = np.array([counted[i] for i in sample.tolist()], float)
        ratio = y.sum() / x.sum() if x.sum() else 0.0
        estimate[members] = sizes[members] * ratio
        estimate[sample] = y
        n, big_n = len(sample), len(members)
        if n < big_n and n > 1:
            spread = ((y - ratio * x) ** 2).sum() / (n - 1)
            variance += big_n**2 * (1 - n / big_n) / n * spread
    return estimate, Z * float(np.sqrt(variance))


def count_requests(
    params: Sequence[bytes],
    count: Callable[[bytes], int],
    *,
    exact: bool = True,
    sample_size: int = SAMPLE_SIZE,
    concurrency: int = CONCURRENCY,
    label: str = "counting tokens",
) -> TokenCount:
    """Count the input tokens of ``params`` (serialized requests) with ``count``: all of them when ``exact``
    or when there are no more than ``sample_size``, else a stratified sample, extrapolated.

    Examples
    --------
    >>> bodies = [b"word " * n for n in range(1, 1001)]
    >>> c = count_requests(bodies, lambda p: len(p.split()), exact=False, sample_size=50)
    >>> c.exact, c.n_counted <= 60, abs(c.total - 500500) <= c.bound + 1
    (False, True, True)
    """
    sizes = np.fromiter((len(p) for p in params), np.int64, count=len(params))
    return count_requests_of(sizes, lambda chosen: [params[i] for i in chosen.tolist()], count, exact=exact,
                             sample_size=sample_size, concurrency=concurrency, label=label)


def count_requests_of(
    sizes: np.ndarray,
    fetch: Callable[[np.ndarray], Sequence[bytes]],
    count: Callable[[bytes], int],
    *,
    exact: bool = True,
    sample_size: int = SAMPLE_SIZE,
    concurrency: int = CONCURRENCY,
    label: str = "counting tokens",
) -> TokenCount:
    """:func:`count_requests` from the requests' ``sizes`` (bytes of each one's serialized parameters) and
    ``fetch(indices)``, which returns the serialized parameters of those requests only, in that order: the
    sample is chosen from the sizes, so only the requests counted are ever fetched.

    Examples
    --------
    >>> bodies = [b"word " * n for n in range(1, 1001)]
    >>> fetched = []
    >>> def fetch(chosen):
    ...     fetched.extend(chosen.tolist())
    ...     return [bodies[i] for i in chosen.tolist()]
    >>> c = count_requests_of(np.array([len(b) for b in bodies]), fetch, lambda p: len(p.split()), exact=False,
    ...                       sample_size=50)
    >>> c.total == count_requests(bodies, lambda p: len(p.split()), exact=False, sample_size=50).total
    True
    >>> len(fetched) == c.n_counted < len(bodies)
    True
    """
    n = len(sizes)
    groups = [np.arange(n)] if exact or n <= sample_size else sample_indices(sizes, sample_size)
    chosen = np.concatenate(groups) if groups else np.zeros(0, np.int64)
    counted = _count_all(list(fetch(chosen)), count, concurrency, label)
    by_index = dict(zip(chosen.tolist(), counted, strict=True))
    if len(chosen) == n:
        values = np.array([by_index[i] for i in range(n)], float)
        return TokenCount(values, 0.0, True, n)
    estimate, bound = extrapolate(sizes, groups, by_index)
    return TokenCount(estimate, bound, False, len(chosen))


def _count_all(params: list[bytes], count: Callable[[bytes], int], concurrency: int, label: str) -> list[int]:
    # A bar only for long counts: a few calls finish before it would draw.
    tally = VIEWS.tally(label, len(params)) if len(params) > 2 * concurrency else None
    ok = False
    try:
        with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(params)))) as pool:
            out = []
            for n in pool.map(count, params):
                out.append(int(n))
                if tally is not None:
                    tally.advance(1)
        ok = True
        return out
    finally:
        if tally is not None:
            tally.close(ok=ok)
