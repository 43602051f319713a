"""Typed result columns from a JSON schema: the columns (Arrow types) before anything is sent, and each
answer's JSON parsed into them, with a parse status per row.

Invariant: a row's typed columns hold values only when its whole answer parsed *and* validated against the
schema (``parse_status`` ``ok``); any failure leaves every typed column of the row null, never part of it.

Columns, named ``<prefix><field>``:

- ``string`` -> string, ``integer`` -> int64, ``number`` -> float64, ``boolean`` -> bool; an ``enum`` (or
  ``const``) takes the type of its values (strings -> string);
- an array -> ``list<item>`` (objects inside arrays -> ``struct``); an object with properties -> one column
  per property, flattened as ``<field>.<sub>`` (at any depth); anything else (a union of several types, a
  free-form object) -> its JSON as a string;
- every column is nullable (a failed or unsent row is null); :attr:`Column.nullable` says whether the
  schema itself allows a null or absent value there.

Parse statuses (null when the request itself did not succeed): ``ok``, ``invalid_json``,
``schema_mismatch``, ``truncated`` (stop_reason ``max_tokens`` and not valid), ``refusal``. ``parse_error``
says what failed and where (``$.address.city: expected string, got integer``); ``json`` keeps the raw text.
A null value for a property the schema does not require reads as absent: OpenAI's strict mode asks for
every property and makes the optional ones nullable, and this is the inverse.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

from batchframe.errors import InputError
from batchframe.results.json_schema import Resolver, Validator, short
from batchframe.results.schema import RESULT_COLUMNS

#: Parse statuses of a succeeded row, the first being success.
PARSE_STATUSES = ("ok", "invalid_json", "schema_mismatch", "truncated", "refusal")
#: Columns added next to the typed ones: the status, what failed, and the raw JSON text.
PARSE_COLUMNS = ("parse_status", "parse_error", "json")
_ARROW = {"string": pa.string(), "json": pa.string(), "integer": pa.int64(), "number": pa.float64(),
          "boolean": pa.bool_()}


@dataclass(frozen=True)
class Shape:
    """The Arrow shape of a schema node: ``kind`` (string, integer, number, boolean, json, list, struct)."""

    kind: str
    nullable: bool = False
    item: Shape | None = None
    fields: tuple[tuple[str, Shape], ...] = ()

    @property
    def arrow(self) -> pa.DataType:
        """The Arrow type of the column.

        Examples
        --------
        >>> Shape("list", item=Shape("integer")).arrow
        ListType(list<item: int64>)
        """
        if self.kind == "list":
            return pa.list_(self.item.arrow if self.item else pa.string())
        if self.kind == "struct":
            return pa.struct([pa.field(name, s.arrow, nullable=True) for name, s in self.fields])
        return _ARROW[self.kind]

    def coerce(self, value: Any) -> Any:
        """A valid JSON value as the column holds it (``3.0`` in an integer column is ``3``).

        Examples
        --------
        >>> Shape("integer").coerce(3.0), Shape("json").coerce({"a": 1})
        (3, '{"a":1}')
        """
        if value is None:
            return None
        if self.kind == "json":
            return orjson.dumps(value).decode()
        if self.kind == "integer":
            return int(value)
        if self.kind == "number":
            return float(value)
        if self.kind == "list":
            item = self.item or Shape("json")
            return [item.coerce(v) for v in value]
        if self.kind == "struct":
            return {name: s.coerce(value.get(name)) for name, s in self.fields}
        return value


@dataclass(frozen=True)
class Column:
    """One typed result column: its name (without prefix), where its value is in the answer, its shape."""

    name: str
    path: tuple[str, ...]
    shape: Shape

    @property
    def nullable(self) -> bool:
        """Whether the schema allows this value to be null or absent."""
        return self.shape.nullable

    def extract(self, answer: dict[str, Any]) -> Any:
        """This column's value in a valid answer (None where the answer leaves it out).

        Examples
        --------
        >>> Column("address.city", ("address", "city"), Shape("string")).extract({"address": {"city": "Oslo"}})
        'Oslo'
        """
        value: Any = answer
        for key in self.path:
            value = value.get(key) if isinstance(value, dict) else None
        return self.shape.coerce(value)


def typed_columns(schema: Mapping[str, Any]) -> list[Column]:
    """The typed columns of an object schema, in property order (nested objects flattened).

    Raises :class:`batchframe.errors.InputError` when a column would take the name of a result column
    (``text``, ``status``, ``parse_status``, ...): rename the field.

    Examples
    --------
    >>> schema = {"type": "object", "required": ["stars"], "properties": {
    ...     "stars": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}},
    ...     "address": {"type": "object", "properties": {"city": {"type": "string"}}}}}
    >>> [(c.name, str(c.shape.arrow), c.nullable) for c in typed_columns(schema)]
    [('stars', 'int64', False), ('tags', 'list<item: string>', True), ('address.city', 'string', True)]
    """
    resolver = Resolver(schema)
    columns = _flatten(resolver, resolver.resolve(schema), (), False)
    taken = set(RESULT_COLUMNS) | set(PARSE_COLUMNS)
    clash = [c.name for c in columns if c.name in taken]
    if clash:
        raise InputError(f"the schema's field(s) {clash} would take the name of a result column "
                         f"({', '.join(sorted(taken))}); rename them in the schema")
    return columns


def arrow_schema(schema: Mapping[str, Any], prefix: str = "") -> pa.Schema:
    """The Arrow schema of the typed columns, named ``<prefix><field>``; derived without sending anything.

    Examples
    --------
    >>> arrow_schema({"type": "object", "properties": {"ok": {"type": "boolean"}}}, "llm_")
    llm_ok: bool
    """
    return pa.schema([pa.field(prefix + c.name, c.shape.arrow, nullable=c.nullable) for c in typed_columns(schema)])


def parse_answers(answers: pa.Table, spec: Mapping[str, Any]) -> pa.Table:
    """Parse each row's answer into the typed columns of ``spec["schema"]``, plus :data:`PARSE_COLUMNS`.

    Parameters
    ----------
    answers : pa.Table
        Columns ``status``, ``stop_reason``, ``text`` and ``tool_use`` (one row per source row).
    spec : dict
        The job's structured-output record (:class:`batchframe.requests.structured.Structured` as JSON):
        ``schema``, and ``via`` (``tool``: the JSON is the ``tool_use`` input, else the text).

    Examples
    --------
    >>> spec = {"via": "output_config", "schema": {"type": "object", "required": ["n"],
    ...         "properties": {"n": {"type": "integer"}}}}
    >>> t = pa.table({"status": ["succeeded", "succeeded", "succeeded", "errored"],
    ...               "stop_reason": ["end_turn", "max_tokens", "end_turn", None],
    ...               "text": ['{"n": 2}', '{"n": ', '{"n": "x"}', None], "tool_use": [None] * 4})
    >>> out = parse_answers(t, spec)
    >>> out.column("n").to_pylist(), out.column("parse_status").to_pylist()
    ([2, None, None, None], ['ok', 'truncated', 'schema_mismatch', None])
    >>> out.column("parse_error").to_pylist()[2]
    "$.n: expected integer, got string 'x'"
    """
    columns = typed_columns(spec["schema"])
    check = Validator(spec["schema"])
    n = answers.num_rows
    raw = answers.column("tool_use" if spec.get("via") == "tool" else "text").to_pylist()
    texts, stops = answers.column("text").to_pylist(), answers.column("stop_reason").to_pylist()
    values: list[list[Any]] = [[None] * n for _ in columns]
    status: list[str | None] = [None] * n
    error: list[str | None] = [None] * n
    succeeded = np.flatnonzero(np.asarray(answers.column("status").to_pylist(), dtype=object) == "succeeded")
    for i in succeeded.tolist():
        status[i], error[i], answer = _classify(raw[i], texts[i], stops[i], check)
        if answer is not None:
            for values_of, column in zip(values, columns, strict=True):
                values_of[i] = column.extract(answer)
    arrays = {c.name: pa.array(v, c.shape.arrow) for c, v in zip(columns, values, strict=True)}
    keep = np.zeros(n, dtype=bool)
    keep[succeeded] = True
    arrays.update(parse_status=pa.array(status, pa.string()), parse_error=pa.array(error, pa.string()),
                  json=pa.array([r if k else None for r, k in zip(raw, keep.tolist(), strict=True)], pa.string()))
    return pa.table(arrays)


def parse_counts(answers: pa.Table, spec: Mapping[str, Any]) -> dict[str, int]:
    """Rows by parse status (succeeded rows only), e.g. ``{"ok": 8, "truncated": 2}``.

    Examples
    --------
    >>> spec = {"via": "output_config", "schema": {"type": "object", "properties": {}}}
    >>> parse_counts(pa.table({"status": ["succeeded"], "stop_reason": ["end_turn"], "text": ["{}"],
    ...                        "tool_use": pa.nulls(1, pa.string())}), spec)
    {'ok': 1}
    """
    counts = parse_answers(answers, spec).column("parse_status").value_counts().to_pylist()
    return {c["values"]: int(c["counts"]) for c in counts if c["values"] is not None}


def typed_frame(answers: pa.Table, spec: Mapping[str, Any], index: pd.Index, prefix: str) -> pd.DataFrame:
    """:func:`parse_answers` as a DataFrame (nullable Arrow-backed dtypes) indexed like the results:
    ``<prefix>parse_status``, ``<prefix>parse_error``, ``<prefix>json``, then the typed columns.

    Examples
    --------
    >>> spec = {"via": "output_config", "schema": {"type": "object", "properties": {"x": {"type": "number"}}}}
    >>> t = pa.table({"status": ["succeeded"], "stop_reason": ["end_turn"], "text": ['{"x": 1}'],
    ...               "tool_use": pa.nulls(1, pa.string())})
    >>> typed_frame(t, spec, pd.Index(["a"]), "llm_").dtypes["llm_x"]
    double[pyarrow]
    """
    table = parse_answers(answers, spec)
    table = table.select([*PARSE_COLUMNS, *(c for c in table.column_names if c not in PARSE_COLUMNS)])
    frame = table.to_pandas(types_mapper=pd.ArrowDtype)
    frame.columns = [f"{prefix}{name}" for name in frame.columns]
    frame.index = index
    return frame


def _classify(raw: Any, text: Any, stop: Any, check: Validator) -> tuple[str, str | None, dict | None]:
    """(status, error, the parsed answer when ok) for one succeeded row."""
    cut = stop == "max_tokens"
    if stop == "refusal":
        return "refusal", "the model refused" + (f": {short(text)}" if text else ""), None
    if raw is None:
        return ("truncated" if cut else "invalid_json"), "the answer holds no JSON" + (
            " (cut at max_tokens)" if cut else ""), None
    try:
        answer = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        why = f"invalid JSON at char {exc.pos}: {exc.msg}"
        return ("truncated", f"{why} (cut at max_tokens)", None) if cut else ("invalid_json", why, None)
    problem = check.problem(answer)
    if problem is not None:
        return ("truncated", f"{problem} (cut at max_tokens)", None) if cut else ("schema_mismatch", problem, None)
    return "ok", None, answer


# -- schemas ---------------------------------------------------------------------------------------------
def _split_null(resolver: Resolver, node: Any) -> tuple[Any, bool]:
    """The node without its null alternative, and whether null is allowed."""
    node = resolver.resolve(node)
    if not isinstance(node, Mapping):
        return node, node is not False
    types = node.get("type")
    if isinstance(types, list) and "null" in types:
        rest = [t for t in types if t != "null"]
        return {**node, "type": rest[0] if len(rest) == 1 else rest}, True
    for key in ("anyOf", "oneOf"):
        branches = node.get(key)
        if isinstance(branches, list):
            others = [b for b in branches if resolver.resolve(b) != {"type": "null"}]
            if len(others) < len(branches):
                inner = resolver.resolve(others[0]) if len(others) == 1 else {key: others}
                return inner, True
    if isinstance(node.get("enum"), list) and None in node["enum"]:
        return {**node, "enum": [v for v in node["enum"] if v is not None]}, True
    return node, bool(node.get("nullable")) or types == "null"


def _shape(resolver: Resolver, node: Any, seen: frozenset[int] = frozenset()) -> Shape:
    node, nullable = _split_null(resolver, node)
    if not isinstance(node, Mapping) or id(node) in seen:
        return Shape("json", nullable)  # anything, or a recursive schema: kept as JSON text
    seen = seen | {id(node)}
    values = node.get("enum") if isinstance(node.get("enum"), list) else (
        [node["const"]] if "const" in node else None)
    if values:
        return Shape(_kind_of_values(values), nullable)
    kind = node.get("type")
    if kind in ("string", "integer", "number", "boolean"):
        return Shape(kind, nullable)
    if kind == "array" and isinstance(node.get("items"), Mapping):
        return Shape("list", nullable, item=_shape(resolver, node["items"], seen))
    if kind == "object" and isinstance(node.get("properties"), Mapping) and node["properties"]:
        return Shape("struct", nullable, fields=tuple((name, _shape(resolver, sub, seen))
                                                       for name, sub in node["properties"].items()))
    return Shape("json", nullable)


def _kind_of_values(values: Sequence[Any]) -> str:
    if all(isinstance(v, str) for v in values):
        return "string"
    if all(isinstance(v, bool) for v in values):
        return "boolean"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "integer"
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "number"
    return "json"


def _flatten(resolver: Resolver, node: Mapping[str, Any], path: tuple[str, ...], optional: bool) -> list[Column]:
    """Columns of an object's properties; a nested object's become ``<field>.<sub>``."""
    required = set(node.get("required") or ())
    columns = []
    for name, sub in node["properties"].items():
        inner, nullable = _split_null(resolver, sub)
        absent = optional or nullable or name not in required
        if isinstance(inner, Mapping) and inner.get("type") == "object" and inner.get("properties"):
            columns += _flatten(resolver, inner, (*path, name), absent)
            continue
        shape = _shape(resolver, sub)
        columns.append(Column(".".join((*path, name)), (*path, name), Shape(
            shape.kind, shape.nullable or absent, shape.item, shape.fields)))
    return columns
