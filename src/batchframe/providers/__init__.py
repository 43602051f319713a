"""Providers: small classes that create, retrieve, list, cancel and delete remote batches and stream
their results as bytes. Built-ins register through the same decorator a plug-in would use."""

from __future__ import annotations

from . import anthropic as _anthropic  # noqa: F401  (registers "anthropic")
from . import local as _local  # noqa: F401  (registers "local")
from .base import PROVIDERS, Endpoint, Provider, provider_class, register_provider, resolve_endpoint

__all__ = ["PROVIDERS", "Endpoint", "Provider", "provider_class", "register_provider", "resolve_endpoint"]
