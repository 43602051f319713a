"""The HTTP layer of the providers: an injected ``httpx.Client`` (one per Job), timeouts, retries, error mapping.

Retries (exponential backoff 0.5 s * 2^n capped at 8 s, jitter x0.75-1) on connection errors and on
408, 409, 429, 5xx and 529, waiting ``retry-after-ms`` / ``retry-after`` instead when the server gives
0 < value <= 60 s; ``x-should-retry`` overrides. A request that must not be sent twice (creating a
batch) is retried here only when it provably did not reach the server (connect errors); an error
answer is raised (with ``retryable`` and ``retry_after`` set) for the caller to check and resend
(:mod:`batchframe.jobs.send`). Errors become :class:`batchframe.errors.APIError` subclasses; the
API key is redacted from every message and never appears in a repr.
"""

from __future__ import annotations

import email.utils
import functools
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from batchframe.errors import TransportError, api_error_class

_RETRY_STATUSES = frozenset({408, 409, 429, 529})
#: A request body over this size is handed to httpx in pieces of it: httpcore copies what is left of a body
#: after each socket write, so a create body of 40 MB handed over whole is copied dozens of times.
_PIECE = 1 << 20
#: Transport errors raised before a single byte of the request left: safe to resend anything.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry.

    Examples
    --------
    >>> RetryPolicy(max_retries=0).max_retries
    0
    """

    max_retries: int = 5
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0

    def delay(self, retry: int, response: httpx.Response | None = None, *, hinted: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (0-based): the server's hint, else backoff.

        Examples
        --------
        >>> RetryPolicy().delay(0, hinted=2.0)
        2.0
        """
        if response is not None:
            hinted = _retry_after(response)
        if hinted is not None and 0 < hinted <= self.max_retry_after:
            return hinted
        return min(self.backoff * 2**retry, self.max_backoff) * random.uniform(0.75, 1.0)


def _retry_after(response: httpx.Response) -> float | None:
    headers = response.headers
    try:
        if "retry-after-ms" in headers:
            return float(headers["retry-after-ms"]) / 1000
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return float(value)
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return when.timestamp() - time.time()
    except (TypeError, ValueError):
        return None


def retryable(response: httpx.Response) -> bool:
    """Whether a response's status (or its ``x-should-retry`` header) asks for a retry.

    Examples
    --------
    >>> retryable(httpx.Response(529)), retryable(httpx.Response(400))
    (True, False)
    """
    hint = response.headers.get("x-should-retry")
    if hint in ("true", "false"):
        return hint == "true"
    return response.status_code in _RETRY_STATUSES or response.status_code >= 500


