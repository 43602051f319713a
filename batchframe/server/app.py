"""HTTP face of the service: Starlette routes that only parse and serialise, around a :class:`Backend`.

An outer ASGI middleware gives every response a ``request-id`` header, checks the ``x-api-key`` /
``anthropic-version`` headers of API calls, and applies injected faults (slow calls, error statuses).
Errors from anywhere are rendered as the API's envelope, with the same request id in the body.
Legacy ``?beta=true`` paths route as the others (the query string plays no part in routing); a beta call
(``?beta=true`` or an ``anthropic-beta`` header) has its Messages bodies checked against the spec's beta
schemas (``BetaCreateMessageParams``), so beta fields such as ``output_format`` are accepted.

Besides the API: ``GET /health`` (status and version only, no key), ``GET /v1/service`` (who the service
is: id, engine, model, engine options without secrets; needs a key like any ``/v1/`` call, no
``anthropic-version``, never hit by injected faults) and the admin routes (``PUT /admin/faults``), which
exist only when the app is created with ``enable_admin`` and need the service's key when it requires one.
Without admin every ``/admin`` path answers 404.

The OpenAI Files and Batches API (``openai_routes.py``) is served on the same app: on its paths the
middleware takes the key from ``Authorization: Bearer`` (or ``x-api-key``), needs no
``anthropic-version``, adds ``x-request-id``, and every error is OpenAI's envelope
(``openai_wire.error_envelope``); injected faults apply there too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from .backend import Backend
from .errors import ServiceRequestError
from .faults import Faults
from .identity import version
from .ids import random_id
from .openai_routes import OPENAI_ROUTES
from .openai_wire import error_envelope as openai_envelope
from .openai_wire import is_openai_path
from .openai_wire import key_refusal as openai_key_refusal
from .responses import CutStream, json_response, read_body
from .wire import error_envelope

_HTTP_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 405: "invalid_request_error", 413: "request_too_large"}


def error_response(exc: ServiceRequestError, request_id: str | None, path: str = "") -> Response:
    """The error in the envelope of the API that serves ``path`` (OpenAI's or Anthropic's)."""
    if is_openai_path(path):
        return json_response(openai_envelope(exc), exc.status, exc.headers)
    return json_response(error_envelope(exc.error_type, exc.message, request_id), exc.status, exc.headers)


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _backend(request: Request) -> Backend:
    return request.app.state.backend


async def _body(request: Request) -> bytes:
    """The request body, refusing (413) as soon as it is over the service's limit."""
    return await read_body(request, _backend(request).max_body_bytes)


def _beta(request: Request) -> bool:
    """A beta call: the SDK's beta namespace (``?beta=true``) or a feature beta (``anthropic-beta`` header)."""
    return request.query_params.get("beta") == "true" or "anthropic-beta" in request.headers


async def create_batch(request: Request) -> Response:
    body = await _body(request)
    return json_response(await run_in_threadpool(_backend(request).create, body, base_url=_base_url(request),
                                                 beta=_beta(request)))


async def retrieve_batch(request: Request) -> Response:
    batch = request.path_params["batch_id"]
    batch_object = await run_in_threadpool(_backend(request).retrieve, batch, base_url=_base_url(request))
    return json_response(batch_object)


async def list_batches(request: Request) -> Response:
    query = request.query_params
    limit = _limit(query.get("limit", "20"))
    before_id, after_id = _cursor(query, "before_id"), _cursor(query, "after_id")
    page = await run_in_threadpool(_backend(request).list, before_id=before_id, after_id=after_id, limit=limit,
                                   base_url=_base_url(request))
    return json_response(page)


def _cursor(query: Any, name: str) -> str | None:
    """A list cursor: absent, or a non-empty id (``after_id=`` alone is refused, as the API does)."""
    value = query.get(name)
    if value is not None and not value:
        raise ServiceRequestError(f"{name}: String should have at least 1 character")
    return value


def _limit(raw: str) -> int:
    try:
        limit = int(raw)
    except ValueError:
        raise ServiceRequestError(
            "limit: Input should be a valid integer, unable to parse string as an integer") from None
    if not 1 <= limit <= 1000:
        bound = "greater than or equal to 1" if limit < 1 else "less than or equal to 1000"
        raise ServiceRequestError(f"limit: Input should be {bound}")
    return limit


async def cancel_batch(request: Request) -> Response:
    batch = request.path_params["batch_id"]
    batch_object = await run_in_threadpool(_backend(request).cancel, batch, base_url=_base_url(request))
    return json_response(batch_object)


