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

from batchframe.errors import InputError
from batchframe.results.schema import DEFAULT_PREFIX, HARVEST_SCHEMA, RESULT_COLUMNS

#: Maps the aligned results table to a float64 cost array (see :func:`batchframe.results.cost.cost_array`).
Pricer = Callable[[pa.Table], pa.Array]

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


def combine(n_rows: int, skipped: np.ndarray, tables: Sequence[pa.Table], *, pricer: Pricer | None = None,
            same_as: np.ndarray | None = None, linked: np.ndarray | None = None) -> pa.Table:
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
    same_as : int array of length n_rows, optional
        For a row whose request was identical to an earlier row's (sent once), that row's position; a row's
        own position otherwise (-1 when skipped). Such a row gets that answer, ``reused`` True and cost 0:
        the request was paid once.
    linked : bool array of length n_rows, optional
        Rows whose stored answer was copied from another job of the store, which paid for it: ``reused``
        True and cost 0.

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
    reused = np.zeros(n_rows, dtype=bool)
    if same_as is not None:
        reused = (same_as >= 0) & (same_as != np.arange(n_rows))
        take[reused] = take[same_as[reused]]  # fan out: the answer of the request that was sent
    if linked is not None:
        reused = reused | linked
    indices = pa.array(take, mask=take < 0)
    aligned = found.take(indices)
    fallback = pa.array(np.where(skipped, "skipped", "pending"), pa.string())
    status = pc.coalesce(aligned.column("status"), fallback)
    cost = pricer(aligned) if pricer else pa.nulls(n_rows, pa.float64())
    if reused.any():
        cost = pc.if_else(pa.array(reused), pa.scalar(0.0, pa.float64()), cost)
    columns = {name: aligned.column(name) for name in RESULT_COLUMNS if name not in ("status", "cost_usd", "reused")}
    columns.update(status=status, cost_usd=cost, reused=pa.array(reused))
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


def dedupe(table: pa.Table) -> pa.Table:
    """Keep the first row of every custom_id (a result re-downloaded after a cut stream counts once).

    Examples
    --------
    >>> dedupe(pa.table({"custom_id": ["a", "b", "a"], "status": ["expired", "expired", "expired"]})).num_rows
    2
    """
    ids = table.column("custom_id").to_numpy(zero_copy_only=False)
    dup = pd.Index(ids).duplicated(keep="first")
    return table.filter(pa.array(~dup)) if dup.any() else table
