"""Providers: small classes that own a batch API's wire format and speak it over an injected ``httpx.Client``.

Each returns neutral values (:class:`~batchframe.providers.base.RemoteBatch`, results in the shared Arrow
schema). Built-ins register through the same decorator a plug-in would use.
"""

from __future__ import annotations

from batchframe.providers import anthropic as _anthropic  # noqa: F401  (registers "anthropic")
from batchframe.providers import local as _local  # noqa: F401  (registers "local")
from batchframe.providers import openai as _openai  # noqa: F401  (registers "openai")
from batchframe.providers.base import BatchPage, Capabilities, Endpoint, Provider, RemoteBatch
from batchframe.providers.http import RetryPolicy
from batchframe.providers.registry import PROVIDERS, open_endpoint, provider_class, register_provider

__all__ = [
    "PROVIDERS",
    "BatchPage",
    "Capabilities",
    "Endpoint",
    "Provider",
    "RemoteBatch",
    "RetryPolicy",
    "open_endpoint",
    "provider_class",
    "register_provider",
]
