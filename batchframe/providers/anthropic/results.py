"""Results JSONL -> Arrow, streamed.

Bytes are split on ``b"\\n"`` only (never ``str.splitlines``: an answer may contain U+2028); a trailing
``\\r`` is whitespace. Blocks of complete lines are parsed straight into Arrow by pyarrow's JSON reader
(:mod:`batchframe.providers.anthropic.results_arrow`); a block it refuses goes line by line through orjson,
each line reduced at once to a tuple of scalars. Only Arrow tables are kept, never one Python object per line.

Columns (:data:`RESULT_SCHEMA`): ``custom_id``, ``status`` (the line's ``result.type``), ``text`` (text
blocks joined), ``stop_reason``, token counts (``cache_creation_1h_input_tokens``: the 1-hour share
of cache writes), ``error_type``/``error_message`` (from the error envelope
``result.error.error``), ``model``, ``message_id`` and ``tool_use`` (the ``input`` of a tool_use block as
JSON; a JSON list of inputs when there are several).
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson
import pyarrow as pa

from batchframe.providers.anthropic.content import message_content
from batchframe.providers.anthropic.results_arrow import parse_block
from batchframe.results.schema import RESULT_SCHEMA

_TYPES = [f.type for f in RESULT_SCHEMA]
_EMPTY: dict = {}
_NONE_TAIL = (None,) * 12


class ResultParser:
    """Incremental JSONL parser: ``feed`` byte chunks of any size, then ``finish`` for the table.

    Bytes are gathered up to ``chunk_bytes``, cut after the last ``\\n``, and each block of complete
    lines is parsed at once (:mod:`batchframe.providers.anthropic.results_arrow`), falling back to orjson line by line.

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

    def __init__(self, chunk_bytes: int = 8 << 20):
        self.chunk_bytes = chunk_bytes
        self.n_bad_lines = 0
        self.truncated = False
        self.table: pa.Table | None = None
        self._pending: list[bytes] = []
        self._size = 0
        self._batches: list[pa.Table] = []

    def feed(self, data: bytes) -> None:
        """Take the next bytes of the stream (any size, cut anywhere)."""
        self._pending.append(data)
        self._size += len(data)
        if self._size < self.chunk_bytes:
            return
        buf, start = b"".join(self._pending), 0
        view = memoryview(buf)  # blocks are parsed in place: slicing bytes would copy each one again
        # Blocks of at most chunk_bytes (a longer line is a block of its own), however large ``data`` is.
        while len(buf) - start >= self.chunk_bytes:
            cut = buf.rfind(b"\n", start, start + self.chunk_bytes) + 1
            if cut <= start:
                cut = buf.find(b"\n", start + self.chunk_bytes) + 1
                if cut <= 0:
                    break
            self._parse(view[start:cut])
            start = cut
        self._pending, self._size = [buf[start:]], len(buf) - start

    def drain(self) -> list[pa.Table]:
        """Hand over the tables parsed so far and forget them, so a caller that streams them on (to a file)
        holds one block at a time; :meth:`finish` then returns only the rows not drained.

        Examples
        --------
        >>> p = ResultParser(chunk_bytes=1)
        >>> p.feed(b'{"custom_id":"r0","result":{"type":"expired"}}\\n')
        >>> [t.num_rows for t in p.drain()], p.drain(), p.finish().num_rows
        ([1], [], 0)
        """
        batches, self._batches = self._batches, []
        return batches

    def finish(self) -> pa.Table:
        """Parse what is left and return every row not :meth:`drain`-ed (also kept as ``self.table``)."""
        buf = b"".join(self._pending)
        self._pending, self._size = [], 0
        cut = buf.rfind(b"\n") + 1
        self._parse(buf[:cut])
        tail = buf[cut:]
        if tail.strip():
            try:  # a last line without "\n" is fine if it is whole
                orjson.loads(tail)
                self._parse(tail + b"\n")
            except orjson.JSONDecodeError:
                self.truncated = True
        self.table = pa.concat_tables(self._batches) if self._batches else RESULT_SCHEMA.empty_table()
        return self.table

    def _parse(self, block: bytes | memoryview) -> None:
        if len(block) < 64 and not bytes(block).strip():  # (strip copies: a large block is never blank anyway)
            return
        parsed = parse_block(block, RESULT_SCHEMA)
        if parsed is None:
            parsed = _parse_lines(bytes(block))
        table, bad = parsed
        self.n_bad_lines += bad
        if table.num_rows:
            self._batches.append(table)


def _parse_lines(block: bytes) -> tuple[pa.Table, int]:
    """The line-by-line path: orjson per line, each reduced at once to a tuple of scalars."""
    rows, bad, loads = [], 0, orjson.loads
    for line in block.split(b"\n"):
        if line[-1:] == b"\r":
            line = line[:-1]
        if not line.strip():
            continue
        try:
            rows.append(_row(loads(line)))
        except (orjson.JSONDecodeError, AttributeError, TypeError, KeyError):
            bad += 1
    if not rows:
        return RESULT_SCHEMA.empty_table(), bad
    columns = zip(*rows, strict=True)
    arrays = [_array(values, typ) for values, typ in zip(columns, _TYPES, strict=True)]
    return pa.Table.from_arrays(arrays, schema=RESULT_SCHEMA), bad


def _array(values: tuple, typ: pa.DataType) -> pa.Array:
    """An Arrow column; a value of the wrong JSON type (``"3"`` for a count) becomes null, not a crash."""
    try:
        return pa.array(values, type=typ)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        if pa.types.is_integer(typ):
            return pa.array([v if type(v) is int else None for v in values], type=typ)
        return pa.array([v if isinstance(v, str) else None for v in values], type=typ)


def _row(rec: dict) -> tuple:
    """One result line as a tuple in :data:`RESULT_SCHEMA` order. Lenient: optional fields may be absent."""
    cid = rec["custom_id"]
    res = rec["result"]
    if not isinstance(cid, str):
        raise TypeError("custom_id is not a string")
    kind = res.get("type")
    if kind == "succeeded":
        msg = res.get("message") or {}
        usage = msg.get("usage") or {}
        text, tool = message_content(msg.get("content") or [])
        return (
            cid,
            kind,
            text,
            msg.get("stop_reason"),
            usage.get("input_tokens"),
            usage.get("output_tokens"),
            usage.get("cache_creation_input_tokens"),
            usage.get("cache_read_input_tokens"),
            (usage.get("cache_creation") or _EMPTY).get("ephemeral_1h_input_tokens"),
            None,
            None,
            msg.get("model"),
            msg.get("id"),
            tool,
        )
    if kind == "errored":
        envelope = res.get("error") or {}
        inner = envelope.get("error")
        inner = inner if isinstance(inner, dict) else envelope  # tolerate an unwrapped error object
        return (
            cid,
            kind,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            inner.get("type"),
            inner.get("message"),
            None,
            None,
            None,
        )
    return (cid, kind, *_NONE_TAIL)


def parse_results(chunks: Iterable[bytes], *, chunk_bytes: int = 8 << 20) -> ResultParser:
    """Parse an iterable of byte chunks; returns the finished parser (``.table``, ``.truncated``).

    Examples
    --------
    >>> parse_results([b'{"custom_id":"a","result":{"type":"expired"}}\\n']).table.num_rows
    1
    """
    parser = ResultParser(chunk_bytes)
    for chunk in chunks:
        parser.feed(chunk)
    parser.finish()
    return parser
