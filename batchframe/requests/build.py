"""DataFrame -> provider-neutral requests: the Messages parameters of every row, serialized once, with its
custom_id. Pure: no network, no disk except reading document files. A provider's codec frames them.

The prompt is a column name or a template over columns (``"Summarize {title}: {body}"``). Any Messages
parameter passes through; a parameter takes a per-row value from a column when given as ``col("name")``
(or, for the numeric ``max_tokens``/``temperature``/``top_p``/``top_k``, simply as the column's name), or
from a Series aligned to the frame's index. Rows whose prompt is NaN, None or blank (for a template: any
field NaN/None, every field blank, or a blank rendering) are not sent; they are *skipped*. Bad input is
refused here, before anything is sent (the rules: :mod:`batchframe.requests.validate`).
"""

from __future__ import annotations

import base64
import os
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from batchframe.errors import InputError
from batchframe.requests.keys import custom_ids as _custom_ids
from batchframe.requests.structured import Structured, apply_schema, detect
from batchframe.requests.validate import (
    blank_rows,
    check_aligned,
    check_frame,
    check_max_tokens,
    check_max_tokens_values,
    column,
    format_error,
    json_default,
    json_ok,
    plain,
    row,
    short,
    text_values,
    unencodable,
    unsendable,
)

#: Parameters a batch refuses or that make no sense per row.
_FORBIDDEN = {
    "stream": "stream=True is not allowed in a batch",
    "messages": "use prompt=... instead",
    "custom_id": "batchframe assigns the custom_id of every request (r<position>); remove it",
}
#: Parameters whose string value can only mean "take it from this column".
_NUMERIC = ("max_tokens", "temperature", "top_p", "top_k")
_INTEGER = ("max_tokens", "top_k")
#: The breakpoint ``cache="auto"`` writes: one hour, so that a batch (queued for minutes to hours) still
#: finds the prefix its first request wrote.
CACHE_CONTROL = {"type": "ephemeral", "ttl": "1h"}


@dataclass(frozen=True)
class Column:
    """A per-row parameter value read from a column. Build with :func:`col`.

    Examples
    --------
    >>> Column("budget").name
    'budget'
    """

    name: str


def col(name: str) -> Column:
    """Take a Messages parameter from a column, row by row.

    Examples
    --------
    >>> col("system_prompt")
    Column(name='system_prompt')
    """
    return Column(name)


@dataclass(frozen=True)
class CachePrefix:
    """The prefix every request shares, as ``cache="auto"`` marked it.

    ``where`` is the last shared part, which carries the ``cache_control`` breakpoint: ``"prompt"`` (the
    template's fixed leading text), ``"system"``, ``"tools"``, or None when nothing is shared. ``text`` is
    the prefix's text (tools as JSON, system, leading text), for a length check before anything is counted.

    Examples
    --------
    >>> CachePrefix("system", "You are terse.").where
    'system'
    """

    where: str | None
    text: str


@dataclass
class RequestSet:
    """The requests built from a frame: the serialized parameters of every sent row, plus the skipped rows.

    ``params[i]`` is the JSON of the Messages parameters (``model``, ``max_tokens``, ``messages``, ...) of
    the row at ``positions[i]``, to be sent under ``custom_ids[i]``.

    Examples
    --------
    >>> rs = build_requests(pd.DataFrame({"q": ["a", ""]}), prompt="q", model="m", max_tokens=4)
    >>> rs.n_rows, rs.n_sent, rs.custom_ids, rs.params[0][:22]
    (2, 1, ['r0'], b'{"model":"m","max_toke')
    """

    n_rows: int
    model: str
    positions: np.ndarray
    custom_ids: list[str]
    params: list[bytes]
    skipped: np.ndarray = field(repr=False)
    #: The frame's columns the requests were built from (prompt, template fields, per-row parameters,
    #: attachments): what merge re-hashes to prove a row is unchanged since submit.
    columns: list = field(default_factory=list)
    #: Where ``cache="auto"`` put its breakpoint (None without ``cache``).
    cache: CachePrefix | None = None
    #: The answer's schema and how it is asked for (``schema=``, or a forced tool); None without one.
    structured: Structured | None = None
    #: What the requests ask for: ``"messages"`` (an answer), or ``"embeddings"`` (a vector of ``input``).
    endpoint: str = "messages"

    @property
    def n_sent(self) -> int:
        """Number of requests (rows not skipped)."""
        return len(self.params)


