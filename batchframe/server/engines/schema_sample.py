"""Build a JSON value that satisfies a JSON Schema, deterministically from a seed text.

Used by the echo engine to answer tool calls with schema-valid ``input``. Covers what tool schemas use:
object (all properties), array (``minItems`` items, at least one), string (``enum``, ``const``,
``minLength``/``maxLength``, common ``format`` values), integer/number (``minimum``/``maximum``, exclusive
forms, ``multipleOf`` for integers), boolean, null, ``anyOf``/``oneOf`` (first branch), ``allOf``
(merged objects) and local ``$ref``. A ``pattern`` is not honoured.
"""

from __future__ import annotations

import zlib
from typing import Any

_FORMATS = {"date": "2024-01-01", "date-time": "2024-01-01T00:00:00Z", "time": "00:00:00",
            "email": "echo@example.com", "uri": "https://example.com/",
            "uuid": "00000000-0000-4000-8000-000000000000"}


def sample(schema: Any, seed: str, *, root: Any = None, depth: int = 0) -> Any:
    """A value valid against ``schema``, derived from ``seed``.

    Examples
    --------
    >>> sample({"type": "object", "properties": {"n": {"type": "integer", "minimum": 3}},
    ...         "required": ["n"]}, "hi")
    {'n': 3}
    """
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > 20:
        return None
    if "$ref" in schema:
        return sample(_resolve(schema["$ref"], root), seed, root=root, depth=depth + 1)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        options = schema["enum"]
        return options[zlib.crc32(seed.encode()) % len(options)]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return sample(schema[key][0], seed, root=root, depth=depth + 1)
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            value = sample(part, seed, root=root, depth=depth + 1)
            if isinstance(value, dict):
                merged.update(value)
        return merged
    return _by_type(schema, _type_of(schema), seed, root, depth)


def _type_of(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    return kind


def _by_type(schema: dict[str, Any], kind: str, seed: str, root: Any, depth: int) -> Any:
    if kind == "object":
        props = schema.get("properties", {})
        return {name: sample(sub, seed, root=root, depth=depth + 1) for name, sub in props.items()}
    if kind == "array":
        n = max(1, schema.get("minItems", 1))
        n = min(n, schema.get("maxItems", n))
        return [sample(schema.get("items", {}), seed, root=root, depth=depth + 1) for _ in range(n)]
    if kind == "integer":
        return _integer(schema, len(seed.split()))
    if kind == "number":
        return float(_integer(schema, len(seed.split()))) if "multipleOf" not in schema else \
            schema["multipleOf"] * max(1, round(_integer(schema, 1) / schema["multipleOf"]))
    if kind == "boolean":
        return len(seed.split()) % 2 == 0
    if kind == "null":
        return None
    return _string(schema, seed)


def _integer(schema: dict[str, Any], preferred: int) -> int:
    low = schema.get("minimum")
    if "exclusiveMinimum" in schema and not isinstance(schema["exclusiveMinimum"], bool):
        low = int(schema["exclusiveMinimum"]) + 1
    high = schema.get("maximum")
    if "exclusiveMaximum" in schema and not isinstance(schema["exclusiveMaximum"], bool):
        high = int(schema["exclusiveMaximum"]) - 1
    value = preferred
    if low is not None:
        value = max(value, int(-(-low // 1)))
    if high is not None:
        value = min(value, int(high // 1))
    step = schema.get("multipleOf")
    if isinstance(step, int) and step > 0:
        value = -(-value // step) * step
    return value


def _string(schema: dict[str, Any], seed: str) -> str:
    if schema.get("format") in _FORMATS:
        return _FORMATS[schema["format"]]
    text = seed.strip() or "echo"
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    if high is not None:
        text = text[:high]
    if len(text) < low:
        text = text + "x" * (low - len(text))
    return text


def _resolve(ref: str, root: Any) -> Any:
    node = root
    for part in ref.lstrip("#/").split("/"):
        if not part:
            continue
        node = node.get(part.replace("~1", "/").replace("~0", "~"), {}) if isinstance(node, dict) else {}
    return node
