"""The provider contract: a neutral :class:`RemoteBatch`, :class:`Capabilities`, and the :class:`Provider` base.

A provider is a small class that owns its wire format (its codec) and speaks to one HTTP API through an
injected ``httpx.Client``. What it hands to the rest of batchframe is neutral: :class:`RemoteBatch` values
for batch objects, Arrow tables in :data:`batchframe.results.schema.RESULT_SCHEMA` for result lines, and
:class:`batchframe.results.cost.Price` values for its price table. Built-ins register through
:func:`register_provider`, as a plug-in would.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

import httpx
import numpy as np
import pyarrow as pa

from batchframe.providers.hosts import check_stored_host
from batchframe.providers.http import HttpClient, RetryPolicy
from batchframe.requests.shards import ShardLimits
from batchframe.results.cost import Price, PriceLookup

_BATCH_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,200}$")
#: The stated approximation of a provider that cannot count tokens: one token per 4 bytes of the request's
#: JSON (English text runs 3.5-4.5 characters a token; the JSON punctuation makes this an over-count).
BYTES_PER_TOKEN = 4


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom to talk to a provider. Opened once; the key is held in memory only.

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
    #: For a local service: the engine facts a job pins (id, engine, model, engine_options); never a secret.
    service: dict[str, Any] | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"Endpoint(provider={self.provider!r}, base_url={self.base_url!r})"


@dataclass(frozen=True)
class RemoteBatch:
    """A remote batch as batchframe sees it, whatever the provider's wire shape.

    ``state`` is ``in_progress``, ``canceling`` or ``ended``; ``counts`` has a value for every key of
    :data:`batchframe.types.COUNT_KEYS`.

    Examples
    --------
    >>> b = RemoteBatch("b1", "ended", {"processing": 0, "succeeded": 2, "errored": 1, "canceled": 0, "expired": 0})
    >>> b.ended, b.n_requests
    (True, 3)
    """

    id: str
    state: str
    counts: dict[str, int]
    created_at: datetime | None = None
    ended_at: datetime | None = None
    expires_at: datetime | None = None
    #: The client's tags on the batch (OpenAI ``metadata``); None where the API has none (Anthropic).
    tags: dict[str, str] | None = None

    @property
    def ended(self) -> bool:
        return self.state == "ended"

    @property
    def n_requests(self) -> int:
        """Requests in the batch (the sum of its counts)."""
        return sum(self.counts.values())


@dataclass(frozen=True)
class Capabilities:
    """What a provider's batch API allows and needs.

    Examples
    --------
    >>> Capabilities(max_requests=100_000, max_bytes=256_000_000).needs_upload
    False
    """

    #: Most requests in one batch.
    max_requests: int
    #: Most bytes of serialized create body (or uploaded file) for one batch.
    max_bytes: int
    #: Whether requests go up as a file before the batch is created (OpenAI) or inline (Anthropic).
    needs_upload: bool = False
    #: Whether a batch carries a client-chosen tag (metadata) that identifies its job after a crash.
    client_tags: bool = False
    #: Whether the API has batch embeddings (``df.batch.embed``).
    embeddings: bool = False


class Codec(Protocol):
    """A provider's wire format for requests (see :mod:`batchframe.providers.anthropic.codec`)."""

    ENVELOPE_BYTES: int

    def encode_lines(self, custom_ids: Sequence[str], params: Sequence[bytes]) -> list[bytes]: ...

    def rekey(self, line: bytes, custom_id: str) -> bytes: ...

    def frame_shard(self, lines: Sequence[bytes]) -> bytes: ...

    def body_size(self, sizes: Sequence[int] | np.ndarray) -> int: ...

    def set_max_tokens(self, line: bytes, max_tokens: int) -> bytes: ...

    def params_of(self, line: bytes) -> bytes: ...


class ResultParser(Protocol):
    """Streamed result bytes in, one Arrow table in the shared result schema out."""

    n_bad_lines: int

    def feed(self, data: bytes) -> None: ...

    def drain(self) -> list[pa.Table]: ...

    def finish(self) -> pa.Table: ...


@dataclass(frozen=True)
class BatchPage:
    """One page of the batch list, newest first; ``next_cursor`` is None on the last page."""

    batches: list[RemoteBatch]
    next_cursor: str | None


