"""One shard's results file, written block by block as its results stream in.

Each parsed block of result lines is matched to rows through the persisted mapping (a line the shard never
sent lands on no row), deduplicated by custom_id (a line downloaded twice counts once: the first wins), given
its rows' positions, attempt, batch id and index labels (under reserved names, see
:mod:`batchframe.jobs.labels`), and appended as one Parquet row group. Only one block is held at a time, so a
harvest's memory does not grow with the shard. The caller writes to a temporary file and renames it over the
shard's results file only once every line arrived (:func:`batchframe.jobs.harvest.harvest_shard`).
:class:`ResultsFiles` reads them back a column at a time, so merging never holds the results twice.
"""

from __future__ import annotations

import json
import tempfile  # noqa: F401  (the doctests use it)
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batchframe.errors import JobError
from batchframe.jobs.labels import labels_table
from batchframe.requests.keys import named_positions
from batchframe.results.cost import PriceLookup, total_cost
from batchframe.results.export import METADATA_KEY
from batchframe.results.memory import release_unused
from batchframe.results.schema import HARVEST_SCHEMA, RESULT_SCHEMA

#: Token totals recorded on a harvested shard.
TOKEN_TOTALS = ("input_tokens", "output_tokens")
#: Columns with few distinct values, dictionary-encoded in the file; the others (text, ids) are not, as their
#: dictionaries would only be dropped again and cost time on both sides. lz4: fast to write and to read.
_DICTIONARY = ["status", "stop_reason", "model", "error_type", "error_message", "batch_id"]
_COMPRESSION = "lz4"


