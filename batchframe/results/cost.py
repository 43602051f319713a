"""The one cost function: each row's usage priced at batch rates from a provider's price table.

A provider owns its prices (``Provider.price_for(model) -> Price | None``); this module owns the
arithmetic. Rows without usage (errored, canceled, expired, skipped) or with a model the table does not
know get a null cost, never a guess. Cache writes count at the 5-minute rate unless
``cache_creation_1h_input_tokens`` says how many were 1-hour writes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from batchframe.results.schema import USAGE_COLUMNS


@dataclass(frozen=True)
class Price:
    """Batch prices in USD per million tokens (the provider's discount already applied).

    Examples
    --------
    >>> Price(input=0.5, output=2.5, cache_write_5m=0.625, cache_write_1h=1.0, cache_read=0.05).output
    2.5
    """

    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float


PriceLookup = Callable[[str | None], Price | None]


def batch_cost(model: pd.Series, price_for: PriceLookup, **usage: pd.Series | None) -> pd.Series:
    """Cost in USD of each row (``Float64``, null where the usage or the price is unknown).

    Parameters
    ----------
    model : Series of str
        The model each result names (the model that answered and bills).
    price_for : callable
        The provider's price table: model id -> :class:`Price` at batch rates, or None.
    **usage : Series
        Token counts named as in :data:`batchframe.results.schema.USAGE_COLUMNS`; missing ones count 0.

    Examples
    --------
    >>> table = {"m": Price(0.5, 2.5, 0.625, 1.0, 0.05)}
    >>> cost = batch_cost(pd.Series(["m", "x"]), table.get, input_tokens=pd.Series([1_000_000, 5]),
    ...                   output_tokens=pd.Series([200_000, 5]))
    >>> cost.tolist()
    [1.0, <NA>]
    """
    zeros = pd.Series(0, index=model.index, dtype="Int64")
    write_total = _ints(usage.get("cache_creation_input_tokens"), zeros)
    write_1h = _ints(usage.get("cache_creation_1h_input_tokens"), zeros).clip(upper=write_total)
    tokens = {
        "input": _ints(usage.get("input_tokens"), zeros, keep_null=True),
        "output": _ints(usage.get("output_tokens"), zeros, keep_null=True),
        "cache_write_5m": write_total - write_1h,
        "cache_write_1h": write_1h,
        "cache_read": _ints(usage.get("cache_read_input_tokens"), zeros),
    }
    known = {m: p for m in pd.unique(model.dropna()) if (p := price_for(m)) is not None}
    total = pd.Series(0.0, index=model.index, dtype="Float64")
    for kind, counts in tokens.items():
        rate = model.map({m: getattr(p, kind) for m, p in known.items()}).astype("Float64")
        total = total + counts.astype("Float64") * rate
    return total / 1_000_000


def cost_array(table: pa.Table, price_for: PriceLookup) -> pa.Array:
    """:func:`batch_cost` of a results table (``model`` and usage columns) as a float64 Arrow array.

    Examples
    --------
    >>> t = pa.table({"model": ["m", "echo"], "input_tokens": [1_000_000, 5], "output_tokens": [0, 5]})
    >>> cost_array(t, {"m": Price(0.5, 2.5, 0.625, 1.0, 0.05)}.get).to_pylist()
    [0.5, None]
    """
    names = [c for c in ("model", *USAGE_COLUMNS) if c in table.column_names]
    frame = table.select(names).to_pandas(types_mapper=pd.ArrowDtype)
    cost = batch_cost(frame["model"], price_for, **{c: frame[c] for c in names[1:]})
    return pa.array(cost.to_numpy(dtype="float64", na_value=np.nan), pa.float64(),
                    mask=cost.isna().to_numpy(dtype=bool))


def total_cost(table: pa.Table, price_for: PriceLookup) -> float | None:
    """Sum of the known costs of a results table; None when no row has a known price.

    Examples
    --------
    >>> total_cost(pa.table({"model": ["echo"], "input_tokens": [5], "output_tokens": [5]}), {}.get) is None
    True
    """
    costs = cost_array(table, price_for)
    return None if costs.null_count == len(costs) else float(np.nansum(costs.to_numpy(zero_copy_only=False)))


def _ints(series: pd.Series | None, zeros: pd.Series, *, keep_null: bool = False) -> pd.Series:
    if series is None:
        return zeros
    values = series.astype("Int64")
    return values if keep_null else values.fillna(0)
