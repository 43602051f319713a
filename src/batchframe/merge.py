"""Harvested results -> one row of result columns per source row, aligned by position. Vectorised.

Every harvested table carries ``position`` (the source row, found through the persisted custom_id
mapping), ``attempt`` and ``batch_id``. For each position the row of the latest attempt wins. Rows
without a result are ``skipped`` (never sent) or ``pending`` (sent, no result yet).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .errors import InputError
from .pricing import batch_cost
from .results import RESULT_SCHEMA

#: Result columns, in order, before the prefix is applied.
RESULT_COLUMNS = (
    "text",
    "status",
    "stop_reason",
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "cache_creation_1h_input_tokens",
    "cost_usd",
    "error_type",
    "error_message",
    "model",
    "message_id",
    "batch_id",
    "custom_id",
    "attempt",
    "tool_use",
)
DEFAULT_PREFIX = "llm_"
#: Columns a harvested table adds to RESULT_SCHEMA.
HARVEST_FIELDS = [
    pa.field("position", pa.int64()),
    pa.field("attempt", pa.int32()),
    pa.field("batch_id", pa.string()),
]
HARVEST_SCHEMA = pa.schema([*RESULT_SCHEMA, *HARVEST_FIELDS])

Pricer = Callable[[pa.Table], pa.Array]
_USAGE = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "cache_creation_1h_input_tokens",
)


def batch_pricer(aligned: pa.Table) -> pa.Array:
    """Cost per row at batch prices (:func:`batchframe.pricing.batch_cost`), null without usage or price.

    Examples
    --------
    >>> t = pa.table({"model": ["claude-haiku-4-5", "echo"], "input_tokens": [1_000_000, 5],
    ...               "output_tokens": [0, 5], "cache_creation_input_tokens": [None, None],
    ...               "cache_read_input_tokens": [None, None], "cache_creation_1h_input_tokens": [None, None]})
    >>> batch_pricer(t).to_pylist()
    [0.5, None]
    """
    frame = aligned.select(["model", *_USAGE]).to_pandas(types_mapper=pd.ArrowDtype)
    cost = batch_cost(frame["model"], **{name: frame[name] for name in _USAGE})
    return pa.array(
        cost.to_numpy(dtype="float64", na_value=np.nan), pa.float64(), mask=cost.isna().to_numpy(dtype=bool)
    )


def latest_per_position(tables: Sequence[pa.Table]) -> pa.Table:
    """Concatenate harvested tables and keep, for each position, the row of the highest attempt.

    Examples
    --------
    >>> t = pa.table({"position": [0, 0, 1], "attempt": pa.array([1, 2, 1], pa.int32()), "x": [1, 2, 3]})
    >>> latest_per_position([t]).column("x").to_pylist()
    [2, 3]
    """
    table = pa.concat_tables(tables, promote_options="default") if len(tables) != 1 else tables[0]
    if table.num_rows == 0:
        return table
    pos = table.column("position").to_numpy()
    att = table.column("attempt").to_numpy()
    order = np.lexsort((att, pos))  # by position, then attempt; the last of each run wins
    pos_sorted = pos[order]
    last = np.r_[pos_sorted[1:] != pos_sorted[:-1], True]
    return table.take(pa.array(order[last]))


def combine(n_rows: int, skipped: np.ndarray, tables: Sequence[pa.Table], *, pricer: Pricer | None = None) -> pa.Table:
    """The result columns of all ``n_rows`` rows, in position order.

    Parameters
    ----------
    n_rows : int
    skipped : bool array of length n_rows
        Rows that were never sent.
    tables : list of pa.Table
        Harvested tables (:data:`HARVEST_SCHEMA`).
    pricer : callable, optional
        Maps the aligned table to a float64 cost array; without it the cost is null.

    Examples
    --------
    >>> out = combine(2, np.array([False, True]), [])
    >>> out.column("status").to_pylist()
    ['pending', 'skipped']
    """
    found = latest_per_position([t.select(HARVEST_SCHEMA.names) for t in tables] or [HARVEST_SCHEMA.empty_table()])
    take = np.full(n_rows, -1, dtype=np.int64)
    pos = found.column("position").to_numpy()
    if len(pos) and (pos.min() < 0 or pos.max() >= n_rows):
        raise InputError("a harvested result points outside the frame: the job store is inconsistent")
    take[pos] = np.arange(len(pos))
    indices = pa.array(take, mask=take < 0)
    aligned = found.take(indices)
    fallback = pa.array(np.where(skipped, "skipped", "pending"), pa.string())
    status = pc.coalesce(aligned.column("status"), fallback)
    cost = pricer(aligned) if pricer else pa.nulls(n_rows, pa.float64())
    columns = {name: aligned.column(name) for name in RESULT_COLUMNS if name not in ("status", "cost_usd")}
    columns.update(status=status, cost_usd=cost)
    return pa.table({name: columns[name] for name in RESULT_COLUMNS})


def to_frame(table: pa.Table, index: pd.Index, prefix: str = DEFAULT_PREFIX) -> pd.DataFrame:
    """Result columns as a DataFrame with nullable Arrow-backed dtypes, indexed like the source.

    Examples
    --------
    >>> to_frame(combine(1, np.array([True]), []), pd.Index(["a"])).loc["a", "llm_status"]
    'skipped'
    """
    frame = table.to_pandas(types_mapper=pd.ArrowDtype)
    frame.columns = [f"{prefix}{name}" for name in frame.columns]
    frame.index = index
    return frame


def merge_into(df: pd.DataFrame, results: pd.DataFrame) -> pd.DataFrame:
    """``df`` plus the result columns. A name clash is an error, never an overwrite.

    Alignment: when ``df`` has the submitted index (same labels, same order), columns are placed by
    position, so duplicate labels are fine. Otherwise, with unique labels on both sides, by label;
    anything else is refused.

    Examples
    --------
    >>> df = pd.DataFrame({"q": ["hi"]}, index=["a"])
    >>> res = to_frame(combine(1, np.array([True]), []), df.index)
    >>> list(merge_into(df, res).columns)[:3]
    ['q', 'llm_text', 'llm_status']
    """
    clash = [c for c in results.columns if c in df.columns]
    if clash:
        raise InputError(
            f"result column(s) {clash} already exist in the frame; choose another prefix "
            "(merge(job, prefix=...)) or drop them first"
        )
    if not df.index.equals(results.index):
        if not (df.index.is_unique and results.index.is_unique):
            raise InputError(
                "the frame's index differs from the submitted one and has duplicate labels, so rows "
                "cannot be matched; merge into the frame you submitted (same rows, same order)"
            )
        results = results.reindex(df.index)
    out = df.copy(deep=False)
    for name in results.columns:
        out[name] = results[name].array  # positional: the indexes are equal here
    return out
