"""The provider registry: built-ins register here through the same decorator a plug-in would use."""

from __future__ import annotations

from typing import Any

from batchframe.config import default_provider
from batchframe.errors import ConfigError
from batchframe.providers.base import Endpoint, Provider

PROVIDERS: dict[str, type[Provider]] = {}


def register_provider(cls: type[Provider]) -> type[Provider]:
    """Class decorator adding a provider under its ``name``.

    Examples
    --------
    >>> import batchframe.providers
    >>> sorted(PROVIDERS)
    ['anthropic', 'local', 'openai']
    """
    PROVIDERS[cls.name] = cls
    return cls


def provider_class(name: str) -> type[Provider]:
    """The provider registered as ``name``.

    Examples
    --------
    >>> import batchframe.providers
    >>> provider_class("local").name
    'local'
    """
    try:
        return PROVIDERS[name]
    except KeyError:
        raise ConfigError(f"unknown provider {name!r}; known: {', '.join(sorted(PROVIDERS))}") from None


def open_endpoint(provider: str | None = None, **options: Any) -> Endpoint:
    """The endpoint of a provider (default :func:`batchframe.config.default_provider`) from its settings.

    For ``local`` without ``base_url`` this starts the bundled service (or finds the one already running
    for the data folder).

    Examples
    --------
    >>> import batchframe.providers
    >>> open_endpoint("anthropic", api_key="sk-x", base_url="http://127.0.0.1:9").base_url
    'http://127.0.0.1:9'
    """
    return provider_class(default_provider(provider)).open_endpoint(**options)