class ResultsFiles:
    """Harvested shards' results files, read column by column (each file's footer read once).

    A file is opened for each read and dropped after it: a Parquet reader keeps the decoding buffers of the
    last column it read (about a third of that column) for as long as it lives, and readers kept open on
    every shard would hold that much per shard.

    Examples
    --------
    >>> path = Path(tempfile.mkdtemp()) / "s.parquet"
    >>> pq.write_table(HARVEST_SCHEMA.empty_table(), path)
    >>> with ResultsFiles([path, path]) as files:
    ...     files.column(1, "text").type, [t.column_names for t in files.keys()]
    (DataType(string), [['position', 'attempt'], ['position', 'attempt']])
    """

    def __init__(self, paths: list[Path]):
        self._paths = list(paths)
        try:
            self._footers = [pq.read_metadata(path) for path in self._paths]
        except FileNotFoundError as exc:
            raise JobError(f"missing file {str(exc.filename)!r} in the job store") from exc

    def __enter__(self) -> ResultsFiles:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Nothing stays open between reads; kept so that callers can use the files as a context."""

    def keys(self) -> list[pa.Table]:
        """The ``position`` and ``attempt`` columns of every file (what aligning needs first)."""
        return [self._read(table, ["position", "attempt"]) for table in range(len(self._paths))]

    def column(self, table: int, name: str) -> pa.ChunkedArray:
        """One :data:`HARVEST_SCHEMA` column of the ``table``-th file."""
        release_unused()  # what aligning the column before freed, so that this read reuses it
        return self._read(table, [name]).column(0)

    def _read(self, table: int, columns: list[str]) -> pa.Table:
        try:
            with pq.ParquetFile(self._paths[table], metadata=self._footers[table]) as file:
                return file.read(columns=columns, use_threads=False)
        except FileNotFoundError as exc:
            raise JobError(f"missing file {str(exc.filename)!r} in the job store") from exc


def read_columns(path: Path, columns: list[str]) -> pa.Table:
    """Only ``columns`` of a Parquet file of the store (no index labels: reading them costs more than the rest).

    Examples
    --------
    >>> path = Path(tempfile.mkdtemp()) / "t.parquet"
    >>> pq.write_table(pa.table({"a": [1], "b": ["x"]}), path)
    >>> read_columns(path, ["b"]).column_names
    ['b']
    """
    try:
        with pq.ParquetFile(path) as file:
            table = file.read(columns=columns, use_threads=False)
    except FileNotFoundError as exc:
        raise JobError(f"missing file {str(path)!r} in the job store") from exc
    release_unused()  # the read's decoding buffers (twice the columns' size), before anything else allocates
    return table


def read_labelled(path: Path, columns: list[str]) -> pa.Table:
    """Only ``columns`` of a Parquet file of the store, with the index columns its pandas metadata names.

    Read on the calling thread: reader threads would each keep the memory they decompressed into.

    Examples
    --------
    >>> path = Path(tempfile.mkdtemp()) / "t.parquet"
    >>> pq.write_table(pa.Table.from_pandas(pd.DataFrame({"a": [1], "b": ["x"]}, index=["k"])), path)
    >>> read_labelled(path, ["a"]).column_names
    ['a', '__index_level_0__']
    """
    try:
        table = pq.read_table(path, columns=columns, use_pandas_metadata=True, use_threads=False)
    except FileNotFoundError as exc:
        raise JobError(f"missing file {str(path)!r} in the job store") from exc
    release_unused()  # as in read_columns
    return table


def _labelled_schema(labels: pd.Index, fields: list[pa.Field]) -> tuple[pa.Table, pa.Schema, dict[str, Any]]:
    """The label columns of a shard's rows, and the schema (pandas metadata included) of its results file.

    The schema is that of the labels beside empty ``fields``. Converting as many empty rows as labels costs
    more than the labels themselves, so when the labels' types do not depend on their values (not object
    dtype, not a RangeIndex, whose metadata holds its bounds) one row decides it; else all of them do.
    """
    if len(labels) and not isinstance(labels, pd.RangeIndex) and not _object_levels(labels):
        table, names = labels_table(labels, {})
        head, _ = labels_table(labels[:1], {f.name: pd.arrays.ArrowExtensionArray(pa.nulls(1, f.type))
                                            for f in fields})
        if head.schema.remove_metadata() == pa.schema([*fields, *table.schema]).remove_metadata():
            return table, head.schema, names
    empty = {f.name: pd.arrays.ArrowExtensionArray(pa.nulls(len(labels), f.type)) for f in fields}
    table, names = labels_table(labels, empty)
    return table.drop_columns([f.name for f in fields]), table.schema, names


def _object_levels(labels: pd.Index) -> bool:
    levels = labels.levels if isinstance(labels, pd.MultiIndex) else [labels]
    return any(level.dtype == object for level in levels)


class ShardSink:
    """Writes one shard's parsed result blocks (:data:`RESULT_SCHEMA`) to Parquet and keeps its totals.

    Parameters
    ----------
    known, positions : the custom_ids the shard sent and their row positions (the persisted mapping)
    labels : the index labels of those rows, in the same order
    attempt, batch_id : recorded on every row
    price_for : the provider's price table (for the shard's cost)
    metadata : the file's ``batchframe`` metadata

    Examples
    --------
    >>> sink = ShardSink(pa.array(["r0", "r1"]), np.array([0, 1]), pd.Index(["a", "b"]), attempt=1,
    ...                  batch_id="b1", price_for={}.get, metadata={"job": "j"})
    >>> block = pa.Table.from_pylist([{"custom_id": c, "status": "expired"} for c in ("r1", "zz", "r1")],
    ...                              schema=RESULT_SCHEMA)
    >>> path = Path(tempfile.mkdtemp()) / "s.parquet"
    >>> with sink.open(path):
    ...     sink.write(block)
    1
    >>> pq.read_table(path).to_pandas()["position"].to_dict(), sink.summary()["result_counts"]
    ({'b': 1}, {'expired': 1})
    """

    def __init__(self, known: pa.Array, positions: np.ndarray, labels: pd.Index, *, attempt: int,
                 batch_id: str, price_for: PriceLookup, metadata: dict[str, Any], extra: Sequence[pa.Field] = ()):
        self.known, self.positions, self.attempt, self.batch_id = known, positions, attempt, batch_id
        self.price_for = price_for
        self.seen = np.zeros(len(known), dtype=bool)
        self._order = np.argsort(positions, kind="stable")
        self._lookup: pd.Index | None = None
        # The schema comes from all the shard's labels at once, so every block gets the same column types.
        # ``extra``: columns some results carry beyond RESULT_SCHEMA (an embeddings job's vectors), kept too.
        self.extra = list(extra)
        fields = [*HARVEST_SCHEMA, *self.extra]
        self.labels, schema, names = _labelled_schema(labels, fields)
        meta = json.dumps({**metadata, **names}, default=str).encode()
        self.schema = schema.with_metadata({**(schema.metadata or {}), METADATA_KEY: meta})
        self.counts: Counter[str] = Counter()
        self.tokens = dict.fromkeys(TOKEN_TOTALS, 0)
        self.cost: float | None = None
        self.n_results = 0
        self._writer: pq.ParquetWriter | None = None

    @contextmanager
    def open(self, path: Path) -> Iterator[ShardSink]:
        """Write to ``path`` until the block ends (then the file is complete and closed)."""
        self._writer = pq.ParquetWriter(path, self.schema, compression=_COMPRESSION, use_dictionary=_DICTIONARY)
        try:
            yield self
        finally:
            self._writer.close()
            self._writer = None

    def write(self, block: pa.Table) -> int:
        """Append the lines of ``block`` not seen before and sent by this shard; returns how many."""
        which = self._rows(block.column("custom_id"))
        keep = np.flatnonzero(which >= 0)
        keep = keep[~self.seen[which[keep]]]
        keep = np.sort(keep[np.unique(which[keep], return_index=True)[1]])  # the first of a repeated id
        if not len(keep):
            return 0
        rows = which[keep]
        self.seen[rows] = True
        table = block.take(pa.array(keep)) if len(keep) < block.num_rows else block
        self._count(table)
        extra = [pa.array(self.positions[rows], pa.int64()), pa.array(np.full(len(rows), self.attempt, np.int32)),
                 pa.repeat(pa.scalar(self.batch_id, pa.string()), len(rows))]
        labels = self.labels.take(pa.array(rows)).columns
        if self._writer is None:
            raise RuntimeError("ShardSink.write outside ShardSink.open")
        kept = [table.column(f.name) if f.name in table.column_names else pa.nulls(len(rows), f.type)
                for f in self.extra]
        columns = [*(table.column(f.name) for f in RESULT_SCHEMA), *extra, *kept, *labels]
        self._writer.write_table(pa.Table.from_arrays(columns, schema=self.schema))
        return len(rows)

    def _rows(self, ids: pa.ChunkedArray) -> np.ndarray:
        """For each id, its index in the persisted mapping, or -1 (an id this shard never sent)."""
        named = named_positions(ids, self.attempt)
        if named is None or not len(self.known):  # ids of another form: look each one up in the mapping
            if self._lookup is None:
                self._lookup = pd.Index(self.known.to_numpy(zero_copy_only=False))
            return self._lookup.get_indexer(ids.to_numpy())
        # The row an id names, found by position, then checked against the id persisted for that row.
        sorted_positions = self.positions[self._order]
        where = self._order[np.minimum(np.searchsorted(sorted_positions, named), len(self._order) - 1)]
        same = pc.equal(self.known.take(pa.array(where)), ids).to_numpy(zero_copy_only=False)
        return np.where(same & (self.positions[where] == named), where, -1)

    def _count(self, table: pa.Table) -> None:
        self.n_results += table.num_rows
        counts = pc.value_counts(table.column("status")).to_pylist()
        self.counts.update({c["values"]: c["counts"] for c in counts if c["values"] is not None})
        for column in TOKEN_TOTALS:
            self.tokens[column] += int(pc.sum(table.column(column)).as_py() or 0)
        cost = total_cost(table, self.price_for)
        if cost is not None:
            self.cost = (self.cost or 0.0) + cost

    def summary(self) -> dict[str, Any]:
        """The fields recorded on the harvested shard: ``n_results``, ``result_counts``, tokens, ``cost_usd``.

        Examples
        --------
        >>> ShardSink(pa.array(["r0"]), np.array([0]), pd.Index(["a"]), attempt=1, batch_id="b",
        ...           price_for={}.get, metadata={}).summary()["n_results"]
        0
        """
        return {"n_results": self.n_results, "result_counts": dict(self.counts), **self.tokens,
                "cost_usd": self.cost}
