"""Reading and writing the tables the job subcommands take and give (.parquet, .csv, .jsonl)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from batchframe.errors import InputError
from batchframe.results.export import write_frame


def read_table(path: str, index_col: str | None = None) -> pd.DataFrame:
    """A frame from .parquet, .csv or .jsonl (index from ``index_col`` when given).

    Examples
    --------
    >>> read_table("reviews.csv", index_col="id")  # doctest: +SKIP
    """
    suffix = Path(path).suffix.lower()
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif suffix == ".csv":
            frame = pd.read_csv(path)
        elif suffix in (".jsonl", ".ndjson"):
            frame = pd.read_json(path, lines=True)
        else:
            raise InputError(f"cannot read {path!r}: use a .parquet, .csv or .jsonl file")
    except FileNotFoundError as exc:
        raise InputError(f"no such file: {path!r}") from exc
    if index_col:
        if index_col not in frame.columns:
            raise InputError(f"--index-col {index_col!r} is not a column of {path!r}")
        frame = frame.set_index(index_col)
    return frame


def write_table(frame: pd.DataFrame, path: str, metadata: dict[str, Any]) -> None:
    """Write ``frame`` (index included) as .csv or .parquet (with the job's ``metadata``), by the suffix."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        frame.to_csv(path)
    elif suffix == ".parquet":
        write_frame(frame, path, metadata)
    else:
        raise InputError(f"cannot write {path!r}: use .parquet or .csv")
