"""Merging result columns into the user's frame: aligned by position when the index is the submitted one,
by label when both indexes are unique, refused otherwise; a column-name clash is an error, never an overwrite."""

from __future__ import annotations

import pandas as pd

from batchframe.errors import InputError


def merge_into(df: pd.DataFrame, results: pd.DataFrame) -> pd.DataFrame:
    """``df`` plus the result columns. A name clash is an error, never an overwrite.

    Alignment: when ``df`` has the submitted index (same labels, same order), columns are placed by
    position, so duplicate labels are fine. Otherwise, with unique labels on both sides, by label;
    anything else is refused.

    Examples
    --------
    >>> df = pd.DataFrame({"q": ["hi"]}, index=["a"])
    >>> res = pd.DataFrame({"llm_text": ["hello"], "llm_status": ["succeeded"]}, index=["a"])
    >>> list(merge_into(df, res).columns)
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
