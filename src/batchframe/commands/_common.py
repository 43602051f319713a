"""Helpers shared by the job subcommands: reading a table, printing a status."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import InputError
from ..status import JobStatus


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


def write_table(frame: pd.DataFrame, path: str) -> None:
    """Write ``frame`` (index included) as .csv or .parquet, by the path's suffix."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        frame.to_csv(path)
    elif suffix == ".parquet":
        frame.to_parquet(path)
    else:
        raise InputError(f"cannot write {path!r}: use .parquet or .csv")


def describe(status: JobStatus) -> str:
    """One line per shard plus a total, for the terminal.

    Examples
    --------
    >>> print(describe(job.status))  # doctest: +SKIP
    job reviews  provider=local  model=claude-haiku-4-5  state=ended  rows=40 skipped=0
    """
    lines = [
        f"job {status.name}  provider={status.provider}  model={status.model}  state={status.state}  "
        f"rows={status.n_rows} skipped={status.n_skipped}"
    ]
    for s in status.shards:
        counts = " ".join(f"{k}={v}" for k, v in s.counts.items())
        lines.append(f"  attempt {s.attempt} shard {s.index}: {s.batch_id or '-'} {s.processing_status} {counts}")
    total = " ".join(f"{k}={v}" for k, v in status.counts.items())
    lines.append(f"  total: {total}")
    return "\n".join(lines)