def build_requests(
    df: pd.DataFrame,
    *,
    prompt: str,
    model: str,
    max_tokens: int | str | Column | pd.Series,
    system: str | Column | pd.Series | None = None,
    documents: str | Sequence[str] | None = None,
    images: str | Sequence[str] | None = None,
    attempt: int = 1,
    cache: str | None = None,
    schema: Any = None,
    schema_via: str = "output_config",
    **params: Any,
) -> RequestSet:
    """Build the request bodies of every row of ``df``.

    Parameters
    ----------
    df : DataFrame
        One request per row.
    prompt : str
        A column name, or a template over columns such as ``"Summarize {title}: {body}"``. With
        ``documents``/``images`` it may be a plain instruction.
    model, max_tokens, system, **params
        Messages parameters (numpy scalars accepted). ``col("name")``, or a Series aligned to the frame's
        index, gives a value per row. ``max_tokens`` is a whole number >= 1.
    documents, images : str or list of str, optional
        Columns of file paths or bytes sent as base64 document / image blocks before the prompt.
    cache : {"auto"}, optional
        Put a ``cache_control`` breakpoint (1 hour) at the end of the prefix every row shares: tools,
        system, then the template's fixed leading text (split into its own text block), up to the first
        part that varies by row. See :class:`CachePrefix`.
    schema : Pydantic model class or dict, optional
        The JSON shape of every answer (see :mod:`batchframe.requests.structured`), asked for as
        ``schema_via`` says: ``"output_config"`` (default), ``"response_format"`` (the same, named as OpenAI
        lowers it) or ``"tool"`` (a forced tool, for models without structured outputs). Without it, a
        forced tool's ``input_schema`` is the answer's schema.

    Returns
    -------
    RequestSet

    Examples
    --------
    >>> df = pd.DataFrame({"q": ["2+2?", None]}, index=["a", "b"])
    >>> rs = build_requests(df, prompt="q", model="claude-haiku-4-5", max_tokens=16)
    >>> rs.custom_ids, rs.skipped.tolist()
    (['r0'], [False, True])
    >>> schema = {"type": "object", "properties": {"stars": {"type": "integer"}}, "required": ["stars"]}
    >>> build_requests(df, prompt="q", model="m", max_tokens=16, schema=schema).structured.via
    'output_config'
    """
    check_frame(df)
    max_tokens = _check_static(model, max_tokens, params)
    structured = apply_schema(params, schema, schema_via) if schema is not None else detect(params)
    if system is not None:
        params["system"] = system
    params = {"model": model, "max_tokens": max_tokens, **{k: plain(v) for k, v in params.items()}}
    texts, skip = render_prompts(df, prompt, allow_literal=bool(documents or images))
    blocks = _attachment_columns(df, _as_list(documents), _as_list(images))
    per_row = _per_row_params(df, params)
    common = {k: v for k, v in params.items() if k not in per_row}
    lead, prefix = None, None
    if cache is not None:
        lead, prefix = _mark_cache(cache, common, per_row, None if blocks else _fixed_lead(df, prompt))
    positions = np.flatnonzero(~skip)
    ids = _custom_ids(positions, attempt)
    try:
        params_json = _serialize(df, positions.tolist(), texts, common, per_row, blocks, lead)
    except TypeError as exc:  # orjson refused a prompt: it holds a lone surrogate
        names = [prompt] if prompt in df.columns else _parse_template(prompt)[1]
        error = unencodable(df, names, texts, positions.tolist())
        if error is None:
            raise
        raise error from exc
    columns = _input_columns(df, prompt, params, _as_list(documents) + _as_list(images))
    return RequestSet(len(df), model, positions.astype(np.int64), ids, params_json, skip, columns, prefix, structured)


def _fixed_lead(df: pd.DataFrame, prompt: str) -> str | None:
    """The template's literal text before its first field (what every row's prompt starts with), if any."""
    if prompt in df.columns:
        return None
    first = next(iter(string.Formatter().parse(prompt)), None)
    if first is None or first[1] is None or not first[0].strip():
        return None  # no field (the prompt is all literal, after per-row attachments) or no leading text
    return first[0]


def _mark_cache(cache: str, common: dict[str, Any], per_row: dict, lead: str | None) -> tuple[str | None, CachePrefix]:
    """Put the breakpoint on the last shared part (``common`` is changed in place); returns the leading text
    to split off the prompt, if the breakpoint is there. The cached prefix runs tools -> system ->
    messages, so it stops at the first part given per row."""
    if cache != "auto":
        raise InputError(f"cache={cache!r} is not known; use cache='auto' (or leave it out)")
    shared: list[tuple[str, str]] = []
    for key in ("tools", "system"):
        if key in per_row:
            lead = None  # the prefix stops here: nothing after it is shared
            break
        if common.get(key):
            shared.append((key, key))
    else:
        if lead:
            shared.append(("prompt", lead))
    text = "".join(orjson.dumps(common[k]).decode() if k == "tools" else
                   (v if k == "prompt" else _system_text(common["system"])) for k, v in shared)
    where = shared[-1][0] if shared else None
    if where == "system":
        common["system"] = _with_breakpoint(common["system"])
    elif where == "tools":
        common["tools"] = [*common["tools"][:-1], {**common["tools"][-1], "cache_control": CACHE_CONTROL}]
    return (lead if where == "prompt" else None), CachePrefix(where, text)


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    return "".join(str(b.get("text", "")) for b in system if isinstance(b, dict))


