"""Input rules of request building: what a prompt cell or a parameter may be, checked before anything is sent.

Every refusal is an :class:`~batchframe.errors.InputError` that names the column (or parameter), the row
label and the value, and says what to do. Checks are vectorised over dtypes: Python looks at single cells
only in object columns, or after a failure, to find the first offending row (the fast path pays nothing for
that search). Pure: no network, no disk.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pandas as pd
from pandas.api import types as ptypes

from batchframe.errors import InputError

#: Cells a prompt never renders on its own: the user must say how they become text.
_NOT_TEXT = (bytes, bytearray, memoryview, list, tuple, set, frozenset, dict, bool, np.bool_, np.ndarray)
#: What ``infer_dtype`` calls an object column that holds no such cell and needs no conversion.
_PLAIN_KINDS = ("string", "empty", "integer")
#: Integral floats beyond this are not exact integers; they keep rendering as floats.
_EXACT = 2.0**53
_SHORT = 80


def short(value: Any) -> str:
    """The repr of ``value``, cut to a readable length.

    Examples
    --------
    >>> len(short("x" * 200)), short("x" * 200)[-5:]
    (80, "x...'")
    """
    text = repr(value)
    return text if len(text) <= _SHORT else f"{text[: _SHORT - 4]}...{text[-1]}"


def row(index: pd.Index, pos: int) -> str:
    """The label of the row at ``pos``, as an error message shows it (``'a'``, ``3``; not ``np.int64(3)``)."""
    return short(plain(index[pos]))


def check_frame(df: Any) -> None:
    """A DataFrame with at least one row."""
    if not isinstance(df, pd.DataFrame):
        raise InputError(f"expected a pandas DataFrame, got {type(df).__name__}")
    if len(df) == 0:
        raise InputError(
            "the frame has no rows: nothing to send; pass a DataFrame with at least one row "
            "(check the filter that produced it)"
        )


def column(df: pd.DataFrame, name: str, role: str) -> pd.Series:
    """The column ``name`` of ``df``; missing or duplicated names are refused (``role``: what it is for)."""
    if name not in df.columns:
        raise InputError(f"column {name!r} {role} is not in the frame (columns: {list(df.columns)})")
    series = df[name]
    if isinstance(series, pd.DataFrame):
        raise InputError(f"column {name!r} {role} appears {series.shape[1]} times in the frame; rename the copies")
    return series


def plain(value: Any) -> Any:
    """A numpy scalar as the Python number it means (float32 by its shortest decimal); anything else as is.

    Examples
    --------
    >>> plain(np.int64(16)), plain(np.float32(0.1)), plain("x")
    (16, 0.1, 'x')
    """
    if not isinstance(value, np.generic):
        return value
    if isinstance(value, np.floating) and value.dtype.itemsize < 8:
        return float(str(value))
    return value.item()


def json_default(value: Any) -> Any:
    """orjson's ``default=``: numpy scalars and arrays nested in a parameter become plain JSON values."""
    if isinstance(value, np.generic):
        return plain(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def json_ok(value: Any) -> bool:
    """Whether orjson can send ``value``."""
    try:
        orjson.dumps(value, default=json_default)
    except TypeError:
        return False
    return True


def unsendable(value: Any, where: str, exc: Exception) -> InputError:
    """The error for a parameter value that cannot be sent as JSON."""
    return InputError(f"{where}: value {short(value)} cannot be sent as JSON ({exc}); fix or drop it")


def check_max_tokens(value: Any) -> Any:
    """A scalar ``max_tokens`` as an int >= 1 (numpy integers accepted); floats and bools are refused.

    Examples
    --------
    >>> check_max_tokens(np.int64(16))
    16
    >>> check_max_tokens(16.0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    batchframe.errors.InputError: max_tokens must be a whole number >= 1 (an int), got 16.0 (float): ...
    """
    value = plain(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    whole = isinstance(value, float) and value.is_integer() and value >= 1
    hint = f"pass max_tokens={int(value)}" if whole else "pass an int such as max_tokens=1024"
    raise InputError(
        f"max_tokens must be a whole number >= 1 (an int), got {short(value)} ({type(value).__name__}): {hint}, "
        "or the name of a column of whole numbers"
    )


def check_max_tokens_values(series: pd.Series, what: str, index: pd.Index) -> None:
    """Refuse a per-row ``max_tokens`` value that is not a whole number >= 1 (NaN is checked when sending).

    A float column is accepted when its values are whole: that is how pandas stores an int column with NaN.
    """
    na = series.isna().to_numpy(dtype=bool)
    dtype = series.dtype
    if ptypes.is_bool_dtype(dtype) or not (ptypes.is_numeric_dtype(dtype) or ptypes.is_object_dtype(dtype)):
        bad = ~na
    elif ptypes.is_object_dtype(dtype):
        bad = np.fromiter((not m and not _whole(v) for v, m in zip(series.tolist(), na, strict=True)), bool, len(na))
    else:
        arr = series.to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            bad = ~na & ~((arr >= 1) & (arr == np.trunc(arr)) & np.isfinite(arr))
    if bad.any():
        pos = int(np.argmax(bad))
        value = short(plain(series.iloc[pos]))
        raise InputError(
            f"max_tokens from {what}, row {row(index, pos)}: value {value} is not a whole number >= 1; "
            "set it to a number of tokens (e.g. 1024) or drop the row"
        )


def _whole(value: Any) -> bool:
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.integer | np.floating):
        return False
    return bool(np.isfinite(value) and value >= 1 and float(value).is_integer())


def check_aligned(series: pd.Series, index: pd.Index, key: str) -> None:
    """A Series given for a parameter must carry exactly the frame's index (labels and order)."""
    if series.index is index or series.index.equals(index):
        return
    if len(series) != len(index):
        detail = f"it has {len(series)} rows, the frame {len(index)}"
    else:
        pos = next(i for i, (a, b) in enumerate(zip(series.index, index, strict=True)) if not _same(a, b))
        detail = f"at row {row(index, pos)} of the frame it has label {short(plain(series.index[pos]))}"
    raise InputError(
        f"the Series given for {key} does not match the frame's index ({detail}); build it from the frame "
        f"(e.g. df['n'] * 2) or align it with series.reindex(df.index)"
    )


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) or (pd.isna(a) is True and pd.isna(b) is True)
    except (TypeError, ValueError):
        return False


