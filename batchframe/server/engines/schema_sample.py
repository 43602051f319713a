"""Build a JSON value that satisfies a JSON Schema, deterministically from a seed text.

Used by the echo engine to answer tool calls with schema-valid ``input`` and structured-output requests
with schema-valid JSON text. Covers what tool and output schemas use: object (all properties, and any
``required`` name without one), array (``prefixItems``, then ``minItems`` items, at least one), string
(``enum``, ``const``, ``minLength``/``maxLength``, common ``format`` values), integer/number
(``minimum``/``maximum``, exclusive forms, ``multipleOf``), boolean, null, ``anyOf``/``oneOf`` (first
branch), ``allOf`` (merged objects) and local ``$ref`` (``#/$defs/...``, as Pydantic writes them). A
``pattern`` is not honoured. An empty ``enum`` raises ``ValueError``: no value satisfies it.
"""

from __future__ import annotations

import zlib
from typing import Any

_FORMATS = {"date": "2024-01-01", "date-time": "2024-01-01T00:00:00Z", "time": "00:00:00",
            "email": "echo@example.com", "uri": "https://example.com/",
            "uuid": "00000000-0000-4000-8000-000000000000", "duration": "P1D", "hostname": "example.com",
            "ipv4": "127.0.0.1", "ipv6": "::1", "uri-reference": "https://example.com/"}


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
        if not options:
            raise ValueError("enum is empty: no value satisfies it")
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
        props = dict(schema.get("properties") or {})
        for name in schema.get("required") or ():
            props.setdefault(name, {})
        return {name: sample(sub, seed, root=root, depth=depth + 1) for name, sub in props.items()}
    if kind == "array":
        first = [sample(sub, seed, root=root, depth=depth + 1) for sub in schema.get("prefixItems") or ()]
        n = max(1, schema.get("minItems", 1), len(first))
        n = min(n, schema.get("maxItems", n))
        rest = [sample(schema.get("items", {}), seed, root=root, depth=depth + 1) for _ in range(n - len(first))]
        return (first + rest)[:n]
    if kind == "integer":
        return _integer(schema, len(seed.split()))
    if kind == "number":
        return _number(schema, len(seed.split()))
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


def _number(schema: dict[str, Any], preferred: int) -> float:
    """A number within the bounds (inclusive or exclusive, integral or not), a multiple of ``multipleOf``."""
    low, high = schema.get("minimum"), schema.get("maximum")
    x_low, x_high = (schema.get(k) for k in ("exclusiveMinimum", "exclusiveMaximum"))
    x_low = None if isinstance(x_low, bool) else x_low
    x_high = None if isinstance(x_high, bool) else x_high
    floor = max((b for b in (low, x_low) if b is not None), default=None)
    ceiling = min((b for b in (high, x_high) if b is not None), default=None)
    value = float(preferred)
    if floor is not None and (value < floor or (value == floor and floor == x_low)):
        value = float(floor) if floor != x_low else float(floor) + 1
    if ceiling is not None and (value > ceiling or (value == ceiling and ceiling == x_high)):
        value = float(ceiling) if ceiling != x_high else float(ceiling) - 1
        if floor is not None and (value < floor or (value == floor and floor == x_low)):
            value = (float(floor) + float(ceiling)) / 2  # a narrow range: its middle
    step = schema.get("multipleOf")
    if isinstance(step, int | float) and not isinstance(step, bool) and step > 0:
        up = -(-value // step) * step
        value = float(up if ceiling is None or up < ceiling or (up == ceiling and ceiling != x_high)
                      else (value // step) * step)
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
