"""OpenAI batch output and error files -> Arrow, in the shared result schema.

Each line is classified by its own content, never by the batch's counts:

- ``response.status_code`` 2xx -> ``succeeded``: text from ``choices[0].message`` (content, else refusal),
  ``stop_reason`` from ``finish_reason`` (stop -> end_turn, length -> max_tokens, tool_calls -> tool_use,
  content_filter -> refusal), the arguments of tool calls as ``tool_use`` JSON;
- another status code -> ``errored``, with the body's ``error.type`` (else ``code``) and message;
- no response and ``error.code`` ``batch_expired`` / ``batch_cancelled`` -> ``expired`` / ``canceled``;
  any other such error -> ``errored``.

Tokens follow the Messages convention the price tables use: ``input_tokens`` is the prompt *without* its
cached part, which goes to ``cache_read_input_tokens`` (OpenAI's ``prompt_tokens`` includes it). An
embeddings line has its vector in ``embedding`` (float32).
"""

from __future__ import annotations

import orjson
import pyarrow as pa

from batchframe.results.schema import EMBEDDING, RESULT_SCHEMA

_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
         "content_filter": "refusal"}
_LATE = {"batch_expired": "expired", "batch_cancelled": "canceled", "batch_canceled": "canceled"}
#: The result schema plus the embedding vector of an embeddings line.
SCHEMA = pa.schema([*RESULT_SCHEMA, EMBEDDING])


class ResultParser:
    """Incremental parser of output/error file bytes: ``feed`` chunks of any size, ``drain`` or ``finish``.

    Examples
    --------
    >>> p = ResultParser()
    >>> p.feed(b'{"custom_id":"r0","response":null,"error":{"code":"batch_expired","message":"x"}}\\n')
    >>> p.finish().column("status").to_pylist()
    ['expired']
    """

    def __init__(self, chunk_bytes: int = 8 << 20):
        self.chunk_bytes = chunk_bytes
        self.n_bad_lines = 0
        self.truncated = False
        self._pending = b""
        self._rows: list[tuple] = []
        self._tables: list[pa.Table] = []

    def feed(self, data: bytes) -> None:
        """Take the next bytes (cut anywhere); complete lines are parsed."""
        buf = self._pending + data
        cut = buf.rfind(b"\n") + 1
        self._pending = buf[cut:]
        for line in buf[:cut].split(b"\n"):
            self._line(line)
        if len(self._rows) * 256 >= self.chunk_bytes:
            self._flush()

    def drain(self) -> list[pa.Table]:
        """The tables parsed so far, forgotten here (a streaming caller holds one block at a time)."""
        self._flush()
        out, self._tables = self._tables, []
        return out

    def finish(self) -> pa.Table:
        """Every row not drained, as one table; a last line without its newline is parsed if whole."""
        if self._pending.strip():
            before = self.n_bad_lines
            self._line(self._pending)
            self.truncated = self.n_bad_lines > before
            self.n_bad_lines = before if self.truncated else self.n_bad_lines
        self._pending = b""
        self._flush()
        tables, self._tables = self._tables, []
        return pa.concat_tables(tables) if tables else SCHEMA.empty_table()

    def _line(self, line: bytes) -> None:
        line = line.strip()
        if not line:
            return
        try:
            self._rows.append(row(orjson.loads(line)))
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, IndexError, ValueError):
            self.n_bad_lines += 1

    def _flush(self) -> None:
        if self._rows:
            columns = list(zip(*self._rows, strict=True))
            self._tables.append(pa.table([pa.array(c, f.type) for c, f in zip(columns, SCHEMA, strict=True)],
                                         schema=SCHEMA))
            self._rows = []


def row(rec: dict) -> tuple:
    """One output/error line as a tuple in :data:`SCHEMA` order.

    Examples
    --------
    >>> body = {"id": "chatcmpl-1", "model": "gpt-4o-mini", "choices": [{"message": {"content": "Hi"},
    ...         "finish_reason": "length"}], "usage": {"prompt_tokens": 10, "completion_tokens": 2,
    ...         "prompt_tokens_details": {"cached_tokens": 4}}}
    >>> row({"custom_id": "r0", "response": {"status_code": 200, "body": body}})[:8]
    ('r0', 'succeeded', 'Hi', 'max_tokens', 6, 2, 0, 4)
    """
    cid = rec["custom_id"]
    if not isinstance(cid, str):
        raise TypeError("custom_id")
    response = rec.get("response")
    if not response:
        error = rec.get("error") or {}
        status = _LATE.get(str(error.get("code")), "errored")
        kind = None if status != "errored" else (error.get("code") or "api_error")
        return (cid, status, None, None, None, None, None, None, None, kind, error.get("message"),
                None, None, None, None)
    body = response.get("body") or {}
    if not 200 <= int(response.get("status_code") or 0) < 300:
        error = body.get("error") or {}
        kind = error.get("type") or error.get("code") or "api_error"
        return (cid, "errored", None, None, None, None, None, None, None, kind, error.get("message"),
                None, None, None, None)
    usage = body.get("usage") or {}
    prompt = usage.get("prompt_tokens")
    cached = int(((usage.get("prompt_tokens_details") or {}).get("cached_tokens")) or 0)
    if "data" in body:  # an embeddings response
        vector = body["data"][0]["embedding"]
        return (cid, "succeeded", None, None, _minus(prompt, cached), 0, 0, cached, 0, None, None,
                body.get("model"), None, None, vector)
    choice = body["choices"][0]
    message = choice.get("message") or {}
    calls = message.get("tool_calls") or []
    tool_use = _tool_use([c["function"]["arguments"] or "{}" for c in calls])
    text = message.get("content")
    if text is None and message.get("refusal"):
        text = message["refusal"]
    finish = choice.get("finish_reason")
    stop = "refusal" if message.get("refusal") else _STOP.get(str(finish), finish)
    return (cid, "succeeded", text, stop, _minus(prompt, cached), usage.get("completion_tokens"), 0, cached, 0,
            None, None, body.get("model"), body.get("id"), tool_use, None)


def _tool_use(arguments: list[str]) -> str | None:
    """The calls' arguments as ``tool_use`` JSON. Arguments that do not parse (cut at max_tokens) are kept
    as they came, so the row stays a result (its parse status says what is wrong) instead of a bad line."""
    if not arguments:
        return None
    parsed: list[object] = []
    for text in arguments:
        try:
            parsed.append(orjson.loads(text))
        except orjson.JSONDecodeError:
            if len(arguments) == 1:
                return text
            parsed.append(text)
    return orjson.dumps(parsed[0] if len(parsed) == 1 else parsed).decode()


def _minus(total: int | None, part: int) -> int | None:
    return None if total is None else max(int(total) - part, 0)
