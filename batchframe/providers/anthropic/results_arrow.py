"""The fast path of result parsing: a block of complete JSONL lines -> Arrow, in C++.

pyarrow's JSON reader parses the block against an explicit schema of the fields batchframe keeps
(ignoring the rest) and splits it on ``\\n`` only; the columns are then taken out with vectorised
compute functions. No Python object is created per line. Two things it cannot do fall back to orjson:
``tool_use`` inputs (arbitrary JSON, re-read only for the lines that have one) and blocks it refuses
(a malformed line, an unexpected type): :func:`parse_block` then returns None and the caller uses the
line-by-line path, which skips and counts bad lines.
"""

from __future__ import annotations

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

# The line path's extraction, so both paths agree on text and tool_use.
from batchframe.providers.anthropic.content import message_content

_S, _I = pa.string(), pa.int64()
_USAGE = pa.struct(
    [
        ("input_tokens", _I),
        ("output_tokens", _I),
        ("cache_creation_input_tokens", _I),
        ("cache_read_input_tokens", _I),
        ("cache_creation", pa.struct([("ephemeral_1h_input_tokens", _I)])),
    ]
)
_MESSAGE = pa.struct(
    [
        ("id", _S),
        ("model", _S),
        ("stop_reason", _S),
        ("content", pa.list_(pa.struct([("type", _S), ("text", _S)]))),
        ("usage", _USAGE),
    ]
)
_ERROR = pa.struct([("type", _S), ("message", _S), ("error", pa.struct([("type", _S), ("message", _S)]))])
READ_SCHEMA = pa.schema(
    [("custom_id", _S), ("result", pa.struct([("type", _S), ("message", _MESSAGE), ("error", _ERROR)]))]
)
_PARSE = pj.ParseOptions(explicit_schema=READ_SCHEMA, unexpected_field_behavior="ignore")
#: Bytes of a block parsed by one thread of pyarrow's pool (a larger block is parsed in parts, in parallel).
PART_BYTES = 1 << 20


def parse_block(block: bytes | memoryview, schema: pa.Schema) -> tuple[pa.Table, int] | None:
    """Parse complete lines into a table of ``schema`` (RESULT_SCHEMA) and the number of bad rows.

    Returns None when pyarrow refuses the block (the caller falls back to the line-by-line path).

    Examples
    --------
    >>> from batchframe.results.schema import RESULT_SCHEMA
    >>> table, bad = parse_block(b'{"custom_id":"a","result":{"type":"expired"}}\\n', RESULT_SCHEMA)
    >>> table.column("status").to_pylist(), bad
    (['expired'], 0)
    """
    try:
        return _columns(_read(block), block, schema)
    except (pa.ArrowException, ValueError, KeyError, TypeError, IndexError, orjson.JSONDecodeError):
        return None


def _read(block: bytes | memoryview) -> pa.Table:
    """The block through pyarrow's JSON reader: in parts of :data:`PART_BYTES` parsed on its thread pool when
    the block is large (the parts come back in order), else, or when a line is longer than a part, whole."""
    if len(block) > 2 * PART_BYTES:
        try:
            options = pj.ReadOptions(use_threads=True, block_size=PART_BYTES)
            return pj.read_json(pa.BufferReader(block), read_options=options, parse_options=_PARSE)
        except pa.ArrowInvalid:  # e.g. a line straddling two parts: read it whole below
            pass
    options = pj.ReadOptions(use_threads=False, block_size=max(1 << 20, len(block) + 1))
    return pj.read_json(pa.BufferReader(block), read_options=options, parse_options=_PARSE)


def _columns(raw: pa.Table, block: bytes | memoryview, schema: pa.Schema) -> tuple[pa.Table, int]:
    raw = raw.combine_chunks()
    cid, res = raw.column("custom_id").chunk(0) if raw.num_rows else pa.array([], _S), None
    res = raw.column("result").chunk(0) if raw.num_rows else pa.array([], READ_SCHEMA.field("result").type)
    msg, err = pc.struct_field(res, "message"), pc.struct_field(res, "error")
    usage = pc.struct_field(msg, "usage")
    inner = pc.struct_field(err, "error")
    text, tool = _text_and_tools(pc.struct_field(msg, "content"), block, raw.num_rows)
    cols = {
        "custom_id": cid,
        "status": pc.struct_field(res, "type"),
        "text": text,
        "stop_reason": pc.struct_field(msg, "stop_reason"),
        "input_tokens": pc.struct_field(usage, "input_tokens"),
        "output_tokens": pc.struct_field(usage, "output_tokens"),
        "cache_creation_input_tokens": pc.struct_field(usage, "cache_creation_input_tokens"),
        "cache_read_input_tokens": pc.struct_field(usage, "cache_read_input_tokens"),
        "cache_creation_1h_input_tokens": pc.struct_field(
            pc.struct_field(usage, "cache_creation"), "ephemeral_1h_input_tokens"
        ),
        # the envelope nests the error (result.error.error); tolerate an unwrapped one
        "error_type": pc.coalesce(pc.struct_field(inner, "type"), pc.struct_field(err, "type")),
        "error_message": pc.coalesce(pc.struct_field(inner, "message"), pc.struct_field(err, "message")),
        "model": pc.struct_field(msg, "model"),
        "message_id": pc.struct_field(msg, "id"),
        "tool_use": tool,
    }
    table = pa.table([cols[f.name] for f in schema], schema=schema)
    keep = pc.and_(pc.is_valid(cid), pc.is_valid(res))
    bad = raw.num_rows - pc.sum(keep).as_py() if raw.num_rows else 0
    return (table.filter(keep) if bad else table), bad


def _text_and_tools(content: pa.Array, block: bytes | memoryview, n: int) -> tuple[pa.Array, pa.Array]:
    """Text blocks joined per row, and the tool_use inputs (JSON) of the rows that have one."""
    flat = pc.list_flatten(content)
    parents = pc.list_parent_indices(content).to_numpy()
    kinds = pc.struct_field(flat, "type")
    is_text = pc.fill_null(pc.equal(kinds, "text"), False)
    texts = pc.fill_null(pc.struct_field(flat, "text").filter(is_text), "")
    owners = parents[is_text.to_numpy(zero_copy_only=False)]
    counts = np.bincount(owners, minlength=n)
    if counts.max(initial=0) <= 1:
        take = np.full(n, -1, dtype=np.int64)
        take[owners] = np.arange(len(owners))
        text = texts.take(pa.array(take, mask=take < 0))
    else:
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        joined = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), texts), "")
        text = pc.if_else(pa.array(counts > 0), joined, pa.scalar(None, _S))
    is_tool = pc.fill_null(pc.equal(kinds, "tool_use"), False).to_numpy(zero_copy_only=False)
    tool_rows = np.unique(parents[is_tool])
    return text, _tools(tool_rows, block, n)


def _tools(rows: np.ndarray, block: bytes | memoryview, n: int) -> pa.Array:
    if not len(rows):
        return pa.nulls(n, _S)
    lines = [line for line in bytes(block).split(b"\n") if line.strip()]
    if len(lines) != n:
        raise ValueError("line count and row count differ")
    values: list = [None] * n
    for row in rows.tolist():
        values[row] = message_content(orjson.loads(lines[row])["result"]["message"]["content"])[1]
    return pa.array(values, _S)
