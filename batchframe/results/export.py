"""Parquet files with batchframe's key-value metadata, written atomically: the merged frame a user exports,
and (through :class:`batchframe.jobs.store.Store`) every table of the job store.

Every write goes to a temporary file in the target's folder and is renamed over the target, so a crash
leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

#: The Parquet key-value metadata key that holds batchframe's JSON metadata.
METADATA_KEY = b"batchframe"


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed over it when the block ends without error.

    Examples
    --------
    >>> target = Path(tempfile.mkdtemp()) / "x.txt"
    >>> with replacing(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> target.read_text()
    'done'
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(name)
        os.replace(name, path)
    finally:
        if os.path.exists(name):
            os.unlink(name)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, fsync and a rename.

    Examples
    --------
    >>> atomic_write_bytes(Path(tempfile.mkdtemp()) / "x.json", b"{}")
    """
    with replacing(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def write_table(path: str | os.PathLike, table: pa.Table, metadata: dict[str, Any] | None = None, *,
                compact: bool = False) -> None:
    """Write a Parquet file atomically, adding ``metadata`` as JSON under the ``batchframe`` key.

    A file of the job store (the default) is written fast: lz4, and no dictionary for text and bytes columns
    (request bodies, custom_ids, digests and labels are mostly distinct, so a dictionary would only be built
    and dropped again); writing the requests is on the path of every submit. ``compact=True`` (a user's
    export) writes zstd with dictionaries: smaller, slower.

    Examples
    --------
    >>> path = Path(tempfile.mkdtemp()) / "t.parquet"
    >>> write_table(path, pa.table({"x": [1]}), metadata={"job": "j"})
    >>> table_metadata(path)
    {'job': 'j'}
    """
    if metadata is not None:
        meta = dict(table.schema.metadata or {})
        meta[METADATA_KEY] = json.dumps(metadata, default=str).encode()
        table = table.replace_schema_metadata(meta)
    options: dict[str, Any] = {"compression": "zstd"} if compact else {
        "compression": "lz4", "use_dictionary": [f.name for f in table.schema if not _distinct_values(f.type)]}
    with replacing(Path(path)) as tmp:
        pq.write_table(table, tmp, **options)


def _distinct_values(kind: pa.DataType) -> bool:
    """Text and bytes: in a store table, ids, bodies, digests and labels, whose values rarely repeat."""
    return (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind)
            or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind))


def write_frame(frame: pd.DataFrame, path: str | os.PathLike, metadata: dict[str, Any]) -> None:
    """Write ``frame`` (index preserved) atomically with ``metadata`` (job, provider, model, batch ids...).

    Examples
    --------
    >>> path = Path(tempfile.mkdtemp()) / "out.parquet"
    >>> write_frame(pd.DataFrame({"a": [1]}, index=["x"]), path, {"job": "reviews"})
    >>> pd.read_parquet(path).index.tolist(), table_metadata(path)["job"]
    (['x'], 'reviews')
    """
    write_table(path, pa.Table.from_pandas(frame, preserve_index=True), metadata, compact=True)


def table_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``batchframe`` key-value metadata of a Parquet file batchframe wrote.

    Examples
    --------
    >>> table_metadata("results.parquet")["job"]  # doctest: +SKIP
    'reviews'
    """
    return schema_metadata(pq.read_schema(path))


def schema_metadata(schema: pa.Schema) -> dict[str, Any]:
    """The ``batchframe`` key-value metadata of a Parquet schema (a file already open: no second read).

    Examples
    --------
    >>> schema_metadata(pa.schema([], metadata={METADATA_KEY: b'{"job": "j"}'}))
    {'job': 'j'}
    """
    return json.loads((schema.metadata or {}).get(METADATA_KEY, b"{}"))
