"""Who a running service is: its id, version, engine, model and engine options, never a secret.

The id is derived from the data dir (:func:`~batchframe.server.ids.service_id`), so it stays the same across
restarts and ports. An engine option whose name contains ``key``, ``token``, ``secret`` or ``password``
(any case) is a secret: it is left out of ``GET /v1/service``, of ``service.json`` and of command lines,
and only its name is listed (``secret_options``).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from .ids import service_id

SECRET_WORDS = ("key", "token", "secret", "password")


@cache
def version() -> str:
    """The installed batchframe version, or ``"unknown"`` (e.g. run from a source tree without metadata)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version("batchframe")
    except PackageNotFoundError:
        return "unknown"


def is_secret(name: str) -> bool:
    """Whether an engine option of this name holds a secret.

    Examples
    --------
    >>> [is_secret(n) for n in ("api_key", "HF_TOKEN", "Password", "base_url", "model")]
    [True, True, True, False, False]
    """
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS)


def split_options(options: dict[str, Any] | None) -> tuple[dict[str, Any], list[str]]:
    """(the options without secrets, JSON-safe; the sorted names of the secret ones left out).

    A value JSON cannot hold (a Python object passed in-process) is shown as ``"<TypeName>"``.

    Examples
    --------
    >>> split_options({"base_url": "http://127.0.0.1:1/v1", "api_key": "sk-x", "latency": 0.5})
    ({'base_url': 'http://127.0.0.1:1/v1', 'latency': 0.5}, ['api_key'])
    """
    public: dict[str, Any] = {}
    secret: list[str] = []
    for name, value in (options or {}).items():
        if is_secret(str(name)):
            secret.append(str(name))
        else:
            public[str(name)] = _jsonable(value)
    return public, sorted(secret)


def _jsonable(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return f"<{type(value).__name__}>"


def describe(*, data_dir: str | Path, engine: str, model: str,
             engine_options: dict[str, Any] | None) -> dict[str, Any]:
    """The ``GET /v1/service`` answer of a service.

    Examples
    --------
    >>> d = describe(data_dir="/tmp/d", engine="echo", model="echo", engine_options={"token": "t"})
    >>> sorted(d), d["engine_options"], d["secret_options"]
    (['engine', 'engine_options', 'id', 'model', 'secret_options', 'type', 'version'], {}, ['token'])
    """
    public, secret = split_options(engine_options)
    return {"type": "service", "id": service_id(data_dir), "version": version(), "engine": engine,
            "model": model, "engine_options": public, "secret_options": secret}