class Provider:
    """One provider's batch API. Subclasses set ``name``, ``capabilities`` and ``codec`` and implement the calls.

    Use as a context manager. It talks through the ``httpx.Client`` it is given (and leaves it open for
    its owner), or through one it makes and closes on exit.

    Examples
    --------
    >>> from batchframe.providers import open_endpoint, provider_class
    >>> endpoint = open_endpoint("anthropic", api_key="sk-test", base_url="http://127.0.0.1:9")
    >>> with provider_class("anthropic")(endpoint) as provider:
    ...     provider.capabilities.max_requests
    100000
    """

    name: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities] = Capabilities(max_requests=100_000, max_bytes=256_000_000)
    codec: ClassVar[Codec]
    #: The environment variable that names the user's host, and the host used when it is unset.
    base_url_variable: ClassVar[str] = ""
    default_base_url: ClassVar[str] = ""

    def __init__(self, endpoint: Endpoint, *, client: httpx.Client | None = None, retry: RetryPolicy | None = None):
        self.endpoint = endpoint
        self.http = HttpClient(
            endpoint.base_url,
            self.headers(endpoint),
            secret=endpoint.api_key,
            retry=retry or RetryPolicy(),
            client=client,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.endpoint.base_url!r})"

    def __enter__(self) -> Provider:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP client, if this provider made it."""
        self.http.close()

    @classmethod
    def limits(cls) -> ShardLimits:
        """The provider's own shard limits.

        Examples
        --------
        >>> from batchframe.providers import provider_class
        >>> provider_class("anthropic").limits().max_requests
        100000
        """
        return ShardLimits(max_requests=cls.capabilities.max_requests, max_bytes=cls.capabilities.max_bytes)

    @classmethod
    def price_for(cls, model: str | None) -> Price | None:
        """The batch price of ``model`` in this provider's table, or None (then the cost is null).

        Examples
        --------
        >>> from batchframe.providers import provider_class
        >>> provider_class("anthropic").price_for("claude-haiku-4-5").output
        2.5
        """
        return None

    @classmethod
    def pricer(cls, model: str) -> tuple[PriceLookup, str | None]:
        """How the results of a job that named ``model`` are priced: a lookup by the model each result
        names, and a note when the prices are an estimate (None when they are the provider's own bill).

        Examples
        --------
        >>> from batchframe.providers import provider_class
        >>> lookup, note = provider_class("anthropic").pricer("claude-haiku-4-5")
        >>> lookup("claude-haiku-4-5").input, note
        (0.5, None)
        """
        return cls.price_for, None

    @classmethod
    def min_cacheable_tokens(cls, model: str) -> int | None:
        """The shortest prefix ``model`` caches, in tokens; None when unknown (then nothing is warned).

        Examples
        --------
        >>> from batchframe.providers import provider_class
        >>> provider_class("anthropic").min_cacheable_tokens("claude-sonnet-4-5")
        1024
        """
        return None

    @classmethod
    def structured_via(cls, model: str) -> str:
        """How ``schema=`` is asked of ``model`` (see :mod:`batchframe.requests.structured`):
        ``"output_config"`` (structured outputs), ``"response_format"`` (the same, lowered by an OpenAI codec)
        or ``"tool"`` (a forced tool, for a model without structured outputs).

        Examples
        --------
        >>> from batchframe.providers import provider_class
        >>> provider_class("anthropic").structured_via("claude-haiku-4-5")
        'output_config'
        """
        return "output_config"

    #: ``"exact"`` when :meth:`count_tokens` asks the provider (or its tokenizer), else ``"approximate"``.
    token_count: ClassVar[str] = "approximate"

    def count_tokens(self, params: bytes) -> int:
        """Input tokens of one request (its serialized Messages parameters); nothing billable is sent.

        This default is the stated approximation (:data:`BYTES_PER_TOKEN` bytes a token) for a provider
        that cannot count; providers that can override it (Anthropic: ``/v1/messages/count_tokens``).

        Examples
        --------
        >>> Provider.count_tokens(None, b"x" * 10)  # the byte rule: 10 bytes, about 3 tokens
        3
        """
        return max(1, -(-len(params) // BYTES_PER_TOKEN))

    @classmethod
    def result_parser(cls, *, chunk_bytes: int | None = None) -> ResultParser:
        """A new parser of this provider's result stream, parsing about ``chunk_bytes`` of lines at a time."""
        raise NotImplementedError

    @classmethod
    def open_endpoint(cls, *, api_key: str | None = None, base_url: str | None = None, **options: Any) -> Endpoint:
        """Read settings (arguments, then environment) into an :class:`Endpoint`; ``local`` may start a service.

        Examples
        --------
        >>> from batchframe.providers import provider_class
        >>> provider_class("anthropic").open_endpoint(api_key="sk", base_url="http://127.0.0.1:9").identity
        'anthropic:http://127.0.0.1:9'
        """
        raise NotImplementedError

    @classmethod
    def user_host(cls) -> str:
        """The host the user chose through the environment (``base_url_variable``), else the default host."""
        return (os.environ.get(cls.base_url_variable) or cls.default_base_url).rstrip("/")

    @classmethod
    def reopen_endpoint(cls, record: dict[str, Any], *, api_key: str | None = None,
                        base_url: str | None = None) -> Endpoint:
        """The endpoint of a stored job (``record``: its manifest). The key goes only to a host the user
        chose: a stored host that is neither :meth:`user_host` nor a ``base_url=`` of this process is refused
        (:func:`batchframe.providers.hosts.check_stored_host`); ``base_url`` given now is the user's choice.

        Examples
        --------
        >>> from batchframe.providers import provider_class
        >>> record = {"name": "j", "base_url": "https://elsewhere.example.com"}
        >>> provider_class("anthropic").reopen_endpoint(record, api_key="sk")
        Traceback (most recent call last):
        ...
        batchframe.errors.ConfigError: job 'j' was sent to https://elsewhere.example.com, but your API key ...
        """
        cls.check_reopen(record, base_url=base_url)
        return cls.open_endpoint(api_key=api_key, base_url=base_url or record["base_url"])

    @classmethod
    def check_reopen(cls, record: dict[str, Any], *, base_url: str | None = None) -> None:
        """Raise, without any network, when re-opening the stored job would send the key to a host the user
        did not choose (see :meth:`reopen_endpoint`)."""
        if base_url is None:
            check_stored_host(record["name"], record["base_url"], environment=cls.user_host(),
                              variable=cls.base_url_variable)

    def headers(self, endpoint: Endpoint) -> dict[str, str]:
        """Headers sent with every call (auth, API version)."""
        raise NotImplementedError

    def stage(self, body: bytes, *, tag: str) -> dict[str, Any]:
        """For a provider whose requests go up as a file first (``capabilities.needs_upload``): upload the
        shard's framed ``body`` and return what :meth:`create` needs (persisted on the shard in between, so
        a crash between the two steps neither loses the file nor uploads it twice). Inline providers: ``{}``.

        Examples
        --------
        >>> Provider.stage(None, b"{}", tag="uid:a1:s0")
        {}
        """
        return {}

    def unstage(self, staged: dict[str, Any] | None) -> None:
        """Remove what :meth:`stage` uploaded, once the batch has ended (no-op for inline providers)."""

    def create(self, body: bytes, *, betas: Sequence[str] = ()) -> RemoteBatch:
        """Create a batch from a framed shard body (:meth:`Codec.frame_shard`).

        ``betas`` are feature betas the requests need (for Anthropic, the ``anthropic-beta`` header).

        Examples
        --------
        >>> provider.create(provider.codec.frame_shard(lines)).state  # doctest: +SKIP
        'in_progress'
        """
        raise NotImplementedError

    def retrieve(self, batch_id: str) -> RemoteBatch:
        """The batch ``batch_id`` now."""
        raise NotImplementedError

    def list(self, *, limit: int = 100, after: str | None = None) -> BatchPage:
        """One page of batches, newest first.

        Examples
        --------
        >>> provider.list(limit=1).next_cursor  # doctest: +SKIP
        'msgbatch_01...'
        """
        raise NotImplementedError

    def cancel(self, batch_id: str) -> RemoteBatch:
        """Ask to cancel; returns the batch (``canceling``)."""
        raise NotImplementedError

    def delete(self, batch_id: str) -> None:
        """Delete an ended batch."""
        raise NotImplementedError

    def stream_results(self, batch_id: str) -> AbstractContextManager[Iterator[bytes]]:
        """A context manager yielding an iterator of raw result byte chunks.

        Examples
        --------
        >>> with provider.stream_results("msgbatch_x") as chunks:  # doctest: +SKIP
        ...     data = b"".join(chunks)
        """
        raise NotImplementedError

    def iter_batches(self, *, page_size: int = 100, max_pages: int = 10_000) -> Iterator[RemoteBatch]:
        """Every remote batch, newest first, following the list's cursors (bounded by ``max_pages``).

        Examples
        --------
        >>> [b.id for b in provider.iter_batches()]  # doctest: +SKIP
        ['msgbatch_02...', 'msgbatch_01...']
        """
        after = None
        for _ in range(max_pages):
            page = self.list(limit=page_size, after=after)
            yield from page.batches
            if page.next_cursor is None or not page.batches:
                return
            after = page.next_cursor


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

