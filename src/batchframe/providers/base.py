"""The provider contract and registry."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import ConfigError
from ..http import HttpClient, RetryPolicy
from ..shard import ShardLimits

PROVIDERS: dict[str, type[Provider]] = {}
_BATCH_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,200}$")


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom to talk to a provider. Resolved once; the key is held in memory only.

    ``identity`` names the remote side for the request fingerprint (for the local service: its data
    folder, not its port, which changes between runs).

    Examples
    --------
    >>> Endpoint("anthropic", "https://api.anthropic.com", "anthropic:https://api.anthropic.com", api_key="sk")
    Endpoint(provider='anthropic', base_url='https://api.anthropic.com')
    """

    provider: str
    base_url: str
    identity: str
    api_key: str | None = field(default=None, repr=False)
    data_dir: str | None = None

    def __repr__(self) -> str:
        return f"Endpoint(provider={self.provider!r}, base_url={self.base_url!r})"


class Provider:
    """One provider's batch API. Subclasses set ``name``, the limits, and implement the six methods.

    Use as a context manager: it owns one ``httpx.Client``, closed on exit.

    Examples
    --------
    >>> endpoint = resolve_endpoint("anthropic", api_key="sk-test", base_url="http://127.0.0.1:9")
    >>> with provider_class("anthropic")(endpoint) as provider:
    ...     provider.max_requests
    100000
    """

    name: ClassVar[str] = ""
    #: Most requests in one batch.
    max_requests: ClassVar[int] = 100_000
    #: Most bytes of serialized create body for one batch.
    max_bytes: ClassVar[int] = 256_000_000

    def __init__(self, endpoint: Endpoint, *, retry: RetryPolicy | None = None):
        self.endpoint = endpoint
        self.http = HttpClient(
            endpoint.base_url, self.headers(endpoint), secret=endpoint.api_key, retry=retry or RetryPolicy()
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.endpoint.base_url!r})"

    def __enter__(self) -> Provider:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the provider's HTTP client."""
        self.http.close()

    @classmethod
    def limits(cls) -> ShardLimits:
        """The provider's own shard limits."""
        return ShardLimits(max_requests=cls.max_requests, max_bytes=cls.max_bytes)

    @classmethod
    def resolve(cls, *, api_key: str | None = None, base_url: str | None = None, **options: Any) -> Endpoint:
        """Read settings (arguments, then environment) into an :class:`Endpoint`; may start a service.

        Examples
        --------
        >>> provider_class("anthropic").resolve(api_key="sk", base_url="http://127.0.0.1:9").identity
        'anthropic:http://127.0.0.1:9'
        """
        raise NotImplementedError

    def headers(self, endpoint: Endpoint) -> dict[str, str]:
        """Headers sent with every call (auth, API version)."""
        raise NotImplementedError

    def create(self, body: bytes, *, betas: Sequence[str] = ()) -> dict:
        """Create a batch from a serialized ``{"requests": [...]}`` body; return the batch object.

        ``betas`` are feature betas the requests need (the ``anthropic-beta`` header).

        Examples
        --------
        >>> provider.create(shard_body(lines))["processing_status"]  # doctest: +SKIP
        'in_progress'
        """
        raise NotImplementedError

    def retrieve(self, batch_id: str) -> dict:
        """The batch object of ``batch_id``."""
        raise NotImplementedError

    def list(self, *, limit: int = 100, after_id: str | None = None) -> dict:
        """One page: ``{"data": [...], "has_more": bool, "last_id": ...}``, newest first.

        Examples
        --------
        >>> provider.list(limit=1)["has_more"]  # doctest: +SKIP
        True
        """
        raise NotImplementedError

    def cancel(self, batch_id: str) -> dict:
        """Ask to cancel; returns the batch object (``canceling``)."""
        raise NotImplementedError

    def delete(self, batch_id: str) -> dict:
        """Delete an ended batch; returns ``{"id": ..., "type": "message_batch_deleted"}``."""
        raise NotImplementedError

    def stream_results(self, batch_id: str) -> AbstractContextManager[Iterator[bytes]]:
        """A context manager yielding an iterator of raw JSONL byte chunks.

        Examples
        --------
        >>> with provider.stream_results("msgbatch_x") as chunks:  # doctest: +SKIP
        ...     data = b"".join(chunks)
        """
        raise NotImplementedError

    def iter_batches(self, *, page_size: int = 100, max_pages: int = 10_000) -> Iterator[dict]:
        """Every remote batch, newest first, following ``after_id`` cursors (bounded by ``max_pages``).

        Examples
        --------
        >>> [b["id"] for b in provider.iter_batches()]  # doctest: +SKIP
        ['msgbatch_02...', 'msgbatch_01...']
        """
        after = None
        for _ in range(max_pages):
            page = self.list(limit=page_size, after_id=after)
            yield from page.get("data") or ()
            if not page.get("has_more") or not page.get("data"):
                return
            after = page.get("last_id")


def check_batch_id(batch_id: str) -> str:
    """A batch id goes into a URL path: refuse anything that is not a plain token.

    Examples
    --------
    >>> check_batch_id("msgbatch_01Hk")
    'msgbatch_01Hk'
    """
    if not isinstance(batch_id, str) or not _BATCH_ID_RE.match(batch_id):
        raise ValueError(f"not a batch id: {batch_id!r}")
    return batch_id


def register_provider(cls: type[Provider]) -> type[Provider]:
    """Class decorator adding a provider under its ``name``.

    Examples
    --------
    >>> sorted(PROVIDERS)
    ['anthropic', 'local']
    """
    PROVIDERS[cls.name] = cls
    return cls


def provider_class(name: str) -> type[Provider]:
    """The provider registered as ``name``.

    Examples
    --------
    >>> provider_class("local").name
    'local'
    """
    try:
        return PROVIDERS[name]
    except KeyError:
        raise ConfigError(f"unknown provider {name!r}; known: {', '.join(sorted(PROVIDERS))}") from None


def resolve_endpoint(provider: str | None = None, **options: Any) -> Endpoint:
    """Resolve a provider name (default ``$BATCHFRAME_PROVIDER`` or ``"anthropic"``) and its settings.

    Examples
    --------
    >>> resolve_endpoint("anthropic", api_key="sk-x", base_url="http://127.0.0.1:9").base_url
    'http://127.0.0.1:9'
    """
    name = provider or os.environ.get("BATCHFRAME_PROVIDER") or "anthropic"
    return provider_class(name).resolve(**options)
