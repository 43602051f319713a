"""Row labels in the job store, kept apart from batchframe's own columns.

An index level may be named anything, ``shard``, ``status`` or ``position`` included, so the store never
writes a level under its own name: levels go to Parquet as pandas' reserved ``__index_level_N__`` columns,
and their names travel as JSON in the file's ``batchframe`` metadata (``index_names``). Reading puts the
names back. Files written before this kept the names in the columns; they read as they always did.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pyarrow as pa

#: The ``batchframe`` metadata key holding the index level names.
INDEX_NAMES = "index_names"


def labels_table(index: pd.Index, columns: dict[str, Any]) -> tuple[pa.Table, dict[str, Any]]:
    """``columns`` (arrays, placed by position) as an Arrow table carrying ``index`` under reserved names, and
    the metadata that names it.

    Examples
    --------
    >>> table, meta = labels_table(pd.Index(["a", "b"], name="shard"), {"shard": [0, 1]})
    >>> table.column_names, meta
    (['shard', '__index_level_0__'], {'index_names': ['shard']})
    """
    frame = pd.DataFrame(columns, index=index.set_names([None] * index.nlevels))
    return pa.Table.from_pandas(frame, preserve_index=True), index_names(index)


def index_names(index: pd.Index) -> dict[str, Any]:
    """The ``batchframe`` metadata entry that names ``index``'s levels.

    Examples
    --------
    >>> index_names(pd.MultiIndex.from_tuples([(1, 2)], names=["body", None]))
    {'index_names': ['body', None]}
    """
    return {INDEX_NAMES: [name_to_json(name) for name in index.names]}


def read_labels(table: pa.Table) -> pd.Index:
    """The index a table written by :func:`labels_table` (or an older store file) carries, with its names.

    Examples
    --------
    >>> table, meta = labels_table(pd.Index(["a", "b"], name="shard"), {"shard": [0, 1]})
    >>> table = table.replace_schema_metadata({**table.schema.metadata, b"batchframe": json.dumps(meta).encode()})
    >>> index = read_labels(table)
    >>> index.tolist(), index.name
    (['a', 'b'], 'shard')
    """
    index = table.to_pandas().index
    meta = json.loads((table.schema.metadata or {}).get(b"batchframe", b"{}"))
    if INDEX_NAMES in meta:
        index = index.set_names([name_from_json(name) for name in meta[INDEX_NAMES]])
    return index


def name_to_json(name: Any) -> Any:
    if name is None or isinstance(name, str | int | float | bool):
        return name
    if isinstance(name, tuple):
        return [name_to_json(part) for part in name]
    return str(name)


def name_from_json(name: Any) -> Any:
    return tuple(name_from_json(part) for part in name) if isinstance(name, list) else name