def _with_breakpoint(system: Any) -> list:
    blocks: list[dict[str, Any]] = [{"type": "text", "text": system}] if isinstance(system, str) else [
        dict(b) for b in system]
    blocks[-1]["cache_control"] = CACHE_CONTROL
    return blocks


def _input_columns(df: pd.DataFrame, prompt: str, params: dict[str, Any], attachments: list[str]) -> list:
    """The frame's columns the requests read, in order, each once (a Series parameter is not one)."""
    names = [prompt] if prompt in df.columns else _parse_template(prompt)[1]
    for key, value in params.items():
        if isinstance(value, Column):
            names.append(value.name)
        elif isinstance(value, str) and key in _NUMERIC:
            names.append(value)
    return list(dict.fromkeys([*names, *attachments]))


def _check_static(model: Any, max_tokens: Any, params: dict[str, Any]) -> Any:
    for key, why in _FORBIDDEN.items():
        if key in params and (key != "stream" or params[key]):
            raise InputError(f"parameter {key}={short(params[key])} cannot be used here: {why}")
    params.pop("stream", None)
    if not isinstance(model, str) or not model:
        raise InputError("model must be a non-empty string, e.g. model='claude-haiku-4-5'")
    return max_tokens if isinstance(max_tokens, str | Column | pd.Series) else check_max_tokens(max_tokens)


def render_prompts(df: pd.DataFrame, prompt: str, *, allow_literal: bool = False) -> tuple[list, np.ndarray]:
    """The prompt text of every row and the mask of rows to skip.

    A row is skipped when its prompt cell is NaN/None/blank; for a template, when any field is NaN/None,
    every field is blank, or the rendering is blank. Non-text cells and failing format specs are refused.

    Examples
    --------
    >>> df = pd.DataFrame({"t": ["x", ""], "n": [1, 2]})
    >>> render_prompts(df, "{t} #{n}")
    (['x #1', ' #2'], array([False, False]))
    >>> render_prompts(df, "t")[1]
    array([False,  True])
    >>> render_prompts(df, "Title: {t}")[1]
    array([False,  True])
    """
    if not isinstance(prompt, str):
        raise InputError(f"prompt must be a column name or a template string, got {type(prompt).__name__}")
    if prompt in df.columns:
        series = column(df, prompt, "used as the prompt")
        values = text_values(series, prompt, df.index)
        missing = series.isna().to_numpy(dtype=bool)
        texts = [None if m else (v if isinstance(v, str) else str(v)) for v, m in zip(values, missing, strict=True)]
        return texts, missing | np.array([t is None or not t.strip() for t in texts], dtype=bool)
    fmt, fields, placeholders = _parse_template(prompt)
    absent = [f for f in fields if f not in df.columns]
    if absent:
        raise InputError(f"column {absent[0]!r} used by the prompt is not in the frame (columns: {list(df.columns)})")
    if not fields and not allow_literal:
        raise InputError(
            f"prompt {prompt!r} is not a column of the frame and has no {{column}} fields (columns: {list(df.columns)})"
        )
    columns = [column(df, name, "used by the prompt") for name in fields]
    missing = np.zeros(len(df), dtype=bool)
    for series in columns:
        missing |= series.isna().to_numpy(dtype=bool)
    plain = fields and not any(conv or spec for _, conv, spec in placeholders)
    rendered = _render_arrow(prompt, columns, fields) if plain else None
    if rendered is not None:
        texts = rendered
    else:
        values = [text_values(series, name, df.index) for series, name in zip(columns, fields, strict=True)]
        rows = zip(*values, strict=True) if fields else [()] * len(df)
        try:
            texts = [None if m else fmt.format(*cells) for cells, m in zip(rows, missing, strict=True)]
        except Exception as exc:  # a cell's __format__ may raise anything: find the row and field again
            raise format_error(df.index, placeholders, fields, values, missing, exc) from exc
    if "".join(literal for literal, *_ in string.Formatter().parse(prompt)).strip():
        skip = missing.copy()  # the template's own text is not blank, so no rendering of it is
    else:
        skip = missing | np.array([t is None or not t.strip() for t in texts], dtype=bool)
    return texts, (skip | blank_rows(columns)) if columns else skip


