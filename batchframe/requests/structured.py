"""``schema=``: the shape of every answer, as a JSON schema, and how each request asks for it.

Invariant: the schema a job records (:class:`Structured`) is the one its typed result columns are derived
from; a provider may send a transformed copy (OpenAI strict mode), never another shape. It is asked for in
one of two ways, chosen per provider and model before anything is built:

- ``output_config`` (``output_config.format`` ``{"type": "json_schema", "schema": ...}``): the answer's text
  is the JSON; OpenAI's codec lowers it to ``response_format`` (strict);
- ``tool``: a tool named :data:`STRUCTURED_TOOL` whose ``input_schema`` is the schema, forced with
  ``tool_choice``, for a model without structured outputs; the JSON is the ``tool_use`` input.

A request that already forces one tool (``tool_choice={"type": "tool", "name": ...}``) or gives
``output_config.format`` itself needs no ``schema=``: :func:`detect` finds its schema. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from batchframe.errors import InputError

#: The name of the tool a schema is sent as when the model has no structured outputs.
STRUCTURED_TOOL = "structured_output"
#: How a schema can be asked for (``response_format``: OpenAI's name for ``output_config`` once lowered).
VIAS = ("output_config", "tool", "response_format")


@dataclass(frozen=True)
class Structured:
    """The answer's schema and how the requests ask for it (recorded in the job's manifest).

    ``via`` is ``output_config``, ``response_format`` (the answer's text is the JSON) or ``tool`` (the
    ``tool_use`` input is); ``source`` says where the schema came from: ``schema`` (the ``schema=``
    argument), ``tool`` (a forced tool's ``input_schema``) or ``output_config`` (given as a parameter).

    Examples
    --------
    >>> Structured({"type": "object"}, "tool", "schema", STRUCTURED_TOOL).in_tool_use
    True
    """

    schema: dict[str, Any]
    via: str
    source: str
    tool: str | None = None

    @property
    def in_tool_use(self) -> bool:
        """Whether the JSON comes back as the ``tool_use`` input (else as the text)."""
        return self.via == "tool"

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data for the manifest.

        Examples
        --------
        >>> Structured({"type": "object"}, "output_config", "schema").to_json()["via"]
        'output_config'
        """
        return asdict(self)


def json_schema(schema: Any) -> dict[str, Any]:
    """The JSON schema of ``schema``: a Pydantic model class (its ``model_json_schema()``) or a dict.

    The root must be an object schema (its properties become columns); a copy is returned.

    Examples
    --------
    >>> json_schema({"type": "object", "properties": {"stars": {"type": "integer"}}})["properties"]
    {'stars': {'type': 'integer'}}
    >>> json_schema("stars")
    Traceback (most recent call last):
    ...
    batchframe.errors.InputError: schema= takes a Pydantic model class or a JSON-schema dict, got str
    """
    make = getattr(schema, "model_json_schema", None) if isinstance(schema, type) else None
    if callable(make):
        schema = make()  # duck-typed: Pydantic is not a dependency of batchframe
    if not isinstance(schema, Mapping):
        raise InputError(f"schema= takes a Pydantic model class or a JSON-schema dict, got {type(schema).__name__}")
    try:
        copy = orjson.loads(orjson.dumps(schema))
    except TypeError as exc:
        raise InputError(f"schema= must be plain JSON data (dicts, lists, strings, numbers): {exc}") from exc
    if copy.get("type") != "object" or not isinstance(copy.get("properties"), dict):
        raise InputError("schema= must describe a JSON object with properties (its fields become columns), e.g. "
                         "{'type': 'object', 'properties': {'stars': {'type': 'integer'}}, 'required': ['stars']}")
    return copy


def apply_schema(params: dict[str, Any], schema: Any, via: str = "output_config") -> Structured:
    """Add ``schema`` to the Messages ``params`` (changed in place) the way ``via`` says; returns the record.

    Examples
    --------
    >>> params = {"model": "m", "max_tokens": 8}
    >>> apply_schema(params, {"type": "object", "properties": {}}, "tool").tool, params["tool_choice"]
    ('structured_output', {'type': 'tool', 'name': 'structured_output'})
    >>> sorted(apply_schema({}, {"type": "object", "properties": {}}).to_json())
    ['schema', 'source', 'tool', 'via']
    """
    if via not in VIAS:
        raise InputError(f"schema via {via!r} is not known; one of {VIAS}")
    for key, why in (("tool_choice", "it forces the answer's shape already"),
                     ("output_format", "it gives the schema already")):
        if key in params:
            raise InputError(f"schema= cannot be combined with {key}: {why}; leave {key} out")
    config = params.get("output_config")
    if config is not None and (not isinstance(config, Mapping) or "format" in config):
        raise InputError("schema= cannot be combined with output_config.format; give the schema once, as schema=")
    body = json_schema(schema)
    if via == "tool":
        tools = params.get("tools") or []
        if not isinstance(tools, list):
            raise InputError("schema= on this model is sent as a forced tool, so tools must be one list for every row")
        params["tools"] = [*tools, {"name": STRUCTURED_TOOL, "description": "Record the answer in this structure.",
                                    "input_schema": body}]
        params["tool_choice"] = {"type": "tool", "name": STRUCTURED_TOOL}
        return Structured(body, via, "schema", STRUCTURED_TOOL)
    params["output_config"] = {**(config or {}), "format": {"type": "json_schema", "schema": body}}
    return Structured(body, via, "schema")


def detect(params: Mapping[str, Any]) -> Structured | None:
    """The schema a request asks for without ``schema=``: a forced tool's ``input_schema``, or
    ``output_config.format``; None when it asks for neither (or per row, from a column).

    Examples
    --------
    >>> tool = {"name": "label", "input_schema": {"type": "object", "properties": {"x": {"type": "string"}}}}
    >>> detect({"tools": [tool], "tool_choice": {"type": "tool", "name": "label"}}).source
    'tool'
    >>> detect({"tools": [tool]}) is None
    True
    """
    choice, tools = params.get("tool_choice"), params.get("tools")
    if isinstance(choice, Mapping) and choice.get("type") == "tool" and isinstance(tools, list):
        tool = next((t for t in tools if isinstance(t, Mapping) and t.get("name") == choice.get("name")), None)
        if tool is not None and _object_schema(tool.get("input_schema")):
            return Structured(json_schema(tool["input_schema"]), "tool", "tool", str(tool["name"]))
        return None
    config = params.get("output_config")
    fmt = config.get("format") if isinstance(config, Mapping) else params.get("output_format")
    if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema" and _object_schema(fmt.get("schema")):
        return Structured(json_schema(fmt["schema"]), "output_config", "output_config")
    return None


def _object_schema(schema: Any) -> bool:
    return isinstance(schema, Mapping) and schema.get("type") == "object" and isinstance(schema.get("properties"),
                                                                                           Mapping)
