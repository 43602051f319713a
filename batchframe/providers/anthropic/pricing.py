"""Claude list prices, in one place; :mod:`batchframe.results.cost` does the arithmetic.

Source: Anthropic's pricing page (platform.claude.com/docs/en/about-claude/pricing, "Model pricing" and
"Batch processing"), checked 2026-11-25. Batch requests cost 50% of the list price for every token kind,
and the discount stacks with the prompt-caching multipliers. Errored, canceled and expired rows are not
billed. A model missing from this table gets a null cost, never a guess.
"""

from __future__ import annotations

import re
from dataclasses import astuple, dataclass

from batchframe.results.cost import Price

PRICES_CHECKED = "2026-11-25"
BATCH_DISCOUNT = 0.5


@dataclass(frozen=True)
class ListPrice:
    """List prices in USD per million tokens, as the pricing page gives them."""

    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float

    def batch(self) -> Price:
        """The batch price: :data:`BATCH_DISCOUNT` of list for every token kind."""
        return Price(*(value * BATCH_DISCOUNT for value in astuple(self)))


def _standard(input_: float, output: float, read_ratio: float = 0.1) -> ListPrice:
    # The page's cache columns are fixed multiples of the input price: 1.25x (5 min), 2x (1 h).
    return ListPrice(input_, output, input_ * 1.25, input_ * 2.0, input_ * read_ratio)


# Keys are model ids without a date suffix; dated ids ("claude-haiku-4-5-20251001") resolve to them.
PRICES: dict[str, ListPrice] = {
    "claude-fable-5-1": _standard(10.0, 50.0, read_ratio=0.025),
    "claude-fable-5": _standard(10.0, 50.0),
    "claude-opus-5-5": _standard(4.0, 20.0, read_ratio=0.05),
    "claude-opus-5": _standard(5.0, 25.0),
    "claude-opus-4-8": _standard(5.0, 25.0),
    "claude-opus-4-7": _standard(5.0, 25.0),
    "claude-opus-4-6": _standard(5.0, 25.0),
    "claude-opus-4-5": _standard(5.0, 25.0),
    "claude-opus-4-1": _standard(15.0, 75.0),
    "claude-opus-4-0": _standard(15.0, 75.0),
    "claude-opus-4": _standard(15.0, 75.0),
    "claude-sonnet-5-5": _standard(2.0, 10.0, read_ratio=0.05),
    "claude-sonnet-5": _standard(2.0, 10.0),
    "claude-sonnet-4-6": _standard(3.0, 15.0),
    "claude-sonnet-4-5": _standard(3.0, 15.0),
    "claude-sonnet-4-0": _standard(3.0, 15.0),
    "claude-sonnet-4": _standard(3.0, 15.0),
    "claude-3-7-sonnet": _standard(3.0, 15.0),
    "claude-haiku-4-5": _standard(1.0, 5.0),
    "claude-3-5-haiku": _standard(0.8, 4.0),
    "claude-3-haiku": _standard(0.25, 1.25, read_ratio=0.12),
}

_DATE_SUFFIX = re.compile(r"-(\d{8}|latest)$")

#: The shortest prefix each model caches, in tokens (same page, "Prompt caching": "Cache limitations");
#: a shorter prefix is silently not cached. Families not listed here: :data:`MIN_CACHEABLE_DEFAULT`.
MIN_CACHEABLE: dict[str, int] = {
    "claude-haiku-4-5": 4096,
    "claude-opus-4-5": 4096,
    "claude-3-5-haiku": 2048,
    "claude-3-haiku": 2048,
}
MIN_CACHEABLE_DEFAULT = 1024


def price_for(model: str | None) -> ListPrice | None:
    """The list price of a model id, or None when the model is not in the table.

    Examples
    --------
    >>> price_for("claude-haiku-4-5-20251001").output
    5.0
    >>> price_for("smollm2-135m-instruct") is None
    True
    """
    if not model:
        return None
    return PRICES.get(_DATE_SUFFIX.sub("", model))


def batch_price_for(model: str | None) -> Price | None:
    """The batch price of a model id (what :func:`batchframe.results.cost.batch_cost` needs), or None.

    Examples
    --------
    >>> batch_price_for("claude-haiku-4-5").input
    0.5
    """
    price = price_for(model)
    return None if price is None else price.batch()


def min_cacheable_tokens(model: str | None) -> int | None:
    """The shortest prefix a model caches, or None for a model not in :data:`PRICES`.

    Examples
    --------
    >>> min_cacheable_tokens("claude-haiku-4-5-20251001"), min_cacheable_tokens("claude-sonnet-4-5")
    (4096, 1024)
    """
    if price_for(model) is None:
        return None
    return MIN_CACHEABLE.get(_DATE_SUFFIX.sub("", model or ""), MIN_CACHEABLE_DEFAULT)
