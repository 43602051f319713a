"""Anthropic Message Batches over httpx."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .. import __version__
from ..errors import ConfigError
from .base import Endpoint, Provider, check_batch_id, register_provider

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
_PATH = "/v1/messages/batches"
_NO_KEY = (
    "No Anthropic API key. Set one with `export ANTHROPIC_API_KEY=sk-ant-...` (or pass api_key=...), "
    'or run without a key on the bundled local service: provider="local" '
    "(or `export BATCHFRAME_PROVIDER=local`)."
)


@register_provider
class AnthropicProvider(Provider):
    """The Anthropic Message Batches API (``ANTHROPIC_API_KEY``, ``ANTHROPIC_BASE_URL``).

    Examples
    --------
    >>> endpoint = AnthropicProvider.resolve(api_key="sk-test")
    >>> endpoint.base_url, "sk-test" in repr(endpoint)
    ('https://api.anthropic.com', False)
    """

    name = "anthropic"

    @classmethod
    def resolve(cls, *, api_key: str | None = None, base_url: str | None = None, **options: Any) -> Endpoint:
        if options:
            raise ConfigError(f"provider 'anthropic' takes no options {sorted(options)}")
        key = api_key or os.environ.get("ANTHROPIC_API_KEY")
        if not key:
            raise ConfigError(_NO_KEY)
        url = (base_url or os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        return Endpoint(cls.name, url, f"{cls.name}:{url}", api_key=key)

    def headers(self, endpoint: Endpoint) -> dict[str, str]:
        return {
            "x-api-key": endpoint.api_key or "",
            "anthropic-version": API_VERSION,
            "accept": "application/json",
            "user-agent": f"batchframe/{__version__}",
        }

    def create(self, body: bytes, *, betas: Sequence[str] = ()) -> dict:
        # Never resent by the HTTP layer: a second POST could create (and bill) a second batch (create.py).
        headers = {"anthropic-beta": ",".join(betas)} if betas else None
        return self.http.request_json("POST", _PATH, content=body, headers=headers, resend_safe=False)

    def retrieve(self, batch_id: str) -> dict:
        return self.http.request_json("GET", f"{_PATH}/{check_batch_id(batch_id)}")

    def list(self, *, limit: int = 100, after_id: str | None = None) -> dict:
        params: dict[str, Any] = {"limit": limit}
        if after_id:
            params["after_id"] = after_id
        return self.http.request_json("GET", _PATH, params=params)

    def cancel(self, batch_id: str) -> dict:
        return self.http.request_json("POST", f"{_PATH}/{check_batch_id(batch_id)}/cancel")

    def delete(self, batch_id: str) -> dict:
        return self.http.request_json("DELETE", f"{_PATH}/{check_batch_id(batch_id)}")

    @contextmanager
    def stream_results(self, batch_id: str) -> Iterator[Iterator[bytes]]:
        # The id-addressed path, not results_url: a gateway may mint a results_url we cannot dial.
        with self.http.stream("GET", f"{_PATH}/{check_batch_id(batch_id)}/results") as response:
            yield self.http.iter_bytes(response)