async def delete_batch(request: Request) -> Response:
    return json_response(await run_in_threadpool(_backend(request).delete, request.path_params["batch_id"]))


async def batch_results(request: Request) -> Response:
    backend = _backend(request)
    chunks, size = await run_in_threadpool(backend.results, request.path_params["batch_id"])
    faults = backend.faults.faults
    if faults.results_crlf:  # JSON strings hold no raw newline, so every b"\n" ends a line
        chunks, size = (chunk.replace(b"\n", b"\r\n") for chunk in chunks), None
    if faults.cut_results_after_bytes is not None:
        return CutStream(chunks, faults.cut_results_after_bytes)
    media_type = None if faults.results_no_content_type else "application/x-jsonl"
    # A known size goes out as Content-Length: no chunked framing, which costs clients more than the bytes.
    headers = None if size is None else {"content-length": str(size)}
    return StreamingResponse(chunks, media_type=media_type, headers=headers)


async def create_message(request: Request) -> Response:
    body = await _body(request)
    return json_response(await run_in_threadpool(_backend(request).message, body, beta=_beta(request)))


async def count_tokens(request: Request) -> Response:
    body = await _body(request)
    return json_response(await run_in_threadpool(_backend(request).count_tokens, body, beta=_beta(request)))


async def put_faults(request: Request) -> Response:
    """PUT /admin/faults: switch fault injection of a running service (what ``set_faults`` uses).

    Routed only with admin enabled; the middleware has already checked the key of a service that requires one.
    """
    try:
        fields = orjson.loads(await _body(request))
        if "http_error_statuses" in fields:
            fields["http_error_statuses"] = tuple(fields["http_error_statuses"])
        faults = Faults(**fields)
    except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
        raise ServiceRequestError(f"faults: {exc}") from None
    _backend(request).faults.set(faults)
    return json_response(dataclasses.asdict(faults))


async def health(request: Request) -> Response:
    """GET /health: liveness for anyone on this machine; names no path, engine or option."""
    return json_response({"status": "ok", "version": version()})


async def service_info(request: Request) -> Response:
    """GET /v1/service: the service's id (from its data dir), version, engine, model and public options."""
    return json_response(_backend(request).describe())


SERVICE_PATH = "/v1/service"
ADMIN_ROUTES = [
    Route("/admin/faults", put_faults, methods=["PUT"]),
]
ROUTES = [
    Route("/v1/messages/batches", create_batch, methods=["POST"]),
    Route("/v1/messages/batches", list_batches, methods=["GET"]),
    Route("/v1/messages/batches/{batch_id}", retrieve_batch, methods=["GET"]),
    Route("/v1/messages/batches/{batch_id}", delete_batch, methods=["DELETE"]),
    Route("/v1/messages/batches/{batch_id}/cancel", cancel_batch, methods=["POST"]),
    Route("/v1/messages/batches/{batch_id}/results", batch_results, methods=["GET"]),
    Route("/v1/messages", create_message, methods=["POST"]),
    Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
    Route(SERVICE_PATH, service_info, methods=["GET"]),
    Route("/health", health, methods=["GET"]),
    *OPENAI_ROUTES,
]


async def _service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceRequestError)
    return error_response(exc, request.scope.get("state", {}).get("request_id"), request.url.path)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    message = "Not Found" if status == 404 else str(exc.detail)
    if status in (404, 405) and is_openai_path(request.url.path):  # OpenAI's words for a route it lacks
        message = f"Invalid URL ({request.method} {request.url.path})"
    kind = _HTTP_TYPES.get(status, "invalid_request_error")
    err = ServiceRequestError(message, status=status, error_type=kind)
    return error_response(err, request.scope.get("state", {}).get("request_id"), request.url.path)


async def _crash(request: Request, exc: Exception) -> Response:
    err = ServiceRequestError("Internal server error", status=500, error_type="api_error")
    return error_response(err, request.scope.get("state", {}).get("request_id"), request.url.path)