def _render_arrow(template: str, columns: list[pd.Series], fields: list[str]) -> list | None:
    """A template of plain ``{field}`` placeholders over Arrow-backed text columns, rendered by Arrow in one
    pass (what ``str.format`` gives: a text cell renders as itself); a row with a missing field is None.
    None when a column is not Arrow text (numbers, objects: they go through :func:`text_values`)."""
    if not all(_arrow_text(series.dtype) for series in columns):
        return None
    arrays = {name: pa.chunked_array(pa.array(series.array)).cast(pa.large_string())
              for name, series in zip(fields, columns, strict=True)}
    parts: list = []
    for literal, name, _, _ in string.Formatter().parse(template):
        if literal:
            parts.append(pa.scalar(literal, pa.large_string()))
        if name is not None:
            parts.append(arrays[name])
    rendered = pc.binary_join_element_wise(*parts, pa.scalar("", pa.large_string()))
    return rendered.to_numpy().tolist()


def _arrow_text(dtype: Any) -> bool:
    if isinstance(dtype, pd.ArrowDtype):
        return pa.types.is_string(dtype.pyarrow_dtype) or pa.types.is_large_string(dtype.pyarrow_dtype)
    return isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"


def _parse_template(template: str) -> tuple[str, list[str], list[tuple[str, str | None, str]]]:
    """Rewrite ``"{a} {b:>3}"`` as ``"{0} {1:>3}"`` so rows format positionally (fast); list the fields and
    the placeholders (field, conversion, spec). A field inside a spec (``{a:>{w}}``) is refused."""
    parts: list[str] = []
    fields: list[str] = []
    placeholders: list[tuple[str, str | None, str]] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise InputError(f"prompt template {template!r} is not valid: {exc}") from exc
    for literal, name, spec, conversion in parsed:
        parts.append(literal.replace("{", "{{").replace("}", "}}"))
        if name is None:
            continue
        spec = spec or ""
        if "{" in spec:
            raise InputError(
                f"prompt field {{{name}:{spec}}} has a field inside its format spec, which batchframe does not "
                f"support; write the spec out, e.g. {{{name}:>10}}, or format the column first"
            )
        placeholders.append((name, conversion, spec))
        if name not in fields:
            fields.append(name)
        conv = f"!{conversion}" if conversion else ""
        parts.append("{" + str(fields.index(name)) + conv + (f":{spec}" if spec else "") + "}")
    return "".join(parts), fields, placeholders


def _per_row_params(df: pd.DataFrame, params: dict[str, Any]) -> dict[str, tuple[list, np.ndarray, str]]:
    """Parameters given per row (``col()``, a numeric column's name, an aligned Series): key -> (values,
    missing mask, what to call the source in an error)."""
    out = {}
    for key, value in params.items():
        if isinstance(value, str) and key in _NUMERIC:
            value = Column(value)
        if isinstance(value, pd.Series):
            check_aligned(value, df.index, key)
            series, what = value, f"the Series given for {key}"
        elif isinstance(value, Column):
            series, what = column(df, value.name, f"given for {key}"), f"column {value.name!r}"
        else:
            continue
        if key == "max_tokens":
            check_max_tokens_values(series, what, df.index)
        out[key] = (series.tolist(), series.isna().to_numpy(dtype=bool), what)
    return out


def _serialize(df, positions, texts, common, per_row, blocks, lead=None) -> list[bytes]:
    """Each row's parameters, assembled from pre-serialized parts: the parameters shared by every row are
    dumped once, so a row costs one ``orjson.dumps`` of its prompt (plus its own per-row values)."""
    dumps = orjson.dumps
    head = _dump_common(common)[:-1]  # '{"model":...' still open; "model" is always there
    msg, end = b',"messages":[{"role":"user","content":', b"}]}"
    if lead:
        lead_block = b"[" + dumps({"type": "text", "text": lead, "cache_control": CACHE_CONTROL})
        return [b"".join((head, _row_params(df, p, per_row), msg, lead_block, _rest(texts[p][len(lead):]), end))
                for p in positions]
    if not per_row and not blocks:  # the common case: one formatting per row
        row = head.replace(b"%", b"%%") + msg + b"%b" + end
        return [row % dumps(text) for text in map(texts.__getitem__, positions)]
    return [
        b"".join((head, _row_params(df, p, per_row), msg, dumps(_content(p, texts[p], blocks)), end))
        for p in positions
    ]


