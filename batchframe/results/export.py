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


def write_table(path: str | os.PathLike, table: pa.Table, metadata: dict[str, Any] | None = None) -> None:
    """Write a Parquet file atomically (zstd), adding ``metadata`` as JSON under the ``batchframe`` key.

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
    with replacing(Path(path)) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def write_frame(frame: pd.DataFrame, path: str | os.PathLike, metadata: dict[str, Any]) -> None:
    """Write ``frame`` (index preserved) atomically with ``metadata`` (job, provider, model, batch ids...).

    Examples
    --------
    >>> path = Path(tempfile.mkdtemp()) / "out.parquet"
    >>> write_frame(pd.DataFrame({"a": [1]}, index=["x"]), path, {"job": "reviews"})
    >>> pd.read_parquet(path).index.tolist(), table_metadata(path)["job"]
    (['x'], 'reviews')
    """
    write_table(path, pa.Table.from_pandas(frame, preserve_index=True), metadata)


def table_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``batchframe`` key-value metadata of a Parquet file batchframe wrote.

    Examples
    --------
    >>> table_metadata("results.parquet")["job"]  # doctest: +SKIP
    'reviews'
    """
    raw = pq.read_schema(path).metadata or {}
    return json.loads(raw.get(METADATA_KEY, b"{}"))