class ApiMiddleware:
    """request-id on every response; key and version checks and injected faults on ``/v1/`` calls; the key
    check and the admin switch on ``/admin`` paths."""

    def __init__(self, app: Any, backend: Backend, api_key: str | None, enable_admin: bool = False):
        self.app = app
        self.backend = backend
        self._api_key = api_key
        self._admin = enable_admin

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request_id = random_id("req_")
        scope.setdefault("state", {})["request_id"] = request_id
        path = scope["path"]
        openai = is_openai_path(path)
        headers = [(b"request-id", request_id.encode())]
        if openai:  # where OpenAI's SDK reads it
            headers.append((b"x-request-id", request_id.encode()))

        async def send_with_id(event: MutableMapping[str, Any]) -> None:
            if event["type"] == "http.response.start":
                event["headers"] = [*event.get("headers", ()), *headers]
            await send(event)

        if path == "/admin" or path.startswith("/admin/"):
            refusal = self._admin_refusal(scope)
            if refusal is not None:
                return await error_response(refusal, request_id)(scope, receive, send_with_id)
        elif path == SERVICE_PATH:  # the service's identity: the key check, no version header, no faults
            self.backend.last_activity = time.monotonic()
            refusal = self._key_refusal(scope)
            if refusal is not None:
                return await error_response(refusal, request_id)(scope, receive, send_with_id)
        elif path.startswith("/v1/"):
            self.backend.last_activity = time.monotonic()
            faults = self.backend.faults
            if faults.faults.slow_seconds:
                await asyncio.sleep(faults.faults.slow_seconds)
            refusal = openai_key_refusal(_key(scope), self._api_key) if openai else self._refusal(scope)
            if refusal is not None:
                return await error_response(refusal, request_id, path)(scope, receive, send_with_id)
            injected = faults.http_error()
            if injected is not None:
                if faults.faults.http_errors_after_processing:
                    await self.app(scope, receive, _discard)  # served, then the answer is "lost"
                return await error_response(injected, request_id, path)(scope, receive, send_with_id)
        await self.app(scope, receive, send_with_id)

    def _admin_refusal(self, scope: dict) -> ServiceRequestError | None:
        """404 without admin (the routes do not exist), 401 without the key of a service that requires one."""
        if not self._admin:
            return ServiceRequestError("Not Found", status=404, error_type="not_found_error")
        if self._api_key is not None and _key(scope) != self._api_key.encode("latin-1"):
            return ServiceRequestError("API key is invalid.", status=401, error_type="authentication_error")
        return None

    def _key_refusal(self, scope: dict) -> ServiceRequestError | None:
        """401 when the key is missing, or is not the one the service requires."""
        key = _key(scope)
        if not key:
            return ServiceRequestError("x-api-key header is required", status=401,
                                       error_type="authentication_error")
        if self._api_key is not None and key.decode("latin-1") != self._api_key:
            return ServiceRequestError("API key is invalid.", status=401, error_type="authentication_error")
        return None

    def _refusal(self, scope: dict) -> ServiceRequestError | None:
        """401 / 400 when the key or the version header is missing or wrong."""
        refusal = self._key_refusal(scope)
        if refusal is None and not any(name == b"anthropic-version" for name, _ in scope["headers"]):
            refusal = ServiceRequestError("anthropic-version: header is required")
        return refusal


def _key(scope: dict) -> bytes | None:
    """The key of a request: ``x-api-key``, else an ``Authorization: Bearer`` token."""
    headers = dict(scope["headers"])
    key = headers.get(b"x-api-key")
    if key is None and headers.get(b"authorization", b"").lower().startswith(b"bearer "):
        key = headers[b"authorization"][7:]
    return key


async def _discard(event: MutableMapping[str, Any]) -> None:
    pass


def create_app(backend: Backend, *, api_key: str | None = None, enable_admin: bool = False) -> ApiMiddleware:
    """The ASGI app serving ``backend``; its lifespan starts and stops the worker.

    ``enable_admin`` adds the admin routes (``PUT /admin/faults``); without it every ``/admin`` path is 404.

    Examples
    --------
    >>> app = create_app(Backend(data_dir=tmp_path))  # doctest: +SKIP
    >>> uvicorn.run(app, host="127.0.0.1", port=8000)  # doctest: +SKIP
    """

    @asynccontextmanager
    async def lifespan(app: Starlette):
        # On the thread pool: it starts its first thread now, not on the first API call.
        await run_in_threadpool(backend.start)
        try:
            yield
        finally:
            await run_in_threadpool(backend.worker.stop)

    routes = [*ROUTES, *(ADMIN_ROUTES if enable_admin else [])]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={
        ServiceRequestError: _service_error, HTTPException: _http_error, Exception: _crash})
    app.state.backend = backend
    app.state.api_key = api_key
    return ApiMiddleware(app, backend, api_key, enable_admin=enable_admin)
