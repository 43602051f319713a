"""Merging result columns into the user's frame, proving every row.

A row gets an answer only if its label is in the job *and* the values the request was built from (the
columns the prompt and per-row parameters read) are still the ones that were sent: their hash equals the
one stored at submit. Otherwise the row is ``stale`` (changed since it was sent) or ``not_submitted`` (a
label the job does not know), never another row's answer. If no row of the frame is proven, merge raises.

Alignment: by position when the frame has the submitted index (same labels, same order; duplicates fine),
else by label when both indexes are unique; anything else is refused. A column-name clash is an error.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from batchframe.errors import InputError

#: Row statuses merge adds to the result schema's.
STALE, NOT_SUBMITTED = "stale", "not_submitted"
#: Rows hashed at a time by :func:`input_hashes` (it bounds the memory hashing takes, not the result).
HASH_ROWS = 50_000


def input_hashes(df: pd.DataFrame, columns: list) -> np.ndarray:
    """One uint64 per row over the values of ``columns`` (the inputs of its request), index excluded.

    Examples
    --------
    >>> a = input_hashes(pd.DataFrame({"q": ["x", "y"], "other": [1, 2]}), ["q"])
    >>> b = input_hashes(pd.DataFrame({"q": ["x", "z"], "other": [9, 9]}), ["q"])
    >>> (a == b).tolist()
    [True, False]
    """
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(
            f"the frame has no column {missing[0]!r}, which the job's requests were built from; merge the "
            "frame you submitted (or one with the same columns)"
        )
    if not columns:  # a fixed prompt: every row's request is the same
        return np.zeros(len(df), dtype=np.uint64)
    frame = df[columns]
    # A row's hash depends on that row alone, so rows are hashed in slices: hashing text columns makes a Python
    # object per cell, and a slice at a time keeps that to HASH_ROWS of them.
    out = np.empty(len(frame), dtype=np.uint64)
    for start in range(0, len(frame), HASH_ROWS):
        out[start : start + HASH_ROWS] = _hash_rows(frame.iloc[start : start + HASH_ROWS])
    return out


def _hash_rows(frame: pd.DataFrame) -> np.ndarray:
    try:
        return pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64)
    except TypeError:  # cells pandas cannot hash (bytes mixed with paths, ...): hash their text form
        return pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy(dtype=np.uint64)


def merge_into(
    df: pd.DataFrame,
    results: pd.DataFrame,
    *,
    prefix: str,
    current: np.ndarray | None = None,
    submitted: np.ndarray | None = None,
    job: str = "the job",
) -> pd.DataFrame:
    """``df`` plus the result columns (under ``prefix``), each row proven (see the module docstring).

    Parameters
    ----------
    df : DataFrame
    results : DataFrame
        One row per submitted row, indexed like the submitted frame (:meth:`batchframe.Job.results`).
    prefix : str
        The result columns' prefix (its ``status`` column gets ``stale`` / ``not_submitted``).
    current, submitted : array of uint64, optional
        :func:`input_hashes` of ``df``'s rows and of the submitted rows; without them rows are matched
        by label only (a job stored before hashes were kept).

    Examples
    --------
    >>> df = pd.DataFrame({"q": ["hi", "new"]}, index=["a", "b"])
    >>> res = pd.DataFrame({"llm_text": ["hello"], "llm_status": ["succeeded"]}, index=["a"])
    >>> merge_into(df, res, prefix="llm_")["llm_status"].tolist()
    ['succeeded', 'not_submitted']
    """
    clash = [c for c in results.columns if c in df.columns]
    if clash:
        raise InputError(
            f"result column(s) {clash} already exist in the frame; choose another prefix "
            "(merge(job, prefix=...)) or drop them first"
        )
    take = _alignment(df.index, results.index)
    known = take >= 0
    proven = known.copy()
    if current is not None and submitted is not None:
        proven[known] = current[known] == submitted[take[known]]
    if not proven.any():
        raise InputError(_nothing_matches(job, len(df), int((~known).sum()), int((known & ~proven).sum())))
    return _assemble(df, results, take, known, proven, f"{prefix}status")


def _alignment(index: pd.Index, submitted: pd.Index) -> np.ndarray:
    """For each row of ``index``, the position of its submitted row, or -1."""
    if index.equals(submitted):
        return np.arange(len(index))
    if not (index.is_unique and submitted.is_unique):
        raise InputError(
            "the frame's index differs from the submitted one and has duplicate labels, so rows "
            "cannot be matched; merge into the frame you submitted (same rows, same order)"
        )
    return submitted.get_indexer(index)


def _assemble(df: pd.DataFrame, results: pd.DataFrame, take: np.ndarray, known: np.ndarray, proven: np.ndarray,
              status_column: str) -> pd.DataFrame:
    # Each result column is placed with one take (an unproven row takes -1: missing), or not copied at all when
    # the frame is the submitted one and every row is proven: merging must not hold the results twice over.
    out = df.copy(deep=False)
    identity = bool(proven.all()) and len(take) == len(results) and bool((take == np.arange(len(take))).all())
    rows = np.where(proven, take, -1)
    for name in results.columns:
        column = results[name].array
        out[name] = column if identity else column.take(rows, allow_fill=True)
    if status_column in results.columns and not proven.all():
        status = np.where(known, STALE, NOT_SUBMITTED).astype(object)
        out[status_column] = out[status_column].where(proven, pd.Series(status, index=out.index))
    return out


def _nothing_matches(job: str, n_rows: int, unknown: int, changed: int) -> str:
    return (
        f"no row of this frame matches {job}: {unknown} of its {n_rows} row(s) have labels the job does not know "
        f"and {changed} changed since they were submitted, so no answer can be placed without guessing. Merge the "
        "frame you submitted, or submit this one"
    )