def text_values(series: pd.Series, column: str, index: pd.Index) -> list:
    """The cells of a prompt column or template field, ready to format; non-text cells are refused.

    Text stays as is. Numbers render naturally: a whole float (an int column with NaN is float64) renders
    ``1``, not ``1.0``. Bytes, containers, bools and arrays are refused: the user converts them on purpose.

    Examples
    --------
    >>> text_values(pd.Series([1.0, np.nan, 1.5]), "n", pd.RangeIndex(3))
    [1, nan, 1.5]
    """
    dtype = series.dtype
    if ptypes.is_string_dtype(dtype) and not ptypes.is_object_dtype(dtype):
        return series.tolist()
    if isinstance(dtype, pd.CategoricalDtype):
        return text_values(series.astype(object), column, index)
    if ptypes.is_bool_dtype(dtype):
        _refuse_cell(series, ~series.isna().to_numpy(dtype=bool), column, index)
    if ptypes.is_float_dtype(dtype):
        return _natural_floats(series)
    if not ptypes.is_object_dtype(dtype) or ptypes.infer_dtype(series, skipna=True) in _PLAIN_KINDS:
        return series.tolist()
    return _object_values(series, column, index)


def _object_values(series: pd.Series, column: str, index: pd.Index) -> list:
    types = series.map(type)
    kinds = types.unique().tolist()
    refused = [t for t in kinds if issubclass(t, _NOT_TEXT)]
    if refused:
        _refuse_cell(series, types.isin(refused).to_numpy(dtype=bool), column, index)
    values = series.tolist()
    if any(issubclass(t, float | np.floating) for t in kinds):
        values = [_natural(v) for v in values]
    return values


def _refuse_cell(series: pd.Series, bad: np.ndarray, column: str, index: pd.Index) -> None:
    if not bad.any():
        return
    pos = int(np.argmax(bad))
    value = plain(series.iloc[pos])
    raise InputError(
        f"column {column!r}, row {row(index, pos)}: value {short(value)} ({type(value).__name__}) is not text; "
        f"a prompt takes text or numbers. Convert the column on purpose, e.g. "
        f"df[{column!r}] = df[{column!r}].astype(str), or drop the row"
    )


