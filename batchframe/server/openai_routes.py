"""HTTP face of the OpenAI Files and Batches API: Starlette routes that only parse and serialise, around
the backend's :class:`~batchframe.server.openai_backend.OpenAIBackend`.

The app's middleware (``app.py``) treats every path of ``openai_wire.OPENAI_PATHS`` as OpenAI's: it checks
the key (``Authorization: Bearer``, or ``x-api-key``), needs no ``anthropic-version``, applies injected
faults, and renders every error in OpenAI's envelope. The results-stream faults (``results_crlf``,
``cut_results_after_bytes``, ``results_no_content_type``) apply to file downloads (``/content``), the
OpenAI counterpart of the Anthropic results stream.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from .errors import OpenAIRequestError
from .multipart import parse_form
from .openai_backend import OpenAIBackend
from .openai_validation import expires_after_seconds
from .responses import CutStream, json_response, read_body

_CONTENT_TYPE = "application/octet-stream"


def _api(request: Request) -> OpenAIBackend:
    return request.app.state.backend.openai


async def _body(request: Request) -> bytes:
    return await read_body(request, request.app.state.backend.max_body_bytes)


def _limit(raw: str | None, default: int, high: int) -> int:
    if raw is None:
        return default
    try:
        limit = int(raw)
    except ValueError:
        raise OpenAIRequestError(f"Invalid 'limit': expected an integer, but got '{raw}' instead.", param="limit",
                                 code="invalid_type") from None
    if not 1 <= limit <= high:
        raise OpenAIRequestError(f"Invalid 'limit': expected a value between 1 and {high}, but got {limit} instead.",
                                 param="limit", code="invalid_value")
    return limit


# -- files -----------------------------------------------------------------------------------------------------
async def upload_file(request: Request) -> Response:
    form = parse_form(await _body(request), request.headers.get("content-type", ""))
    for name in ("purpose", "file"):
        if name not in form:
            raise OpenAIRequestError(f"Missing required parameter: '{name}'.", param=name,
                                     code="missing_required_parameter")
    expires = _expires_after(form)
    file = form["file"]
    return json_response(await run_in_threadpool(
        _api(request).upload, filename=file.filename or "file", purpose=form["purpose"].data.decode(),
        data=file.data, expires_after=expires))


def _expires_after(form: dict[str, Any]) -> int | None:
    anchor, seconds = form.get("expires_after[anchor]"), form.get("expires_after[seconds]")
    if anchor is None and seconds is None:
        return None
    value: dict[str, Any] = {"anchor": anchor.data.decode() if anchor else None}
    try:
        value["seconds"] = int(seconds.data) if seconds else None
    except ValueError:
        value["seconds"] = None
    return expires_after_seconds(value)


async def list_files(request: Request) -> Response:
    query = request.query_params
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise OpenAIRequestError(f"Invalid value: '{order}'. Supported values are: 'asc' and 'desc'.", param="order",
                                 code="invalid_value")
    page = await run_in_threadpool(_api(request).list_files, purpose=query.get("purpose"),
                                   limit=_limit(query.get("limit"), 10000, 10000), order=order,
                                   after=query.get("after") or None)
    return json_response(page)


async def retrieve_file(request: Request) -> Response:
    return json_response(await run_in_threadpool(_api(request).file, request.path_params["file_id"]))


async def delete_file(request: Request) -> Response:
    return json_response(await run_in_threadpool(_api(request).delete_file, request.path_params["file_id"]))


async def file_content(request: Request) -> Response:
    chunks, length = await run_in_threadpool(_api(request).file_content, request.path_params["file_id"])
    size: int | None = length
    faults = request.app.state.backend.faults.faults
    if faults.results_crlf:  # JSON strings hold no raw newline, so every b"\n" ends a line
        chunks, size = (chunk.replace(b"\n", b"\r\n") for chunk in chunks), None
    if faults.cut_results_after_bytes is not None:
        return CutStream(chunks, faults.cut_results_after_bytes, media_type=_CONTENT_TYPE)
    headers = None if size is None else {"content-length": str(size)}  # no chunked framing: see app.py
    return StreamingResponse(chunks, media_type=None if faults.results_no_content_type else _CONTENT_TYPE,
                             headers=headers)


# -- batches ---------------------------------------------------------------------------------------------------
async def create_batch(request: Request) -> Response:
    body = await _body(request)
    return json_response(await run_in_threadpool(_api(request).create_batch, body))


async def retrieve_batch(request: Request) -> Response:
    return json_response(await run_in_threadpool(_api(request).batch, request.path_params["batch_id"]))


async def list_batches(request: Request) -> Response:
    query = request.query_params
    page = await run_in_threadpool(_api(request).list_batches, after=query.get("after") or None,
                                   limit=_limit(query.get("limit"), 20, 100))
    return json_response(page)


async def cancel_batch(request: Request) -> Response:
    return json_response(await run_in_threadpool(_api(request).cancel_batch, request.path_params["batch_id"]))


# -- synchronous -----------------------------------------------------------------------------------------------
async def chat_completions(request: Request) -> Response:
    body = await _body(request)
    return json_response(await run_in_threadpool(_api(request).chat, body))


async def embeddings(request: Request) -> Response:
    body = await _body(request)
    return json_response(await run_in_threadpool(_api(request).embeddings, body))


OPENAI_ROUTES = [
    Route("/v1/files", upload_file, methods=["POST"]),
    Route("/v1/files", list_files, methods=["GET"]),
    Route("/v1/files/{file_id}", retrieve_file, methods=["GET"]),
    Route("/v1/files/{file_id}", delete_file, methods=["DELETE"]),
    Route("/v1/files/{file_id}/content", file_content, methods=["GET"]),
    Route("/v1/batches", create_batch, methods=["POST"]),
    Route("/v1/batches", list_batches, methods=["GET"]),
    Route("/v1/batches/{batch_id}", retrieve_batch, methods=["GET"]),
    Route("/v1/batches/{batch_id}/cancel", cancel_batch, methods=["POST"]),
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/embeddings", embeddings, methods=["POST"]),
]
