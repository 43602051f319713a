"""OpenAI Batch API prices, in one place; :mod:`batchframe.results.cost` does the arithmetic.

Source: OpenAI's pricing page (platform.openai.com/docs/pricing, "Batch" tier), checked 2026-11-30. The Batch
API costs 50% of the standard price; cached input tokens are billed at the model's cached-input rate, also
halved. There is no separate cache-write price (writes cost the plain input price). A model missing from
this table gets a null cost, never a guess.
"""

from __future__ import annotations

import re

from batchframe.results.cost import Price

PRICES_CHECKED = "2026-11-30"
BATCH_DISCOUNT = 0.5

# Standard (non-batch) USD per million tokens: input, cached input, output. Dated ids resolve to these keys.
_STANDARD: dict[str, tuple[float, float, float]] = {
    "gpt-5": (1.25, 0.125, 10.0),
    "gpt-5-mini": (0.25, 0.025, 2.0),
    "gpt-5-nano": (0.05, 0.005, 0.40),
    "gpt-4.1": (2.0, 0.50, 8.0),
    "gpt-4.1-mini": (0.40, 0.10, 1.60),
    "gpt-4.1-nano": (0.10, 0.025, 0.40),
    "gpt-4o": (2.50, 1.25, 10.0),
    "gpt-4o-mini": (0.15, 0.075, 0.60),
    "o4-mini": (1.10, 0.275, 4.40),
    "o3": (2.0, 0.50, 8.0),
    "text-embedding-3-small": (0.02, 0.02, 0.0),
    "text-embedding-3-large": (0.13, 0.13, 0.0),
    "text-embedding-ada-002": (0.10, 0.10, 0.0),
}
_DATED = re.compile(r"^(?P<base>.+?)-\d{4}-\d{2}-\d{2}$")


def batch_price_for(model: str | None) -> Price | None:
    """The Batch API price of ``model`` (dated ids too), or None if it is not in the table.

    Examples
    --------
    >>> batch_price_for("gpt-4o-mini-2024-07-18").output
    0.3
    >>> batch_price_for("gpt-unknown") is None
    True
    """
    if not model:
        return None
    match = _DATED.match(model)
    standard = _STANDARD.get(model) or (_STANDARD.get(match["base"]) if match else None)
    if standard is None:
        return None
    input_, cached, output = (value * BATCH_DISCOUNT for value in standard)
    return Price(input=input_, output=output, cache_write_5m=input_, cache_write_1h=input_, cache_read=cached)
