"""One validation layer for every Messages body the service takes: batch requests, ``/v1/messages`` and
``/v1/messages/count_tokens``.

Two stages, in the order the real API applies them:

1. **The spec's schema.** The body is checked against ``CreateMessageParams`` /
   ``CountMessageTokensParams`` (or their ``Beta*`` forms for beta calls), taken from the official OpenAPI
   spec and vendored as ``schemas/messages.json`` (the spec itself is not shipped; regenerate with
   ``python -m batchframe.server.validation path/to/anthropic-openapi.json``). A small checker covers the
   subset of JSON Schema the spec uses and words the first problem as the API (pydantic) does:
   ``system: Input should be a valid string``, ``tools.0.custom.input_schema: Field required``,
   ``thinking.enabled.budget_tokens: Input should be greater than or equal to 1024``. The location names
   the tag of a tagged union, as the API's does (``custom``, ``enabled``, ``tool_result``).
2. **The rules the schema cannot say:** the model is known (else ``not_found_error``), ``max_tokens``
   within the model's cap (and >= 1 in a batch), no ``stream`` in a batch, non-empty text blocks, valid
   base64, unique tool names, a tool ``input_schema`` / output format schema that is a valid JSON Schema
   (the message says what is wrong in it),
   ``tool_choice`` only with tools and naming one of them, ``thinking.budget_tokens`` below
   ``max_tokens``.

Every problem is raised as :class:`~batchframe.server.models.RequestInvalid` (type and message as the
API's); the worker turns it into that request's errored line, the synchronous routes into a 400 (404 for
an unknown model).

Examples
--------
>>> ok = {"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
>>> check_params(ok, ())
'claude-haiku-4-5-20251001'
>>> try:
...     check_params({**ok, "system": 5}, ())
... except RequestInvalid as exc:
...     print(exc.error_type, "|", exc.message)
invalid_request_error | system: Input should be a valid string
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
import sys
from collections.abc import Mapping
from importlib import resources
from typing import Any

from .models import RequestInvalid, check_max_tokens, resolve_model

#: Stored beside a batch request's params when the batch was created as a beta call (``?beta=true`` or an
#: ``anthropic-beta`` header): the worker then checks it against the beta schema. No params of a non-beta
#: call can hold this key (it is an extra input), so it cannot be forged.
BETA_KEY = "__batchframe_beta__"
#: The only key of the params stored for a request whose params could not be stored (nested too deeply).
UNSTORABLE_KEY = "__batchframe_unstorable__"

#: The schemas the service validates against (roots of the vendored subset).
ROOTS = ("CreateMessageParams", "BetaCreateMessageParams", "CountMessageTokensParams",
         "BetaCountMessageTokensParams")

_SCHEMA_FILE = "schemas/messages.json"
_TEXT_BLOCKS = frozenset({"RequestTextBlock", "BetaRequestTextBlock"})
_TOOL_DOCS = " Learn more about tool use at https://docs.claude.com/en/docs/tool-use."
_THINKING_DOCS = ("https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
                  "#max-tokens-and-context-window-size")


def _invalid(message: str) -> RequestInvalid:
    return RequestInvalid("invalid_request_error", message)


# -- the public checks ---------------------------------------------------------------------------------------
def check_params(params: Any, engine_models: tuple[str, ...], *, batch: bool = True, beta: bool = False) -> str:
    """Check one Messages create body; return the model id its Message reports.

    ``batch`` selects the batch rules (``max_tokens`` >= 1, no ``stream``); ``beta`` the beta schema.

    Raises
    ------
    RequestInvalid
        With the API's error type and message, e.g. ``not_found_error`` / ``"model: claude-x"``.

    Examples
    --------
    >>> body = {"model": "echo", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    >>> check_params(body, ("echo",))
    'echo'
    >>> check_params({**body, "output_format": {"type": "json_schema", "schema": {"type": "object"}}},
    ...              ("echo",), beta=True)
    'echo'
    """
    if not isinstance(params, Mapping):
        raise _invalid("params: Input should be a valid dictionary" if batch else
                       "Input should be a valid dictionary")
    validator().check(params, "BetaCreateMessageParams" if beta else "CreateMessageParams")
    model, cap = resolve_model(params["model"], engine_models)
    check_max_tokens(params["max_tokens"], cap, model, batch=batch)
    if params.get("stream"):
        raise _invalid("stream: Streaming is not supported in Message Batches." if batch else
                       "stream: Streaming is not supported by the local batchframe service; "
                       "send the request without `stream`.")
    _check_rules(params, max_tokens=params["max_tokens"])
    return model


def check_count_params(params: Any, engine_models: tuple[str, ...], *, beta: bool = False) -> None:
    """Check a count_tokens body (as a create body, without ``max_tokens``).

    Examples
    --------
    >>> check_count_params({"model": "echo", "messages": [{"role": "user", "content": "a"}]}, ("echo",))
    """
    if not isinstance(params, Mapping):
        raise _invalid("Input should be a valid dictionary")
    validator().check(params, "BetaCountMessageTokensParams" if beta else "CountMessageTokensParams")
    resolve_model(params["model"], engine_models)
    _check_rules(params, max_tokens=None)


def params_keys(*, beta: bool) -> frozenset[str]:
    """The keys a create body may have (what batch create checks at once, before storing).

    Examples
    --------
    >>> "output_format" in params_keys(beta=True), "output_format" in params_keys(beta=False)
    (True, False)
    """
    return _keys("BetaCreateMessageParams" if beta else "CreateMessageParams")


@functools.cache
def _keys(root: str) -> frozenset[str]:
    return frozenset(validator().schemas[root]["properties"])


def json_schema_problem(schema: Any) -> str | None:
    """What makes ``schema`` unusable as a JSON Schema (draft 2020-12), or None when it is fine.

    Checks the shape of the keywords that constrain (``type``, ``enum``, ``properties``, ``items``,
    ``required``, the combinators, the bounds), and refuses an empty ``enum``: no value can satisfy it.

    Examples
    --------
    >>> json_schema_problem({"type": "object", "properties": {"x": {"enum": ["a", "b"]}}}) is None
    True
    >>> json_schema_problem({"type": "object", "properties": {"x": {"enum": []}}})
    'properties.x.enum: must list at least one value (an empty enum admits no value)'
    >>> json_schema_problem({"type": "thing"})
    "(root).type: 'thing' is not a JSON type"
    """
    return _meta_problem(schema, "", 0)


def _schema_invalid(where: str, problem: str, docs: str = "") -> RequestInvalid:
    # The API's wording, with what is wrong added (the API does not say; a person fixing it wants to know).
    return _invalid(f"{where}: JSON schema is invalid ({problem}). It must match JSON Schema draft 2020-12 "
                    f"(https://json-schema.org/draft/2020-12).{docs}")


# -- rules beyond the schema -------------------------------------------------------------------------------
def _check_rules(params: Mapping[str, Any], *, max_tokens: int | None) -> None:
    messages = params["messages"]
    if not messages:
        raise _invalid("messages: at least one message is required")
    if messages[0]["role"] != "user":
        raise _invalid("messages: first message must use the \"user\" role")
    tools = params.get("tools") or []
    names: set[str] = set()
    for i, tool in enumerate(tools):
        name = tool.get("name")
        if isinstance(name, str):
            if name in names:
                raise _invalid("tools: Tool names must be unique.")
            names.add(name)
        if tool.get("type") in (None, "custom") and (problem := json_schema_problem(tool.get("input_schema"))):
            raise _schema_invalid(f"tools.{i}.custom.input_schema", problem, _TOOL_DOCS)
    choice = params.get("tool_choice")
    if choice is not None:
        if not tools:
            raise _invalid("tool_choice may only be specified while providing tools.")
        if choice.get("type") == "tool" and choice.get("name") not in names:
            raise _invalid(f"tool_choice.tool.name: Tool '{choice.get('name')}' not found in tools")
    for where, fmt in (("output_config.format", (params.get("output_config") or {}).get("format")),
                       ("output_format", params.get("output_format"))):
        if fmt is not None and (problem := json_schema_problem(fmt.get("schema"))):
            raise _schema_invalid(f"{where}.schema", problem)
    thinking = params.get("thinking")
    if max_tokens is not None and thinking is not None and thinking.get("type") == "enabled" \
            and thinking["budget_tokens"] >= max_tokens:
        raise _invalid("`max_tokens` must be greater than `thinking.budget_tokens`. "
                       f"Please consult our documentation at {_THINKING_DOCS}")


_JSON_TYPES = frozenset({"null", "boolean", "object", "array", "number", "string", "integer"})
_SUBSCHEMA = ("items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames",
              "unevaluatedItems", "unevaluatedProperties", "additionalItems", "contentSchema")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_COUNTS = ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties",
           "minContains", "maxContains")
_NUMBERS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
_MAX_DEPTH = 64


def _meta_problem(schema: Any, at: str, depth: int) -> str | None:
    """What is wrong with a JSON Schema (``"<where>: <what>"``), or None."""
    where = at or "(root)"
    if isinstance(schema, bool):
        return None
    if not isinstance(schema, dict):
        return f"{where}: a schema must be an object or a boolean"
    if depth > _MAX_DEPTH:
        return f"{where}: nested too deeply"
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        if not kinds or not all(isinstance(k, str) and k in _JSON_TYPES for k in kinds) \
                or len(set(kinds)) != len(kinds):
            return f"{where}.type: {kind!r} is not a JSON type"
    if "enum" in schema and not (isinstance(schema["enum"], list) and schema["enum"]):
        return f"{where}.enum: must list at least one value (an empty enum admits no value)"
    required = schema.get("required")
    if required is not None and not (isinstance(required, list) and all(isinstance(r, str) for r in required)
                                     and len(set(required)) == len(required)):
        return f"{where}.required: must be a list of distinct strings"
    for key in _COUNTS:
        value = schema.get(key)
        if value is not None and (type(value) is not int or value < 0):
            return f"{where}.{key}: must be a non-negative integer"
    for key in (*_NUMBERS, "multipleOf"):
        value = schema.get(key)
        if value is not None and (type(value) not in (int, float) or (key == "multipleOf" and value <= 0)):
            return f"{where}.{key}: must be a number" + (" above 0" if key == "multipleOf" else "")
    for key in ("pattern", "format", "$ref", "title", "description"):
        if key in schema and not isinstance(schema[key], str):
            return f"{where}.{key}: must be a string"
    if "pattern" in schema:
        try:
            re.compile(schema["pattern"])
        except re.error:
            return f"{where}.pattern: not a valid regular expression"
    for key in _SUBSCHEMA:
        if key in schema and (problem := _meta_problem(schema[key], f"{at}.{key}".lstrip("."), depth + 1)):
            return problem
    for key in _SCHEMA_LISTS:
        if key in schema:
            items = schema[key]
            if not (isinstance(items, list) and items):
                return f"{where}.{key}: must be a non-empty list of schemas"
            for i, sub in enumerate(items):
                if problem := _meta_problem(sub, f"{at}.{key}.{i}".lstrip("."), depth + 1):
                    return problem
    for key in _SCHEMA_MAPS:
        if key in schema:
            subs = schema[key]
            if not isinstance(subs, dict):
                return f"{where}.{key}: must be an object of schemas"
            for name, sub in subs.items():
                if problem := _meta_problem(sub, f"{at}.{key}.{name}".lstrip("."), depth + 1):
                    return problem
    return None


# -- the schema checker ------------------------------------------------------------------------------------
class _Problem(Exception):
    def __init__(self, loc: tuple[str | int, ...], message: str):
        self.loc = loc
        self.message = message
        super().__init__(message)


_TYPE_MESSAGES = {
    "string": "Input should be a valid string", "integer": "Input should be a valid integer",
    "number": "Input should be a valid number", "boolean": "Input should be a valid boolean",
    "array": "Input should be a valid list", "object": "Input should be a valid dictionary",
    "null": "Input should be None",
}
_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,), "array": (list,),
    "object": (dict,), "null": (type(None),),
}
_DICT = "Input should be a valid dictionary"
_UNIONS = frozenset({"anyOf", "oneOf", "discriminator"})


def _is(kind: str, value: Any) -> bool:
    return type(value) in _PY_TYPES.get(kind, (object,)) or kind not in _PY_TYPES


def _same(value: Any, const: Any) -> bool:
    return type(value) is type(const) and value == const  # 1 == True == 1.0 in Python; not in JSON


def _literal(values: list[Any]) -> str:
    shown = [repr(v) for v in values]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class SchemaValidator:
    """Checks values against the named schemas of an OpenAPI ``components.schemas`` subset.

    Understands what the Messages schemas use: ``$ref``, ``type``, ``const``, ``enum``, ``anyOf``,
    ``oneOf`` (with a ``discriminator`` mapping, or tagged by each branch's ``type`` const),
    ``properties`` / ``required`` / ``additionalProperties``, ``items``, ``minItems`` / ``maxItems``,
    ``minLength`` / ``maxLength`` / ``pattern``, ``format: byte`` (base64), and numeric bounds.
    Raises :class:`RequestInvalid` for the first problem, with its location.

    Examples
    --------
    >>> v = SchemaValidator({"P": {"type": "object", "additionalProperties": False,
    ...                            "properties": {"n": {"type": "integer", "minimum": 0}}}})
    >>> v.check({"n": -1}, "P")
    Traceback (most recent call last):
    ...
    batchframe.server.models.RequestInvalid: n: Input should be greater than or equal to 0
    """

    def __init__(self, schemas: dict[str, Any]):
        self.schemas = schemas
        self._tags: dict[int, dict[str | None, list[dict[str, Any]]] | None] = {}

    def check(self, value: Any, root: str) -> None:
        try:
            self._check(self.schemas[root], value, (), root)
        except _Problem as problem:
            where = ".".join(str(part) for part in problem.loc)
            raise _invalid(f"{where}: {problem.message}" if where else problem.message) from None

    def _resolve(self, schema: dict[str, Any], name: str | None) -> tuple[dict[str, Any], str | None]:
        while "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            schema = self.schemas[name]
        return schema, name

    def _check(self, schema: dict[str, Any], value: Any, loc: tuple[str | int, ...], name: str | None) -> None:
        schema, name = self._resolve(schema, name)
        if "anyOf" in schema:
            self._any_of(schema["anyOf"], value, loc, name)
        elif "oneOf" in schema:
            self._one_of(schema, value, loc, name)
        if ("anyOf" in schema or "oneOf" in schema) and schema.keys() <= _UNIONS:
            return  # nothing beside the union (else its siblings, e.g. a minimum, apply too)
        kind = schema.get("type")
        if isinstance(kind, list):
            if not any(_is(k, value) for k in kind):
                raise _Problem(loc, _TYPE_MESSAGES.get(kind[0], "Input is not valid"))
        elif kind is not None and not _is(kind, value):
            raise _Problem(loc, _TYPE_MESSAGES[kind])
        if "const" in schema and not _same(value, schema["const"]):
            raise _Problem(loc, f"Input should be {_literal([schema['const']])}")
        if "enum" in schema and not any(_same(value, v) for v in schema["enum"]):
            raise _Problem(loc, f"Input should be {_literal(schema['enum'])}")
        if type(value) is dict:
            self._object(schema, value, loc, name)
        elif type(value) is list:
            self._array(schema, value, loc, name)
        elif type(value) is str:
            self._string(schema, value, loc)
        elif type(value) in (int, float):
            self._number(schema, value, loc)

    def _object(self, schema: dict[str, Any], value: dict[str, Any], loc: tuple[str | int, ...],
                name: str | None) -> None:
        properties = schema.get("properties", {})
        required = schema.get("required", ())
        for key, sub in properties.items():
            if key in value:
                if name in _TEXT_BLOCKS and key == "text" and isinstance(value[key], str):
                    _text_block(value[key], loc)
                self._check(sub, value[key], (*loc, key), None)
            elif key in required:
                raise _Problem((*loc, key), "Field required")
        extra = schema.get("additionalProperties", True)
        if extra is True:
            return
        for key in value:
            if key not in properties:
                if extra is False:
                    raise _Problem((*loc, key), "Extra inputs are not permitted")
                self._check(extra, value[key], (*loc, key), None)

    def _array(self, schema: dict[str, Any], value: list[Any], loc: tuple[str | int, ...],
               name: str | None) -> None:
        n = len(value)
        if "minItems" in schema and n < schema["minItems"]:
            raise _Problem(loc, f"List should have at least {_plural(schema['minItems'], 'item')} after "
                                f"validation, not {n}")
        if "maxItems" in schema and n > schema["maxItems"]:
            raise _Problem(loc, f"List should have at most {_plural(schema['maxItems'], 'item')} after "
                                f"validation, not {n}")
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                self._check(items, item, (*loc, i), None)

    @staticmethod
    def _string(schema: dict[str, Any], value: str, loc: tuple[str | int, ...]) -> None:
        if "minLength" in schema and len(value) < schema["minLength"]:
            raise _Problem(loc, f"String should have at least {_plural(schema['minLength'], 'character')}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise _Problem(loc, f"String should have at most {_plural(schema['maxLength'], 'character')}")
        if "pattern" in schema and not _pattern(schema["pattern"]).search(value):
            raise _Problem(loc, f"String should match pattern '{schema['pattern']}'")
        if schema.get("format") == "byte":
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise _Problem(loc[:-1], "invalid base64 data") from None

    @staticmethod
    def _number(schema: dict[str, Any], value: float, loc: tuple[str | int, ...]) -> None:
        if "minimum" in schema and value < schema["minimum"]:
            raise _Problem(loc, f"Input should be greater than or equal to {schema['minimum']}")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            raise _Problem(loc, f"Input should be greater than {schema['exclusiveMinimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise _Problem(loc, f"Input should be less than or equal to {schema['maximum']}")
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            raise _Problem(loc, f"Input should be less than {schema['exclusiveMaximum']}")

    def _any_of(self, branches: list[dict[str, Any]], value: Any, loc: tuple[str | int, ...],
                name: str | None) -> None:
        """First branch that accepts wins; else the problem of the first branch of the value's kind (its
        inner problem is the useful one), or of the first branch (``system: 5`` -> "a valid string")."""
        first: _Problem | None = None
        fitting: _Problem | None = None
        for branch in branches:
            try:
                self._check(branch, value, loc, name)
                return
            except _Problem as problem:
                first = first or problem
                if fitting is None and self._fits(branch, value):
                    fitting = problem
        raise fitting or first or _Problem(loc, "Input is not valid")

    def _fits(self, schema: dict[str, Any], value: Any) -> bool:
        """Whether ``value`` is of the JSON kind ``schema`` wants (its inner problems aside)."""
        schema, _ = self._resolve(schema, None)
        if "anyOf" in schema:
            return any(self._fits(b, value) for b in schema["anyOf"])
        if "oneOf" in schema:
            return type(value) is dict if self._tag_table(schema) is not None else \
                any(self._fits(b, value) for b in schema["oneOf"])
        kind = schema.get("type")
        if kind is None:
            return "const" not in schema or type(value) is type(schema["const"])
        return any(_is(k, value) for k in (kind if isinstance(kind, list) else [kind]))

    def _one_of(self, schema: dict[str, Any], value: Any, loc: tuple[str | int, ...], name: str | None) -> None:
        table = self._tag_table(schema)
        if table is None:  # untagged: the first branch that accepts, else the first branch's problem
            return self._any_of(schema["oneOf"], value, loc, name)
        if type(value) is not dict:
            raise _Problem(loc, _DICT)
        prop = schema.get("discriminator", {}).get("propertyName", "type")
        tag = value.get(prop)
        if prop not in value and None not in table:
            raise _Problem(loc, f"Unable to extract tag using discriminator '{prop}'")
        candidates = table.get(tag) if isinstance(tag, str) or tag is None else None
        if not candidates:
            expected = ", ".join(repr(t) for t in table if t is not None)
            raise _Problem(loc, f"Input tag {tag!r} found using '{prop}' does not match any of the expected "
                                f"tags: {expected}")
        where = (*loc, tag if tag is not None else candidates[0]["__tag__"])
        first: _Problem | None = None
        for branch in candidates:
            try:
                self._check(branch["schema"], value, where, None)
                return
            except _Problem as problem:
                first = first or problem
        assert first is not None
        raise first

    def _tag_table(self, schema: dict[str, Any]) -> dict[str | None, list[dict[str, Any]]] | None:
        """tag -> branches of a oneOf: from its discriminator mapping, else from each branch's ``type``
        const (a branch whose ``type`` may also be null or absent takes the untagged values too)."""
        key = id(schema)
        if key in self._tags:
            return self._tags[key]
        self._tags[key] = table = self._build_tag_table(schema)
        return table

    def _build_tag_table(self, schema: dict[str, Any]) -> dict[str | None, list[dict[str, Any]]] | None:
        table: dict[str | None, list[dict[str, Any]]] = {}
        mapping = schema.get("discriminator", {}).get("mapping")
        if mapping:
            for tag, ref in mapping.items():
                table.setdefault(tag, []).append({"schema": {"$ref": ref}, "__tag__": tag})
            return table
        for branch in schema["oneOf"]:
            resolved, _ = self._resolve(branch, None)
            tag_schema = resolved.get("properties", {}).get("type")
            tags = _consts(tag_schema) if isinstance(tag_schema, dict) else None
            if not tags:
                return None  # a branch without a type tag: the oneOf is untagged
            const = next(t for t in tags if t is not None)
            for tag in tags:  # None: the branch also takes values without a type
                table.setdefault(tag, []).append({"schema": branch, "__tag__": const})
        return table


def _consts(schema: dict[str, Any]) -> list[str | None] | None:
    """The values a branch's ``type`` property allows, if it is a const, an enum, or either or null."""
    if "const" in schema:
        return [schema["const"]]
    if "enum" in schema and all(isinstance(v, str) for v in schema["enum"]):
        return list(schema["enum"])
    if "anyOf" in schema:
        out: list[str | None] = []
        for branch in schema["anyOf"]:
            if branch.get("type") == "null":
                out.append(None)
            elif (values := _consts(branch)) is not None:
                out.extend(values)
            else:
                return None
        return out if any(t is not None for t in out) else None
    return None


def _text_block(text: str, loc: tuple[str | int, ...]) -> None:
    # The API's own wording; it names the list (messages / system) the block is in.
    if not text:
        raise _Problem(loc[:1], "text content blocks must be non-empty")
    if not text.strip():
        raise _Problem(loc[:1], "text content blocks must contain non-whitespace text")


@functools.lru_cache(maxsize=256)
def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@functools.cache
def validator() -> SchemaValidator:
    """The validator of the vendored Messages schemas (loaded once)."""
    text = resources.files("batchframe.server").joinpath(_SCHEMA_FILE).read_text(encoding="utf-8")
    return SchemaValidator(json.loads(text)["schemas"])


# -- vendoring the schemas from the spec -----------------------------------------------------------------
#: Keywords the checker reads (kept); annotations (dropped). Anything else stops the build, so a keyword
#: the checker does not understand is never dropped silently.
_KEEP = frozenset({"$ref", "type", "const", "enum", "anyOf", "oneOf", "discriminator", "properties",
                   "required", "additionalProperties", "items", "minItems", "maxItems", "minLength",
                   "maxLength", "pattern", "format", "minimum", "maximum", "exclusiveMinimum",
                   "exclusiveMaximum"})
_DROP = frozenset({"description", "title", "example", "examples", "deprecated", "default"})


def build_subset(spec: dict[str, Any], roots: tuple[str, ...] = ROOTS) -> dict[str, Any]:
    """The schemas ``roots`` need from an OpenAPI spec, annotations stripped (what is vendored).

    Examples
    --------
    >>> spec = {"components": {"schemas": {"P": {"type": "object", "title": "P", "properties": {
    ...     "x": {"$ref": "#/components/schemas/X", "description": "an x"}}}, "X": {"type": "string"},
    ...     "Other": {"type": "integer"}}}}
    >>> subset = build_subset(spec, ("P",))
    >>> subset["roots"], sorted(subset["schemas"])
    (['P'], ['P', 'X'])
    >>> subset["schemas"]["P"]
    {'type': 'object', 'properties': {'x': {'$ref': '#/components/schemas/X'}}}
    """
    source = spec["components"]["schemas"]
    out: dict[str, Any] = {}
    todo = list(roots)
    while todo:
        name = todo.pop(0)
        if name in out:
            continue
        out[name] = _strip(source[name], name, todo)
    return {"roots": list(roots), "schemas": out}


def _strip(schema: Any, where: str, todo: list[str]) -> Any:
    if isinstance(schema, list):
        return [_strip(s, where, todo) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROP or key.startswith("x-"):
            continue
        if key not in _KEEP:
            raise ValueError(f"{where}: keyword {key!r} is not understood by the checker")
        if key == "$ref":
            todo.append(value.rsplit("/", 1)[-1])
            out[key] = value
        elif key == "properties":
            out[key] = {prop: _strip(sub, f"{where}.{prop}", todo) for prop, sub in value.items()}
        elif key in ("anyOf", "oneOf", "items") or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = _strip(value, where, todo)
        elif key == "discriminator":
            out[key] = {k: v for k, v in value.items() if k in ("propertyName", "mapping")}
            todo.extend(ref.rsplit("/", 1)[-1] for ref in value.get("mapping", {}).values())
        else:
            out[key] = value
    return out


def _main(argv: list[str]) -> int:  # pragma: no cover - a maintenance command
    if len(argv) != 1:
        print("usage: python -m batchframe.server.validation path/to/anthropic-openapi.json", file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as fh:
        subset = build_subset(json.load(fh))
    target = resources.files("batchframe.server").joinpath(_SCHEMA_FILE)
    with open(str(target), "w", encoding="utf-8") as fh:
        json.dump(subset, fh, indent=None, separators=(",", ":"), sort_keys=False)
        fh.write("\n")
    print(f"wrote {len(subset['schemas'])} schemas to {target}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_main(sys.argv[1:]))
