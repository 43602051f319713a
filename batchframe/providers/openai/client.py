"""The OpenAI Batch API (Files + Batches) over an injected ``httpx.Client``.

A shard goes out in two steps, each persisted by :mod:`batchframe.jobs.send`: :meth:`OpenAIProvider.stage`
uploads its input file (named after the shard's tag, so a process killed before it could record the file id
finds that file on the next run instead of uploading again), then :meth:`OpenAIProvider.create` creates the
batch with the tag in its ``metadata``, which makes orphan matching exact. The input file is deleted once
the batch has ended (:meth:`OpenAIProvider.unstage`); :meth:`OpenAIProvider.delete` removes the output and
error files (OpenAI batches themselves cannot be deleted).

Dialects: ``base_url`` is the API root including ``/v1`` (``OPENAI_BASE_URL``), so any OpenAI-compatible
batch host works; ``provider_options={"api_version": "2024-10-21"}`` adds Azure's ``api-version`` query
parameter and ``api-key`` header. Tested against the bundled local service (``batchframe serve``), which
speaks the same Files and Batches API.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import orjson

from batchframe._version import __version__
from batchframe.errors import ConfigError, NotFoundError
from batchframe.providers.base import BatchPage, Capabilities, Codec, Endpoint, Provider, RemoteBatch, check_batch_id
from batchframe.providers.hosts import check_transport, choose
from batchframe.providers.openai import codec as wire
from batchframe.providers.openai.pricing import batch_price_for
from batchframe.providers.openai.results import ResultParser
from batchframe.providers.registry import register_provider
from batchframe.results.cost import Price

DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: The metadata key of the tag that names the job and shard a batch belongs to.
TAG_KEY = "batchframe_shard"
_NO_KEY = ("No OpenAI API key. Set one with `export OPENAI_API_KEY=sk-...` (or pass api_key=...), or point "
           "base_url= at an OpenAI-compatible batch host.")


@register_provider
class OpenAIProvider(Provider):
    """The OpenAI Batch API (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``).

    Examples
    --------
    >>> endpoint = OpenAIProvider.open_endpoint(api_key="sk-test")
    >>> endpoint.base_url, "sk-test" in repr(endpoint)
    ('https://api.openai.com/v1', False)
    """

    name = "openai"
    base_url_variable = "OPENAI_BASE_URL"
    default_base_url = DEFAULT_BASE_URL
    # 50,000 requests and 200 MB of input file per batch; requests go up as a file; batches carry metadata.
    capabilities = Capabilities(max_requests=50_000, max_bytes=200_000_000, needs_upload=True, client_tags=True,
                                embeddings=True)
    codec: ClassVar[Codec] = wire

    @classmethod
    def price_for(cls, model: str | None) -> Price | None:
        return batch_price_for(model)

    @classmethod
    def result_parser(cls, *, chunk_bytes: int | None = None) -> ResultParser:
        return ResultParser() if chunk_bytes is None else ResultParser(chunk_bytes)

    @classmethod
    def structured_via(cls, model: str) -> str:
        """``schema=`` goes as ``response_format`` json_schema, strict (see :func:`.codec.strict_schema`).

        Examples
        --------
        >>> OpenAIProvider.structured_via("gpt-4o-mini")
        'response_format'
        """
        return "response_format"

    @classmethod
    def open_endpoint(cls, *, api_key: str | None = None, base_url: str | None = None, **options: Any) -> Endpoint:
        unknown = sorted(set(options) - {"api_version"})
        if unknown:
            raise ConfigError(f"provider 'openai' takes only the option 'api_version' (Azure), not {unknown}")
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key:
            raise ConfigError(_NO_KEY)
        url = check_transport((base_url or cls.user_host()).rstrip("/"))
        if base_url is not None:
            choose(url)
        version = options.get("api_version")
        identity = f"{cls.name}:{url}" + (f"?api-version={version}" if version else "")
        return Endpoint(cls.name, url, identity, api_key=key, service={"api_version": version} if version else None)

    @classmethod
    def reopen_endpoint(cls, record: dict[str, Any], *, api_key: str | None = None,
                        base_url: str | None = None) -> Endpoint:
        cls.check_reopen(record, base_url=base_url)
        options = {k: v for k, v in (record.get("service") or {}).items() if k == "api_version" and v}
        return cls.open_endpoint(api_key=api_key, base_url=base_url or record["base_url"], **options)

    def __init__(self, endpoint: Endpoint, **kwargs: Any):
        super().__init__(endpoint, **kwargs)
        version = (endpoint.service or {}).get("api_version")
        self._query = {"api-version": version} if version else {}

    def headers(self, endpoint: Endpoint) -> dict[str, str]:
        azure = bool((endpoint.service or {}).get("api_version"))
        auth = {"api-key": endpoint.api_key or ""} if azure else {"authorization": f"Bearer {endpoint.api_key or ''}"}
        return {**auth, "accept": "application/json", "user-agent": f"batchframe/{__version__}"}

    # -- files -----------------------------------------------------------------------------------------
    def stage(self, body: bytes, *, tag: str) -> dict[str, Any]:
        """Upload a shard's input file (``purpose=batch``), or find the one a killed process uploaded.

        Examples
        --------
        >>> provider.stage(wire.frame_shard(lines), tag="job-uid:a1:s0")  # doctest: +SKIP
        {'input_file_id': 'file-abc123'}
        """
        filename = f"batchframe-{tag.replace(':', '-')}.jsonl"
        for item in self._files():
            if item.get("filename") == filename and int(item.get("bytes") or -1) == len(body):
                return {"input_file_id": item["id"]}
        uploaded = self.http.request_json("POST", "/files", params=self._query, data={"purpose": "batch"},
                                          files={"file": (filename, body, "application/jsonl")})
        return {"input_file_id": uploaded["id"]}

    def unstage(self, staged: dict[str, Any] | None) -> None:
        """Delete a shard's input file once its batch has ended (a file already gone is fine)."""
        if staged and staged.get("input_file_id"):
            self._delete_file(staged["input_file_id"])

    def _files(self) -> list[dict[str, Any]]:
        page = self.http.request_json("GET", "/files", params={**self._query, "purpose": "batch", "limit": 10_000})
        return list(page.get("data") or ())

    def _delete_file(self, file_id: str) -> None:
        try:
            self.http.request_json("DELETE", f"/files/{check_batch_id(file_id)}", params=self._query)
        except NotFoundError:
            pass

    # -- batches ---------------------------------------------------------------------------------------
    def create(self, body: bytes, *, betas: Sequence[str] = (), tag: str | None = None,
               staged: dict[str, Any] | None = None) -> RemoteBatch:
        if betas:
            raise ConfigError("provider 'openai' has no betas")
        staged = staged or self.stage(body, tag=tag or "untagged")
        endpoint = wire.EMBEDDINGS_URL if b'"url":"/v1/embeddings"' in body[:400] else wire.CHAT_URL
        request = {"input_file_id": staged["input_file_id"], "endpoint": endpoint, "completion_window": "24h",
                   "metadata": {TAG_KEY: tag} if tag else {}}
        # Never resent by the HTTP layer: a second POST could create (and bill) a second batch (jobs/send.py).
        return wire.decode_batch(self.http.request_json("POST", "/batches", params=self._query,
                                                        content=orjson.dumps(request), resend_safe=False))

    def retrieve(self, batch_id: str) -> RemoteBatch:
        return wire.decode_batch(self._batch(batch_id))

    def _batch(self, batch_id: str) -> dict[str, Any]:
        return self.http.request_json("GET", f"/batches/{check_batch_id(batch_id)}", params=self._query)

    def list(self, *, limit: int = 100, after: str | None = None) -> BatchPage:
        params: dict[str, Any] = {**self._query, "limit": min(limit, 100)}
        if after:
            params["after"] = after
        page = self.http.request_json("GET", "/batches", params=params)
        batches = [wire.decode_batch(obj) for obj in page.get("data") or ()]
        return BatchPage(batches, page.get("last_id") if page.get("has_more") else None)

    def cancel(self, batch_id: str) -> RemoteBatch:
        return wire.decode_batch(self.http.request_json("POST", f"/batches/{check_batch_id(batch_id)}/cancel",
                                                        params=self._query))

    def delete(self, batch_id: str) -> None:
        """OpenAI batches cannot be deleted: their input, output and error files are."""
        obj = self._batch(batch_id)
        for key in ("input_file_id", "output_file_id", "error_file_id"):
            if obj.get(key):
                self._delete_file(obj[key])

    @contextmanager
    def stream_results(self, batch_id: str) -> Iterator[Iterator[bytes]]:
        # The output file (successes) then the error file (failures, and the expired or cancelled rest); an
        # empty id ("" as some hosts send) means no file.
        obj = self._batch(batch_id)
        ids = [obj[k] for k in ("output_file_id", "error_file_id") if obj.get(k)]
        yield self._concat(ids)

    def _concat(self, file_ids: Sequence[str]) -> Iterator[bytes]:
        for file_id in file_ids:
            with self.http.stream("GET", f"/files/{check_batch_id(file_id)}/content") as response:
                tail = b""
                for chunk in self.http.iter_bytes(response):
                    tail = chunk[-1:] or tail
                    yield chunk
                if tail and tail != b"\n":
                    yield b"\n"  # the next file's first line must not join this one's last
