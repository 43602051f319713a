"""The local service's own exceptions; the server imports nothing from the client.

::

    ServiceError                the service or one of its engines cannot start or run
    └── ServiceRequestError     one HTTP request is refused (the app renders it as the API's error envelope)
        └── OpenAIRequestError  ... on an OpenAI route, with OpenAI's ``param`` and ``code``

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


class OpenAIRequestError(ServiceRequestError):
    """An OpenAI route refuses one request: rendered as ``{"error": {"message", "type", "param", "code"}}``.

    ``error_type`` is then OpenAI's ``type`` (``"invalid_request_error"``, ``"server_error"``...).

    Examples
    --------
    >>> err = OpenAIRequestError("Missing required parameter: 'input_file_id'.", param="input_file_id",
    ...                          code="missing_required_parameter")
    >>> err.status, err.param, err.code
    (400, 'input_file_id', 'missing_required_parameter')
    """

    def __init__(self, message: str, *, status: int = 400, error_type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message, status=status, error_type=error_type, headers=headers)
        self.param = param
        self.code = code
