"""Results JSONL -> Arrow, streamed.

Bytes are split on ``b"\\n"`` only (never ``str.splitlines``: an answer may contain U+2028), a trailing
``\\r`` is stripped, each line is parsed with orjson and reduced at once to a tuple of scalars, and every
``chunk_rows`` lines the tuples become Arrow arrays. Only Arrow record batches are kept, never one Python
object per line.

Columns (:data:`RESULT_SCHEMA`): ``custom_id``, ``status`` (the line's ``result.type``), ``text`` (text
blocks joined), ``stop_reason``, token counts (``cache_creation_1h_input_tokens`` is the 1-hour share of cache writes), ``error_type``/``error_message`` (from the error envelope
``result.error.error``), ``model``, ``message_id`` and ``tool_use`` (the ``input`` of a tool_use block as
JSON; a JSON list of inputs when there are several).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

RESULT_SCHEMA = pa.schema([
    ("custom_id", pa.string()),
    ("status", pa.string()),
    ("text", pa.string()),
    ("stop_reason", pa.string()),
    ("input_tokens", pa.int64()),
    ("output_tokens", pa.int64()),
    ("cache_creation_input_tokens", pa.int64()),
    ("cache_read_input_tokens", pa.int64()),
    ("cache_creation_1h_input_tokens", pa.int64()),
    ("error_type", pa.string()),
    ("error_message", pa.string()),
    ("model", pa.string()),
    ("message_id", pa.string()),
    ("tool_use", pa.string()),
])
_TYPES = [f.type for f in RESULT_SCHEMA]
_EMPTY: dict = {}
_NONE_TAIL = (None,) * 12


class ResultParser:
    """Incremental JSONL parser: ``feed`` byte chunks of any size, then ``finish`` for the table.

    Attributes
    ----------
    n_bad_lines : int
        Complete lines that were not a result object (skipped, counted).
    truncated : bool
        The stream ended inside a line that does not parse (a cut download).

    Examples
    --------
    >>> p = ResultParser()
    >>> p.feed(b'{"custom_id":"r0","result":{"type":"expired"}}\\r\\n{"custom_id":"r1",')
    >>> p.feed(b'"result":{"type":"canceled"}}\\n')
    >>> p.finish().column("status").to_pylist()
    ['expired', 'canceled']
    """

    def __init__(self, chunk_rows: int = 8192):
        self.chunk_rows = chunk_rows
        self.n_bad_lines = 0
        self.truncated = False
        self._tail = b""
        self._lines: list[bytes] = []
        self._batches: list[pa.RecordBatch] = []

    def feed(self, data: bytes) -> None:
        lines = (self._tail + data).split(b"\n") if self._tail else data.split(b"\n")
        self._tail = lines.pop()
        self._lines.extend(lines)
        if len(self._lines) >= self.chunk_rows:
            self._flush()

    def finish(self) -> pa.Table:
        if self._tail.strip():
            try:  # a last line without "\n" is fine if it is whole
                orjson.loads(self._tail)
                self._lines.append(self._tail)
            except orjson.JSONDecodeError:
                self.truncated = True
        self._tail = b""
        self._flush()
        return pa.Table.from_batches(self._batches, schema=RESULT_SCHEMA)

    def _flush(self) -> None:
        rows, loads = [], orjson.loads
        for line in self._lines:
            if line[-1:] == b"\r":
                line = line[:-1]
            if not line:
                continue
            try:
                rows.append(_row(loads(line)))
            except (orjson.JSONDecodeError, AttributeError, TypeError, KeyError):
                self.n_bad_lines += 1
        self._lines = []
        if rows:
            columns = zip(*rows)
            arrays = [pa.array(values, type=typ) for values, typ in zip(columns, _TYPES)]
            self._batches.append(pa.RecordBatch.from_arrays(arrays, schema=RESULT_SCHEMA))


def _row(rec: dict) -> tuple:
    """One result line as a tuple in :data:`RESULT_SCHEMA` order. Lenient: optional fields may be absent."""
    cid = rec["custom_id"]
    res = rec["result"]
    kind = res.get("type")
    if kind == "succeeded":
        msg = res.get("message") or {}
        usage = msg.get("usage") or {}
        text, tool = _content(msg.get("content") or ())
        return (cid, kind, text, msg.get("stop_reason"), usage.get("input_tokens"), usage.get("output_tokens"),
                usage.get("cache_creation_input_tokens"), usage.get("cache_read_input_tokens"),
                (usage.get("cache_creation") or _EMPTY).get("ephemeral_1h_input_tokens"), None, None,
                msg.get("model"), msg.get("id"), tool)
    if kind == "errored":
        envelope = res.get("error") or {}
        inner = envelope.get("error")
        inner = inner if isinstance(inner, dict) else envelope  # tolerate an unwrapped error object
        return (cid, kind, None, None, None, None, None, None, None, inner.get("type"), inner.get("message"),
                None, None, None)
    return (cid, kind, *_NONE_TAIL)


def _content(blocks) -> tuple[str | None, str | None]:
    texts, tools = [], []
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "tool_use":
            tools.append(block.get("input"))
    text = "".join(texts) if texts else None
    if not tools:
        return text, None
    return text, orjson.dumps(tools[0] if len(tools) == 1 else tools).decode()


def parse_results(chunks: Iterable[bytes], *, chunk_rows: int = 8192) -> ResultParser:
    """Parse an iterable of byte chunks; returns the finished parser (``.table``, ``.truncated``).

    Examples
    --------
    >>> parse_results([b'{"custom_id":"a","result":{"type":"expired"}}\\n']).table.num_rows
    1
    """
    parser = ResultParser(chunk_rows)
    for chunk in chunks:
        parser.feed(chunk)
    parser.table = parser.finish()
    return parser


def dedupe(table: pa.Table) -> pa.Table:
    """Keep the first row of every custom_id (a result re-downloaded after a cut stream counts once).

    Examples
    --------
    >>> t = parse_results([b'{"custom_id":"a","result":{"type":"expired"}}\\n'] * 2).table
    >>> dedupe(t).num_rows
    1
    """
    ids = table.column("custom_id").to_numpy(zero_copy_only=False)
    dup = pd.Index(ids).duplicated(keep="first")
    return table.filter(pa.array(~dup)) if dup.any() else table


def empty_results() -> pa.Table:
    """A zero-row results table."""
    return RESULT_SCHEMA.empty_table()


def ids_array(table: pa.Table) -> np.ndarray:
    """The custom_ids of a results table as a NumPy object array."""
    return table.column("custom_id").to_numpy(zero_copy_only=False)
