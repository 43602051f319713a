"""Anthropic Message Batches over an injected ``httpx.Client``: the calls, decoded by :mod:`.codec`."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import orjson

from batchframe._version import __version__
from batchframe.errors import ConfigError
from batchframe.providers.anthropic import codec as wire
from batchframe.providers.anthropic.pricing import batch_price_for, min_cacheable_tokens
from batchframe.providers.anthropic.results import ResultParser
from batchframe.providers.base import (
    BatchPage,
    Capabilities,
    Codec,
    Endpoint,
    Provider,
    RemoteBatch,
    check_batch_id,
)
from batchframe.providers.hosts import check_transport, choose
from batchframe.providers.registry import register_provider
from batchframe.results.cost import Price

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
_PATH = "/v1/messages/batches"
#: The keys ``/v1/messages/count_tokens`` takes (its schema, ``CountMessageTokensParams``, refuses others:
#: max_tokens, temperature, stop_sequences... change the answer, not the input).
_COUNT_KEYS = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking", "output_config",
                         "cache_control"})
#: Models without structured outputs (``output_config.format``): ``schema=`` goes to them as a forced tool.
#: Source: Anthropic's structured-outputs page (supported from Claude Opus 4.1, Sonnet 4.5 and Haiku 4.5).
_NO_STRUCTURED_OUTPUTS = re.compile(r"^claude-(3-|opus-4(-0)?(-\d{8})?$|sonnet-4(-0)?(-\d{8})?$)")
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
    >>> endpoint = AnthropicProvider.open_endpoint(api_key="sk-test")
    >>> endpoint.base_url, "sk-test" in repr(endpoint)
    ('https://api.anthropic.com', False)
    """

    name = "anthropic"
    base_url_variable = "ANTHROPIC_BASE_URL"
    default_base_url = DEFAULT_BASE_URL
    # 100,000 requests or 256 MB (read as decimal: the stricter reading) per batch; no client tags.
    capabilities = Capabilities(max_requests=100_000, max_bytes=256_000_000)
    codec: ClassVar[Codec] = wire  # the module is the codec

    @classmethod
    def price_for(cls, model: str | None) -> Price | None:
        return batch_price_for(model)

    @classmethod
    def result_parser(cls, *, chunk_bytes: int | None = None) -> ResultParser:
        return ResultParser() if chunk_bytes is None else ResultParser(chunk_bytes)

    @classmethod
    def min_cacheable_tokens(cls, model: str) -> int | None:
        return min_cacheable_tokens(model)

    @classmethod
    def structured_via(cls, model: str) -> str:
        """``"tool"`` for a model without structured outputs (Claude 3, Opus 4.0, Sonnet 4.0), else
        ``"output_config"``.

        Examples
        --------
        >>> [AnthropicProvider.structured_via(m) for m in ("claude-3-haiku-20240307", "claude-opus-4-1")]
        ['tool', 'output_config']
        """
        return "tool" if _NO_STRUCTURED_OUTPUTS.match(model) else "output_config"

    token_count: ClassVar[str] = "exact"

    def count_tokens(self, params: bytes) -> int:
        """Input tokens of one request, from ``POST /v1/messages/count_tokens`` (free; not billed).

        Examples
        --------
        >>> provider.count_tokens(b'{"model":"claude-haiku-4-5","max_tokens":8,'
        ...                       b'"messages":[{"role":"user","content":"Hi"}]}')  # doctest: +SKIP
        8
        """
        body = {k: v for k, v in orjson.loads(params).items() if k in _COUNT_KEYS}
        answer = self.http.request_json("POST", "/v1/messages/count_tokens", content=orjson.dumps(body))
        return int(answer["input_tokens"])

    @classmethod
    def open_endpoint(cls, *, api_key: str | None = None, base_url: str | None = None, **options: Any) -> Endpoint:
        if options:
            raise ConfigError(f"provider 'anthropic' takes no options {sorted(options)}")
        key = api_key or os.environ.get("ANTHROPIC_API_KEY")
        if not key:
            raise ConfigError(_NO_KEY)
        url = check_transport((base_url or cls.user_host()).rstrip("/"))
        if base_url is not None:
            choose(url)  # passed in this process: the user chose this host for the key
        return Endpoint(cls.name, url, f"{cls.name}:{url}", api_key=key)

    def headers(self, endpoint: Endpoint) -> dict[str, str]:
        return {
            "x-api-key": endpoint.api_key or "",
            "anthropic-version": API_VERSION,
            "accept": "application/json",
            "user-agent": f"batchframe/{__version__}",
        }

    def create(self, body: bytes, *, betas: Sequence[str] = ()) -> RemoteBatch:
        # Never resent by the HTTP layer: a second POST could create (and bill) a second batch (jobs/send.py).
        headers = {"anthropic-beta": ",".join(betas)} if betas else None
        return wire.decode_batch(
            self.http.request_json("POST", _PATH, content=body, headers=headers, resend_safe=False)
        )

    def retrieve(self, batch_id: str) -> RemoteBatch:
        return wire.decode_batch(self.http.request_json("GET", f"{_PATH}/{check_batch_id(batch_id)}"))

    def list(self, *, limit: int = 100, after: str | None = None) -> BatchPage:
        params: dict[str, Any] = {"limit": limit}
        if after:
            params["after_id"] = after
        page = self.http.request_json("GET", _PATH, params=params)
        batches = [wire.decode_batch(obj) for obj in page.get("data") or ()]
        return BatchPage(batches, page.get("last_id") if page.get("has_more") else None)

    def cancel(self, batch_id: str) -> RemoteBatch:
        return wire.decode_batch(self.http.request_json("POST", f"{_PATH}/{check_batch_id(batch_id)}/cancel"))

    def delete(self, batch_id: str) -> None:
        self.http.request_json("DELETE", f"{_PATH}/{check_batch_id(batch_id)}")

    @contextmanager
    def stream_results(self, batch_id: str) -> Iterator[Iterator[bytes]]:
        # The id-addressed path, not results_url: a gateway may mint a results_url we cannot dial.
        with self.http.stream("GET", f"{_PATH}/{check_batch_id(batch_id)}/results") as response:
            yield self.http.iter_bytes(response)
