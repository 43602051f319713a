"""Claude list prices, in one place, and the batch cost of each row.

Source: Anthropic's pricing page (platform.claude.com/docs/en/about-claude/pricing, "Model pricing" and
"Batch processing"), checked 2026-11-25. Batch requests cost 50% of the list price for every token kind,
and the discount stacks with the prompt-caching multipliers. Errored, canceled and expired rows are not
billed. A model missing from this table gets a null cost, never a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

PRICES_CHECKED = "2026-11-25"
BATCH_DISCOUNT = 0.5


@dataclass(frozen=True)
class Price:
    """List prices in USD per million tokens."""

    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float


def _standard(input_: float, output: float, read_ratio: float = 0.1) -> Price:
    # The page's cache columns are fixed multiples of the input price: 1.25x (5 min), 2x (1 h).
    return Price(input_, output, input_ * 1.25, input_ * 2.0, input_ * read_ratio)


# Keys are model ids without a date suffix; dated ids ("claude-haiku-4-5-20251001") resolve to them.
PRICES: dict[str, Price] = {
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


def price_for(model: str | None) -> Price | None:
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


def batch_cost(
    model: pd.Series,
    *,
    input_tokens: pd.Series,
    output_tokens: pd.Series,
    cache_creation_input_tokens: pd.Series | None = None,
    cache_read_input_tokens: pd.Series | None = None,
    cache_creation_1h_input_tokens: pd.Series | None = None,
) -> pd.Series:
    """Cost in USD of each row at batch prices (50% of list), cache tokens included.

    Cache writes count at the 5-minute rate unless ``cache_creation_1h_input_tokens`` says how many of
    them were 1-hour writes. Rows without usage (errored, canceled, expired, skipped) or with a model
    missing from :data:`PRICES` get a null cost.

    Examples
    --------
    >>> import pandas as pd
    >>> cost = batch_cost(pd.Series(["claude-haiku-4-5"]), input_tokens=pd.Series([1_000_000]),
    ...                   output_tokens=pd.Series([200_000]))
    >>> float(cost.iloc[0])  # (1.0 + 0.2 * 5.0) * 0.5
    1.0
    """
    zeros = pd.Series(0, index=model.index, dtype="Int64")
    write_total = _ints(cache_creation_input_tokens, zeros)
    write_1h = _ints(cache_creation_1h_input_tokens, zeros).clip(upper=write_total)
    tokens = {
        "input": _ints(input_tokens, zeros, keep_null=True),
        "output": _ints(output_tokens, zeros, keep_null=True),
        "cache_write_5m": write_total - write_1h,
        "cache_write_1h": write_1h,
        "cache_read": _ints(cache_read_input_tokens, zeros),
    }
    known = {m: p for m in pd.unique(model.dropna()) if (p := price_for(m)) is not None}
    total = pd.Series(0.0, index=model.index, dtype="Float64")
    for kind, counts in tokens.items():
        rate = model.map({m: getattr(p, kind) for m, p in known.items()}).astype("Float64")
        total = total + counts.astype("Float64") * rate
    return total * (BATCH_DISCOUNT / 1_000_000)


def _ints(series: pd.Series | None, zeros: pd.Series, *, keep_null: bool = False) -> pd.Series:
    if series is None:
        return zeros
    values = series.astype("Int64")
    return values if keep_null else values.fillna(0)