class HttpClient:
    """One provider's connection: base URL, auth headers, timeouts and retries.

    Parameters
    ----------
    base_url : str
    headers : dict
        Sent with every request (may hold the API key; never shown).
    secret : str, optional
        Redacted from every error message.
    retry : RetryPolicy
    timeout : httpx.Timeout
    transport : httpx.BaseTransport, optional
        Swappable transport (the one-method httpx contract), for a client made here.
    client : httpx.Client, optional
        An injected client (a job's one connection for its lifetime); left open by :meth:`close`.

    Examples
    --------
    >>> with HttpClient("http://127.0.0.1:1", {"x-api-key": "sk-secret"}, secret="sk-secret") as c:
    ...     repr(c)
    "HttpClient('http://127.0.0.1:1')"
    """

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        *,
        secret: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout | None = None,
        transport: httpx.BaseTransport | None = None,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self._secret = secret
        self._sleep = sleep
        self._headers = headers
        # An injected client is its owner's to close; one made here is closed by close().
        self._owned = client is None
        self._client = client or httpx.Client(
            transport=transport,
            timeout=timeout or httpx.Timeout(60.0, connect=5.0),
        )

    def __repr__(self) -> str:
        return f"HttpClient({self.base_url!r})"

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool, if this object made it."""
        if self._owned:
            self._client.close()

    def redact(self, text: str) -> str:
        """``text`` with the secret replaced by ``[redacted]``.

        Examples
        --------
        >>> with HttpClient("http://127.0.0.1:1", {}, secret="sk-1") as c:
        ...     c.redact("bad key sk-1")
        'bad key [redacted]'
        """
        return text.replace(self._secret, "[redacted]") if self._secret else text

    def request_json(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        params: dict | None = None,
        headers: dict[str, str] | None = None,
        resend_safe: bool = True,
        files: dict[str, Any] | None = None,
        data: dict[str, str] | None = None,
    ) -> Any:
        """Send a request with retries and return the parsed JSON body of its 2xx response.

        Examples
        --------
        >>> client.request_json("GET", "/v1/messages/batches", params={"limit": 1})  # doctest: +SKIP
        {'data': [...], 'has_more': False, 'first_id': ..., 'last_id': ...}
        """
        headers = {**({"content-type": "application/json"} if content is not None else {}), **(headers or {})}
        body: Callable[[], Any] = lambda: content  # noqa: E731  (a fresh body for every send)
        if content is not None and len(content) > _PIECE:  # its length given: sent as is (not chunked), in pieces
            headers["content-length"] = str(len(content))
            body = functools.partial(_pieces, content)
        response = self._send(
            lambda: self._client.build_request(  # a multipart upload when ``files`` (form fields in ``data``)
                method, self.base_url + path, content=body(), params=params, headers={**self._headers, **headers},
                files=files, data=data,
            ),
            resend_safe,
        )
        return orjson.loads(response.content)

    @contextmanager
    def stream(self, method: str, path: str) -> Iterator[httpx.Response]:
        """A streamed 2xx response (retried until its headers arrive); closed on exit.

        Examples
        --------
        >>> with client.stream("GET", "/v1/messages/batches/msgbatch_x/results") as r:  # doctest: +SKIP
        ...     data = b"".join(client.iter_bytes(r))
        """
        response = self._send(
            lambda: self._client.build_request(method, self.base_url + path, headers=self._headers), True, stream=True
        )
        try:
            yield response
        finally:
            response.close()

    def iter_bytes(self, response: httpx.Response) -> Iterator[bytes]:
        """The body of a streamed response in chunks; a cut connection raises TransportError.

        Examples
        --------
        >>> for chunk in client.iter_bytes(response): ...  # doctest: +SKIP
        """
        try:
            yield from response.iter_bytes()
        except httpx.TransportError as exc:
            detail = self.redact(str(exc)) or type(exc).__name__
            raise TransportError(f"download of {response.request.url.path} was cut: {detail}") from exc

    def _send(self, build: Callable[[], httpx.Request], resend_safe: bool, stream: bool = False) -> httpx.Response:
        retry = 0
        while True:
            request = build()
            try:
                response = self._client.send(request, stream=stream)
            except httpx.TransportError as exc:
                can_retry = resend_safe or isinstance(exc, _NOT_SENT)
                if not can_retry or retry >= self.retry.max_retries:
                    raise self._transport_error(request, exc, sent=not isinstance(exc, _NOT_SENT)) from exc
                self._sleep(self.retry.delay(retry))
                retry += 1
                continue
            if response.is_success:
                return response
            if stream:
                response.read()
                response.close()
            # A POST that is not resend-safe is never resent here: its caller checks first (jobs/send.py).
            if not resend_safe or not retryable(response) or retry >= self.retry.max_retries:
                raise self._api_error(response)
            self._sleep(self.retry.delay(retry, response))
            retry += 1

    def _transport_error(self, request: httpx.Request, exc: Exception, *, sent: bool) -> TransportError:
        detail = self.redact(str(exc)) or type(exc).__name__
        return TransportError(
            f"{request.method} {request.url.path} to {self.base_url} failed: {detail}"
            + ("" if sent else " (the request was not sent)"),
            maybe_sent=sent,
        )

    def _api_error(self, response: httpx.Response) -> Exception:
        error_type, message, request_id = parse_error_body(response.content)
        request_id = response.headers.get("request-id") or request_id
        message = self.redact(message or response.reason_phrase or "error")
        cls = api_error_class(response.status_code)
        error = cls(message, status=response.status_code, error_type=error_type, request_id=request_id)
        error.retryable = retryable(response)
        error.retry_after = _retry_after(response)
        return error


def _pieces(body: bytes) -> Iterator[memoryview]:
    """``body`` in views of :data:`_PIECE` bytes (no copies).

    Examples
    --------
    >>> [bytes(p) for p in _pieces(b"x" * (_PIECE + 1))] == [b"x" * _PIECE, b"x"]
    True
    """
    view = memoryview(body)
    for start in range(0, len(view), _PIECE):
        yield view[start : start + _PIECE]


def parse_error_body(content: bytes) -> tuple[str, str, str | None]:
    """``(error type, message, request_id)`` of an error envelope; lenient about missing parts.

    Examples
    --------
    >>> parse_error_body(b'{"type":"error","error":{"type":"not_found_error","message":"gone"},'
    ...                  b'"request_id":"r"}')
    ('not_found_error', 'gone', 'r')
    >>> parse_error_body(b'<html>bad gateway</html>')
    ('', '<html>bad gateway</html>', None)
    """
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return "", content[:200].decode("utf-8", "replace"), None
    if not isinstance(body, dict):
        return "", str(body)[:200], None
    error = body.get("error")
    inner: dict = error if isinstance(error, dict) else body
    return str(inner.get("type") or ""), str(inner.get("message") or ""), body.get("request_id")
