"""JSON values against a JSON schema: local ``$ref`` resolution and the first way a value fails.

The subset output and tool schemas use (Pydantic's included): ``type`` (or a list of types), ``enum``,
``const``, ``properties`` / ``required`` / ``additionalProperties``, ``items`` / ``minItems`` / ``maxItems``,
``minLength`` / ``maxLength`` / ``pattern``, ``minimum`` / ``maximum`` (and exclusive), ``anyOf`` / ``oneOf``
(any branch), ``allOf`` and local ``$ref``. Problems are worded with a path: ``$.address.city: expected
string, got integer 3``. batchframe does not depend on ``jsonschema``: this is what parsing needs, no more.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from batchframe.errors import InputError

_MAX_REFS = 64


class Resolver:
    """Follows local ``$ref`` (``#/$defs/...``, as Pydantic writes them) within one root schema.

    Examples
    --------
    >>> Resolver({"$defs": {"K": {"type": "string"}}}).resolve({"$ref": "#/$defs/K"})
    {'type': 'string'}
    """

    def __init__(self, root: Mapping[str, Any]):
        self.root = root

    def resolve(self, node: Any) -> Any:
        """``node`` with its ``$ref`` (and a lone ``allOf`` wrapper) followed."""
        for _ in range(_MAX_REFS):
            if not isinstance(node, Mapping):
                return node
            if "$ref" in node:
                node = self._target(str(node["$ref"]))
            elif isinstance(node.get("allOf"), list) and len(node["allOf"]) == 1 and "type" not in node:
                node = node["allOf"][0]  # a lone allOf wraps a $ref to carry a description
            else:
                return node
        raise InputError("the schema's $ref chain is too long (a $ref cycle?)")

    def _target(self, ref: str) -> Any:
        if not ref.startswith("#"):
            raise InputError(f"the schema's $ref {ref!r} is not local; inline it (only '#/...' is followed)")
        node: Any = self.root
        for part in [p for p in ref[1:].split("/") if p]:
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, Mapping) or part not in node:
                raise InputError(f"the schema's $ref {ref!r} points nowhere")
            node = node[part]
        return node


@dataclass
class Validator:
    """The first way a JSON value fails a schema (see the module docstring), or None when it is valid.

    Examples
    --------
    >>> Validator({"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}).problem({})
    "$: missing required property 'n'"
    """

    root: Mapping[str, Any]
    _resolver: Resolver = field(init=False)
    _patterns: dict[str, re.Pattern[str]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._resolver = Resolver(self.root)

    def problem(self, value: Any) -> str | None:
        """The first problem of ``value``, worded with its path; None when it is valid."""
        return self._check(value, self.root, "$")

    def _check(self, value: Any, node: Any, at: str) -> str | None:
        node = self._resolver.resolve(node)
        if node is True or not isinstance(node, Mapping):
            return None if node is not False else f"{at}: no value is allowed here"
        for key in ("anyOf", "oneOf"):
            if isinstance(node.get(key), list):
                problems = [self._check(value, branch, at) for branch in node[key]]
                if all(problems):
                    return problems[0] if len(problems) == 1 else f"{at}: {show(value)} matches no allowed shape"
        for branch in node.get("allOf") or ():
            if problem := self._check(value, branch, at):
                return problem
        if "const" in node and not _same(value, node["const"]):
            return f"{at}: expected {node['const']!r}, got {show(value)}"
        if isinstance(node.get("enum"), list) and not any(_same(value, v) for v in node["enum"]):
            return f"{at}: {show(value)} is not one of {node['enum']}"
        types = node.get("type")
        if types is not None:
            types = [types] if isinstance(types, str) else list(types)
            if not any(_is(value, t) for t in types):
                return f"{at}: expected {' or '.join(types)}, got {show(value)}"
        if isinstance(value, dict):
            return self._object(value, node, at)
        if isinstance(value, list):
            return self._array(value, node, at)
        if isinstance(value, str):
            return self._string(value, node, at)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return _number(value, node, at)
        return None

    def _object(self, value: dict[str, Any], node: Mapping[str, Any], at: str) -> str | None:
        properties = node.get("properties") or {}
        required = node.get("required") or ()
        missing = [k for k in required if k not in value]
        if missing:
            return f"{at}: missing required property {missing[0]!r}"
        extra = node.get("additionalProperties", True)
        for key, item in value.items():
            where = f"{at}.{key}"
            if key in properties:
                if item is None and key not in required:
                    continue  # null for an optional property reads as absent (see the module docstring)
                if problem := self._check(item, properties[key], where):
                    return problem
            elif extra is False:
                return f"{at}: property {key!r} is not in the schema"
            elif isinstance(extra, Mapping) and (problem := self._check(item, extra, where)):
                return problem
        return None

    def _array(self, value: list[Any], node: Mapping[str, Any], at: str) -> str | None:
        if "minItems" in node and len(value) < node["minItems"]:
            return f"{at}: {len(value)} item(s), fewer than minItems {node['minItems']}"
        if "maxItems" in node and len(value) > node["maxItems"]:
            return f"{at}: {len(value)} item(s), more than maxItems {node['maxItems']}"
        items = node.get("items")
        if isinstance(items, Mapping):
            for i, item in enumerate(value):
                if problem := self._check(item, items, f"{at}[{i}]"):
                    return problem
        return None

    def _string(self, value: str, node: Mapping[str, Any], at: str) -> str | None:
        if "minLength" in node and len(value) < node["minLength"]:
            return f"{at}: shorter than minLength {node['minLength']}"
        if "maxLength" in node and len(value) > node["maxLength"]:
            return f"{at}: longer than maxLength {node['maxLength']}"
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            compiled = self._patterns.get(pattern)
            if compiled is None:
                compiled = self._patterns.setdefault(pattern, re.compile(pattern))
            if not compiled.search(value):
                return f"{at}: {show(value)} does not match pattern {pattern!r}"
        return None


def _number(value: float, node: Mapping[str, Any], at: str) -> str | None:
    for key, fails in (("minimum", lambda b: value < b), ("maximum", lambda b: value > b),
                       ("exclusiveMinimum", lambda b: value <= b), ("exclusiveMaximum", lambda b: value >= b)):
        bound = node.get(key)
        if isinstance(bound, int | float) and not isinstance(bound, bool) and fails(bound):
            return f"{at}: {value!r} is out of range ({key} {bound})"
    return None


def _is(value: Any, kind: str) -> bool:
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer())
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return type(value) is {"string": str, "boolean": bool, "object": dict, "array": list, "null": type(None)}.get(kind)


def _same(value: Any, expected: Any) -> bool:
    return isinstance(value, bool) == isinstance(expected, bool) and value == expected


def show(value: Any) -> str:
    """A value as a problem names it: its JSON type, and the value when it is short and scalar.

    Examples
    --------
    >>> show(3), show("x"), show([1])
    ('integer 3', "string 'x'", 'array')
    """
    kind = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object",
            type(None): "null"}.get(type(value), type(value).__name__)
    text = orjson.dumps(value).decode() if not isinstance(value, str) else repr(value)
    return kind if kind in ("array", "object", "null") else f"{kind} {short(text, 40)}"


def short(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters, marked with an ellipsis.

    Examples
    --------
    >>> short("abcdef", 3)
    'abc…'
    """
    return text if len(text) <= limit else text[:limit] + "…"
