"""The local service's own exceptions; the server imports nothing from the client.

::

    ServiceError                the service or one of its engines cannot start or run
    └── ServiceRequestError     one HTTP request is refused (the app renders it as the API's error envelope)

The client's local provider translates :class:`ServiceError` into :class:`batchframe.errors.ServiceError`
at its one boundary, so a notebook catches one tree.
"""

from __future__ import annotations


class ServiceError(Exception):
    """The local service, or one of its engines, cannot start or run."""


class ServiceRequestError(ServiceError):
    """The local service refuses one HTTP request; the app renders it as the API's error envelope.

    Attributes
    ----------
    status : int
        HTTP status of the response (400, 401, 404, 413, 429, 500, 529).
    error_type : str
        The envelope's ``error.type``, e.g. ``"invalid_request_error"``.
    message : str
        The envelope's ``error.message``, worded as the real API words it.
    headers : dict
        Extra response headers (``retry-after`` on 429).
    """

    def __init__(self, message: str, *, status: int = 400, error_type: str = "invalid_request_error",
                 headers: dict[str, str] | None = None):
        self.status = status
        self.error_type = error_type
        self.message = message
        self.headers = headers or {}
        super().__init__(message)