def _rest(text: str) -> bytes:
    # The row's own text after the shared lead, in a block of its own (the API refuses a blank text block).
    return (b"," + orjson.dumps({"type": "text", "text": text}) if text.strip() else b"") + b"]"


def _row_params(df, pos: int, per_row) -> bytes:
    parts = []
    for key, (values, missing, what) in per_row.items():
        if missing[pos]:
            if key == "max_tokens":
                raise InputError(
                    f"max_tokens from {what} is missing for row {row(df.index, pos)} (position {pos}); "
                    "fill it (e.g. .fillna(1024)) or drop the row"
                )
            continue
        value = values[pos]
        try:
            dumped = orjson.dumps(int(value) if key in _INTEGER else value, default=json_default)
        except (TypeError, ValueError, OverflowError) as exc:
            raise unsendable(value, f"{key} from {what}, row {row(df.index, pos)}", exc) from exc
        parts.append(b"," + orjson.dumps(key) + b":" + dumped)
    return b"".join(parts)


def _content(pos: int, text: str, blocks) -> str | list:
    attachments = [block for make in blocks if (block := make(pos)) is not None]
    return [*attachments, {"type": "text", "text": text}] if attachments else text


def _dump_common(common: dict[str, Any]) -> bytes:
    """The parameters shared by every row; on failure, the error names the parameter."""
    try:
        return orjson.dumps(common, default=json_default)
    except TypeError as exc:
        key = next((k for k, v in common.items() if not json_ok(v)), "?")
        raise unsendable(common.get(key), f"parameter {key}", exc) from exc


def _as_list(columns: str | Sequence[str] | None) -> list[str]:
    if columns is None:
        return []
    return [columns] if isinstance(columns, str) else list(columns)


def _attachment_columns(df: pd.DataFrame, documents: list[str], images: list[str]) -> list:
    makers = []
    for kind, names in (("document", documents), ("image", images)):
        for name in names:
            if name not in df.columns:
                raise InputError(f"{kind} column {name!r} is not in the frame")
            makers.append(_attachment_maker(df, df[name].tolist(), kind))
    return makers


def _attachment_maker(df, values: list, kind: str):
    def make(pos: int) -> dict | None:
        value = values[pos]
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return None
        return attachment_block(value, kind=kind, label=plain(df.index[pos]))

    return make


_IMAGE_MAGIC = ((b"\x89PNG", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"))


def attachment_block(value: bytes | str | os.PathLike, *, kind: str, label: Any = None) -> dict:
    """A base64 ``document`` or ``image`` content block from a file path or bytes.

    Examples
    --------
    >>> attachment_block(b"%PDF-1.4 ...", kind="document")["source"]["media_type"]
    'application/pdf'
    """
    data = value if isinstance(value, bytes | bytearray) else _read(value, label)
    media = _media_type(bytes(data[:16]), kind, value, label)
    if media == "text/plain":
        try:
            return {
                "type": "document",
                "source": {"type": "text", "media_type": media, "data": bytes(data).decode("utf-8")},
            }
        except UnicodeDecodeError as exc:
            raise InputError(f"row {label!r}: document is neither PDF nor UTF-8 text") from exc
    encoded = base64.b64encode(data).decode("ascii")
    return {"type": kind, "source": {"type": "base64", "media_type": media, "data": encoded}}


def _read(path: str | os.PathLike, label: Any) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"row {label!r}: cannot read {os.fspath(path)!r}: {exc.strerror}") from exc


def _media_type(head: bytes, kind: str, value: Any, label: Any) -> str:
    if kind == "document":
        return "application/pdf" if head.startswith(b"%PDF") else "text/plain"
    for magic, media in _IMAGE_MAGIC:
        if head.startswith(magic):
            return media
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    raise InputError(f"row {label!r}: image is not PNG, JPEG, GIF or WebP")


def preview(requests: RequestSet, index: pd.Index) -> pd.DataFrame:
    """The dry-run frame: custom_id and parsed params per row, ``None`` for skipped rows.

    Examples
    --------
    >>> df = pd.DataFrame({"q": ["hi"]})
    >>> rs = build_requests(df, prompt="q", model="m", max_tokens=5)
    >>> preview(rs, df.index).loc[0, "custom_id"]
    'r0'
    """
    ids: list = [None] * requests.n_rows
    params: list = [None] * requests.n_rows
    for pos, cid, body in zip(requests.positions.tolist(), requests.custom_ids, requests.params, strict=True):
        ids[pos], params[pos] = cid, orjson.loads(body)
    return pd.DataFrame({"custom_id": ids, "params": params, "skipped": requests.skipped}, index=index)
