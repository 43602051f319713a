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
import pyarrow.compute as pc


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
#: Rows priced at a time by :func:`cost_array`.
SLICE_ROWS = 65_536
#: The token kinds of a :class:`Price`, in the order their costs are added (kept fixed: float sums depend on it).
_KINDS = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")


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
    columns = {"model": pa.array(model.astype(object).where(model.notna(), None).tolist(), pa.string())}
    for name, series in usage.items():
        if series is not None:
            columns[name] = pa.array(series.astype("Int64").to_numpy(dtype="float64", na_value=np.nan),
                                     from_pandas=True).cast(pa.int64())
    cost = cost_array(pa.table(columns), price_for)
    return pd.Series(pd.array(cost, dtype="Float64"), index=model.index)


def cost_array(table: pa.Table, price_for: PriceLookup) -> pa.Array:
    """The cost of every row of a results table (``model`` and usage columns) as a float64 Arrow array.

    Vectorised: ``price_for`` is asked once per distinct model, and each rate reaches its rows through one
    lookup of the model column, never a Python call per row.

    Examples
    --------
    >>> t = pa.table({"model": ["m", "echo"], "input_tokens": [1_000_000, 5], "output_tokens": [0, 5]})
    >>> cost_array(t, {"m": Price(0.5, 2.5, 0.625, 1.0, 0.05)}.get).to_pylist()
    [0.5, None]
    """
    model = table.column("model")
    known = [(m, p) for m in pc.unique(model).drop_null().to_pylist() if (p := price_for(m)) is not None]
    # Priced a slice at a time: the arithmetic's temporaries then stay small, whatever the table's size.
    slices = [_cost(table.slice(start, SLICE_ROWS), known) for start in range(0, table.num_rows, SLICE_ROWS)]
    return pa.concat_arrays(slices) if slices else pa.array([], pa.float64())


def _cost(table: pa.Table, known: list[tuple[str, Price]]) -> pa.Array:
    model = table.column("model")
    which = pc.fill_null(pc.index_in(model, value_set=pa.array([m for m, _ in known], model.type)), -1)
    which = which.to_numpy() if isinstance(which, pa.Array) else which.combine_chunks().to_numpy()
    unknown = which < 0
    input_tokens, input_null = _tokens(table, "input_tokens")
    output_tokens, output_null = _tokens(table, "output_tokens")
    write_total, _ = _tokens(table, "cache_creation_input_tokens")
    write_1h = np.minimum(_tokens(table, "cache_creation_1h_input_tokens")[0], write_total)
    counts = {"input": input_tokens, "output": output_tokens, "cache_write_5m": write_total - write_1h,
              "cache_write_1h": write_1h, "cache_read": _tokens(table, "cache_read_input_tokens")[0]}
    total = np.zeros(len(which))
    for kind in _KINDS:
        rates = np.array([getattr(p, kind) for _, p in known] + [np.nan])  # the last slot: unknown models
        total = total + counts[kind] * rates[which]
    return pa.array(total / 1_000_000, pa.float64(), mask=unknown | input_null | output_null)


def total_cost(table: pa.Table, price_for: PriceLookup) -> float | None:
    """Sum of the known costs of a results table; None when no row has a known price.

    Examples
    --------
    >>> total_cost(pa.table({"model": ["echo"], "input_tokens": [5], "output_tokens": [5]}), {}.get) is None
    True
    """
    costs = cost_array(table, price_for)
    return None if costs.null_count == len(costs) else float(pc.sum(costs).as_py() or 0.0)


def _tokens(table: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A token column as float64 with nulls counted 0, and its null mask (all False when absent)."""
    if name not in table.column_names:
        return np.zeros(table.num_rows), np.zeros(table.num_rows, dtype=bool)
    column = table.column(name)
    values = pc.fill_null(column, 0).to_numpy().astype(np.float64)
    return values, column.is_null().to_numpy(zero_copy_only=False)
