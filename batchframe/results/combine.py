"""Harvested results -> one row of result columns per source row, aligned by position. Vectorised.

Every harvested table carries ``position`` (the source row, found through the persisted custom_id
mapping), ``attempt`` and ``batch_id``. For each position the row of the latest attempt wins. Rows
without a result are ``skipped`` (never sent) or ``pending`` (sent, no result yet).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from batchframe.errors import InputError
from batchframe.results.schema import DEFAULT_PREFIX, HARVEST_SCHEMA, RESULT_COLUMNS

#: Maps the aligned results table to a float64 cost array (see :func:`batchframe.results.cost.cost_array`).
Pricer = Callable[[pa.Table], pa.Array]
#: Reads one column (by name) of one harvested table (by its place in the list).
ColumnReader = Callable[[int, str], pa.ChunkedArray]
_KEYS = ["position", "attempt"]
#: The harvested columns a merged frame shows; text, the largest, first (aligning it needs the most room,
#: and there is the most room before any other column is aligned).
_ALIGNED = sorted((name for name in HARVEST_SCHEMA.names if name in RESULT_COLUMNS), key=lambda name: name != "text")

def latest_per_position(tables: Sequence[pa.Table]) -> pa.Table:
    """Concatenate harvested tables and keep, for each position, the row of the highest attempt.

    Examples
    --------
    >>> t = pa.table({"position": [0, 0, 1], "attempt": pa.array([1, 2, 1], pa.int32()), "x": [1, 2, 3]})
    >>> latest_per_position([t]).column("x").to_pylist()
    [2, 3]
    """
    table, rows = latest_rows(tables)
    return table.take(pa.array(rows)) if table.num_rows else table


def latest_rows(tables: Sequence[pa.Table]) -> tuple[pa.Table, np.ndarray]:
    """The tables concatenated (no copy) and, in position order, the row of each position's highest attempt.

    Examples
    --------
    >>> t = pa.table({"position": [1, 0, 0], "attempt": pa.array([1, 1, 2], pa.int32())})
    >>> latest_rows([t])[1].tolist()
    [2, 0]
    """
    table = pa.concat_tables(tables, promote_options="default") if len(tables) != 1 else tables[0]
    if table.num_rows == 0:
        return table, np.zeros(0, dtype=np.int64)
    pos = table.column("position").to_numpy()
    att = table.column("attempt").to_numpy()
    order = np.lexsort((att, pos))  # by position, then attempt; the last of each run wins
    pos_sorted = pos[order]
    last = np.r_[pos_sorted[1:] != pos_sorted[:-1], True]
    return table, order[last]


def combine(n_rows: int, skipped: np.ndarray, tables: Sequence[pa.Table], *, pricer: Pricer | None = None,
            same_as: np.ndarray | None = None, linked: np.ndarray | None = None,
            read_column: ColumnReader | None = None) -> pa.Table:
    """The result columns of all ``n_rows`` rows, in position order.

    Parameters
    ----------
    n_rows : int
    skipped : bool array of length n_rows
        Rows that were never sent.
    tables : list of pa.Table
        Harvested tables (:data:`HARVEST_SCHEMA`); only ``position`` and ``attempt`` when ``read_column`` is given.
    pricer : callable, optional
        Maps the aligned table to a float64 cost array; without it the cost is null.
    same_as : int array of length n_rows, optional
        For a row whose request was identical to an earlier row's (sent once), that row's position; a row's
        own position otherwise (-1 when skipped). Such a row gets that answer, ``reused`` True and cost 0:
        the request was paid once.
    linked : bool array of length n_rows, optional
        Rows whose stored answer was copied from another job of the store, which paid for it: ``reused``
        True and cost 0.
    read_column : callable, optional
        ``read_column(i, name)`` reads column ``name`` of the ``i``-th harvested table (e.g. from its file). Then
        one table's column at a time is read, aligned and dropped, so the results are never held twice.

    Examples
    --------
    >>> out = combine(2, np.array([False, True]), [])
    >>> out.column("status").to_pylist()
    ['pending', 'skipped']
    """
    # The latest rows are found as indices and taken once, together with the alignment: one copy of the columns.
    found, rows = latest_rows([t.select(_KEYS) for t in tables] or [HARVEST_SCHEMA.empty_table().select(_KEYS)])
    take = np.full(n_rows, -1, dtype=np.int64)
    pos = found.column("position").to_numpy()[rows] if len(rows) else np.zeros(0, dtype=np.int64)
    if len(pos) and (pos.min() < 0 or pos.max() >= n_rows):
        raise InputError("a harvested result points outside the frame: the job store is inconsistent")
    take[pos] = rows
    reused = np.zeros(n_rows, dtype=bool)
    if same_as is not None:
        reused = (same_as >= 0) & (same_as != np.arange(n_rows))
        take[reused] = take[same_as[reused]]  # fan out: the answer of the request that was sent
    if linked is not None:
        reused = reused | linked
    if read_column is None:
        read_column = functools.partial(_column_of, tables)
    runs = _runs(take, [t.num_rows for t in tables])
    aligned = pa.table({name: _aligned(read_column, name, runs, len(tables)) for name in _ALIGNED})
    fallback = pc.if_else(pa.array(skipped), pa.scalar("skipped"), pa.scalar("pending"))
    status = pc.coalesce(aligned.column("status"), fallback)
    cost = pricer(aligned) if pricer else pa.nulls(n_rows, pa.float64())
    if reused.any():
        cost = pc.if_else(pa.array(reused), pa.scalar(0.0, pa.float64()), cost)
    columns = {name: aligned.column(name) for name in RESULT_COLUMNS if name not in ("status", "cost_usd", "reused")}
    columns.update(status=status, cost_usd=cost, reused=pa.array(reused))
    return pa.table({name: columns[name] for name in RESULT_COLUMNS})


def _column_of(tables: Sequence[pa.Table], table: int, name: str) -> pa.ChunkedArray:
    return tables[table].column(name)


#: A stretch of output rows [start, stop) taken from one harvested table: (table, start, stop, its row indices).
_Run = tuple[int, int, int, pa.Array]
#: Past this many stretches per table, a column is aligned from all tables at once (one stretch, ``_ALL``).
_MAX_RUNS_PER_TABLE, _ALL = 8, -2


def _runs(take: np.ndarray, sizes: list[int]) -> list[_Run]:
    """Cut the output rows into stretches that each come from one table (a row without a result joins the
    stretch before it). The tables are harvested shards, which hold consecutive rows, so there are about as
    many stretches as shards, and each column can be aligned one table at a time."""
    n = len(take)
    offsets = np.cumsum([0, *sizes])
    which = np.searchsorted(offsets, take, side="right") - 1
    known = np.flatnonzero(take >= 0)
    if not len(known):
        return [(-1, 0, n, pa.nulls(n, pa.int64()))]
    owner = np.maximum.accumulate(np.where(take >= 0, np.arange(n), -1))  # the last row with a result so far
    table = which[np.where(owner >= 0, owner, known[0])]
    cuts = np.flatnonzero(table[1:] != table[:-1]) + 1
    starts, stops = np.r_[0, cuts], np.r_[cuts, n]
    if len(starts) > _MAX_RUNS_PER_TABLE * len(sizes):  # rows answered from all over (fan-out): one stretch
        return [(_ALL, 0, n, pa.array(take, mask=take < 0))]
    local = take - offsets[table]
    return [(int(table[a]), int(a), int(b), pa.array(local[a:b], mask=take[a:b] < 0))
            for a, b in zip(starts, stops, strict=True)]


def _aligned(read_column: ColumnReader, name: str, runs: list[_Run], n_tables: int) -> pa.ChunkedArray:
    """Column ``name`` in output order, reading one table's column at a time."""
    kind = HARVEST_SCHEMA.field(name).type
    if runs[0][0] == _ALL:
        whole = [chunk.cast(kind) for table in range(n_tables) for chunk in read_column(table, name).chunks]
        return pa.chunked_array(whole, type=kind).take(runs[0][3])
    chunks: list[pa.Array | pa.ChunkedArray | None] = [None] * len(runs)
    for table in range(n_tables):
        mine = [i for i, run in enumerate(runs) if run[0] == table]
        if mine:
            # One array, not the file's chunks: a take over chunks would join them again, for every stretch.
            column = _one_array(read_column(table, name))
            for i in mine:
                chunks[i] = column.take(runs[i][3])
            del column  # before the next table's column is read: one table's column is held at a time
    pieces = [pa.nulls(stop - start, kind) if chunk is None else chunk
              for chunk, (_, start, stop, _) in zip(chunks, runs, strict=True)]
    arrays = [a.cast(kind) for p in pieces for a in (p.chunks if isinstance(p, pa.ChunkedArray) else [p])]
    return pa.chunked_array(arrays, type=kind)


def _one_array(column: pa.ChunkedArray) -> pa.Array:
    """The column as one array; a single chunk as it is (``combine_chunks`` would copy it all the same)."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


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
