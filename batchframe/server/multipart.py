"""A small ``multipart/form-data`` reader for file uploads (``POST /v1/files``).

Starlette's own form parser needs the optional ``python-multipart`` package, which the service does not
depend on. Uploads here are one whole body already in memory (its size capped by the service), so parts
are found with ``bytes.split`` on the boundary: C speed, no streaming state machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message

from .errors import OpenAIRequestError


@dataclass(frozen=True)
class Part:
    """One form field: its bytes and, for a file, its file name."""

    data: bytes
    filename: str | None = None


def _params(header: str) -> Message:
    message = Message()
    message["content-type"] = header
    return message


def parse_form(body: bytes, content_type: str) -> dict[str, Part]:
    """The fields of a ``multipart/form-data`` body by name (the last wins).

    Examples
    --------
    >>> body = (b'--XX\\r\\nContent-Disposition: form-data; name="purpose"\\r\\n\\r\\nbatch\\r\\n'
    ...         b'--XX\\r\\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\\r\\n'
    ...         b'Content-Type: application/octet-stream\\r\\n\\r\\n{}\\n\\r\\n--XX--\\r\\n')
    >>> parse_form(body, "multipart/form-data; boundary=XX")
    {'purpose': Part(data=b'batch', filename=None), 'file': Part(data=b'{}\\n', filename='a.jsonl')}
    """
    header = _params(content_type)
    boundary = header.get_param("boundary")
    if header.get_content_type() != "multipart/form-data" or not isinstance(boundary, str) or not boundary:
        raise OpenAIRequestError("The request must be multipart/form-data (with a boundary).")
    fields: dict[str, Part] = {}
    for chunk in body.split(b"--" + boundary.encode("latin-1"))[1:]:
        if chunk.startswith(b"--"):
            break  # the closing delimiter
        head, sep, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            raise OpenAIRequestError("Malformed multipart/form-data body: a part has no header end.")
        disposition = next((line.split(b":", 1)[1].decode("utf-8", "replace").strip()
                            for line in head.split(b"\r\n") if line.lower().startswith(b"content-disposition:")), "")
        parsed = _params(f"form-data; {disposition.partition(';')[2]}")
        name = parsed.get_param("name")
        filename = parsed.get_param("filename")
        if isinstance(name, str):
            fields[name] = Part(data.removesuffix(b"\r\n"), filename if isinstance(filename, str) else None)
    return fields