def _natural_floats(series: pd.Series) -> list:
    arr = series.to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        whole = np.isfinite(arr) & (np.abs(arr) < _EXACT) & (arr == np.trunc(arr))
    values = [float(s) for s in series.to_numpy().astype(str)] if series.dtype == np.float32 else series.tolist()
    if not whole.any():
        return values
    ints = np.where(whole, arr, 0).astype(np.int64).tolist()
    return [i if w else v for i, w, v in zip(ints, whole.tolist(), values, strict=True)]


def _natural(value: Any) -> Any:
    if not isinstance(value, float | np.floating):
        return value
    number = float(value)
    return int(number) if number.is_integer() and abs(number) < _EXACT else plain(value)


def blank_rows(fields: list[pd.Series]) -> np.ndarray:
    """Rows where every field is NaN/None or blank text: a template over nothing is not a prompt.

    Field by field, on the rows still in question only, so the usual case stops after one column.

    Examples
    --------
    >>> blank_rows([pd.Series(["", "a", None]), pd.Series([" ", "", np.nan])]).tolist()
    [True, False, True]
    """
    rows = np.arange(len(fields[0]))
    for series in fields:
        rows = rows[_blank(series.iloc[rows])]
        if not len(rows):
            break
    out = np.zeros(len(fields[0]), dtype=bool)
    out[rows] = True
    return out


def _blank(series: pd.Series) -> np.ndarray:
    na = series.isna().to_numpy(dtype=bool)
    dtype = series.dtype
    if ptypes.is_string_dtype(dtype) and not ptypes.is_object_dtype(dtype):
        return na | series.str.strip().eq("").fillna(False).to_numpy(dtype=bool)
    if not ptypes.is_object_dtype(dtype):
        return na
    return na | np.fromiter((isinstance(v, str) and not v.strip() for v in series.tolist()), bool, len(na))


def lone_surrogate(text: str) -> int | None:
    """Position of the first lone surrogate of ``text`` (it cannot be encoded as UTF-8), or None.

    Examples
    --------
    >>> lone_surrogate("ok"), lone_surrogate("a\\ud800b")
    (None, 1)
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def unencodable(df: pd.DataFrame, names: list[str], texts: list, positions: list[int]) -> InputError | None:
    """The error for a prompt that orjson refused: the first row, and the column of ``names``, holding a lone
    surrogate (or the template itself); None if no prompt text holds one."""
    pos = next((p for p in positions if lone_surrogate(texts[p]) is not None), None)
    if pos is None:
        return None
    for name in names:
        value = df[name].iloc[pos]
        if isinstance(value, str) and (at := lone_surrogate(value)) is not None:
            return InputError(
                f"column {name!r}, row {row(df.index, pos)}: value {short(value)} has a lone surrogate at character "
                f"{at}, which cannot be encoded as UTF-8 JSON; repair the text, e.g. df[{name!r}] = "
                f"df[{name!r}].str.encode('utf-8', 'replace').str.decode('utf-8')"
            )
    return InputError("the prompt template has a lone surrogate, which cannot be encoded as UTF-8 JSON; repair it")


def format_error(
    index: pd.Index, placeholders: list, fields: list[str], values: list[list], missing: np.ndarray, exc: Exception
) -> InputError:
    """The error for a template whose format spec fails: the first row and field that fail, found again."""
    for pos in np.flatnonzero(~missing).tolist():
        for name, conversion, spec in placeholders:
            value = values[fields.index(name)][pos]
            try:
                format(_convert(value, conversion), spec)
            except Exception as err:  # a cell's __format__ may raise anything
                field = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
                return InputError(
                    f"prompt field {field} fails on column {name!r}, row {row(index, pos)}, value {short(value)}: "
                    f"{err}; change the format spec, or convert the column first "
                    f"(e.g. df[{name!r}] = df[{name!r}].astype(int))"
                )
    return InputError(f"the prompt template cannot be formatted: {exc}")


def _convert(value: Any, conversion: str | None) -> Any:
    convert: dict[str, Any] = {"r": repr, "s": str, "a": ascii}
    return convert[conversion](value) if conversion else value
