"""HTTP helpers both APIs' routes share: JSON responses, the size-capped request body, the cut stream.

Kept apart from ``app.py`` so that ``openai_routes.py`` uses them and ``app.py`` imports both route sets.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from .errors import ServiceRequestError


class CutStream(StreamingResponse):
    """A results stream that stops after ``limit`` bytes and returns without finishing the response, so
    the server drops the connection mid-body (fault ``cut_results_after_bytes``), as a broken network does.
    """

    def __init__(self, chunks: Iterator[bytes], limit: int, media_type: str = "application/x-jsonl"):
        super().__init__(chunks, media_type=media_type)
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        sent = 0
        async for chunk in self.body_iterator:
            part = bytes(chunk[: self.limit - sent])  # type: ignore[arg-type]  # str never reaches here
            if part:
                await send({"type": "http.response.body", "body": part, "more_body": True})
            sent += len(part)
            if sent >= self.limit:
                return  # without the final body event: uvicorn drops the connection
        await send({"type": "http.response.body", "body": b"", "more_body": False})  # shorter than the cut


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """``obj`` as a JSON response (orjson).

    Examples
    --------
    >>> json_response({"ok": True}).body
    b'{"ok":true}'
    """
    return Response(orjson.dumps(obj), status_code=status, headers=headers, media_type="application/json")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) as soon as it is over ``limit`` bytes."""
    too_large = ServiceRequestError("Request exceeds the maximum size", status=413,
                                    error_type="request_too_large")
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)
