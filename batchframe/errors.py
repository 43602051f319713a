"""The one exception tree of batchframe.

::

    BatchframeError
    ├── ConfigError            a setting is missing or wrong (no API key, unknown provider, bad option)
    ├── InputError (ValueError) the DataFrame or an argument cannot be sent (missing column, duplicate labels)
    │   └── LimitError           a request or job is over a limit (batch size, bytes)
    │       └── BudgetError        the job's worst-case cost is over ``budget_usd``; nothing was created
    ├── JobError                the job store refuses (unknown job, name clash, locked, corrupt manifest)
    │   ├── JobNotFoundError
    │   ├── JobTimeoutError (TimeoutError)  wait(timeout=...) ran out; the remote batches keep running
    │   └── OrphanBatchError    an interrupted POST may have left a remote batch that cannot be told apart
    ├── TransportError          the provider could not be reached, after retries
    ├── APIError                the provider answered with an error envelope, after retries
    │   ├── AuthenticationError   401
    │   ├── PermissionDeniedError 403
    │   ├── NotFoundError         404
    │   ├── RequestTooLargeError  413
    │   ├── RateLimitError        429
    │   ├── OverloadedError       529
    │   └── ServerError           other 5xx
    └── ServiceError            the local service could not be started or found (translated at the
                                local provider's boundary from :mod:`batchframe.server.errors`)

Per-row failures are data (result columns), never exceptions. Exceptions carry context (job, shard,
batch id, request id) and never the API key.

Two warning classes: :class:`PromptCacheWarning` (``cache="auto"`` would silently not cache) and
:class:`SchemaWarning` (a provider's form of ``schema=`` means something else than the schema given).
"""

from __future__ import annotations


class BatchframeError(Exception):
    """Base class of every error batchframe raises on purpose."""


class ConfigError(BatchframeError):
    """A setting is missing or invalid; the message says what to set."""


class InputError(BatchframeError, ValueError):
    """The frame or an argument cannot be turned into requests; the message names the column, row or value."""


class LimitError(InputError):
    """A request, shard or job is over a limit (request count, bytes, budget)."""


class BudgetError(LimitError):
    """The worst case of what would be sent costs more than ``budget_usd``; nothing was created.

    Attributes
    ----------
    worst_case_usd, cap_usd : float
        The estimate's worst case (every request writing its cache, every answer ``max_tokens`` long) and
        the cap.
    job : str or None
        The job, when a retry or a later wave was held back.
    """

    def __init__(self, message: str, *, worst_case_usd: float, cap_usd: float, job: str | None = None):
        self.worst_case_usd = worst_case_usd
        self.cap_usd = cap_usd
        self.job = job
        super().__init__(message)


class PromptCacheWarning(UserWarning):
    """``cache="auto"`` found a shared prefix shorter than the model caches: it would not be cached."""


class SchemaWarning(UserWarning):
    """A provider needs ``schema=`` in a form that changes its meaning (OpenAI strict mode: an optional
    property becomes required and nullable, extra properties become forbidden); the message says where."""


class JobError(BatchframeError):
    """The job store refuses an operation."""


class JobNotFoundError(JobError, KeyError):
    """No job of that name in the store."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class JobTimeoutError(JobError, TimeoutError):
    """``Job.wait(timeout=...)`` ran out before the job ended. Nothing was canceled."""


class OrphanBatchError(JobError):
    """A shard's batch was being created when its process stopped, and batchframe cannot tell on its own
    which remote batch (if any) belongs to it. Nothing is sent until the user decides.

    Attributes
    ----------
    job : str
    attempt, shard : int
    candidates : tuple of str
        Remote batch ids that match the interrupted POST (time window, request count, unknown to the store).
    """

    def __init__(self, message: str, *, job: str, attempt: int, shard: int, candidates: tuple[str, ...] = ()):
        self.job = job
        self.attempt = attempt
        self.shard = shard
        self.candidates = tuple(candidates)
        super().__init__(message)


class TransportError(BatchframeError):
    """The provider could not be reached (connection refused, timeout) even after retries.

    ``maybe_sent`` is False when the request provably never left (connection refused), True when the
    server may have received it (a read timeout after sending): a batch may then exist remotely.
    """

    def __init__(self, message: str, *, maybe_sent: bool = True):
        self.maybe_sent = maybe_sent
        super().__init__(message)


class APIError(BatchframeError):
    """The provider answered with an error.

    Attributes
    ----------
    status : int
        HTTP status code.
    error_type : str
        The envelope's ``error.type`` (``"not_found_error"``, ...), or ``""`` if absent.
    message : str
        The envelope's ``error.message``.
    request_id : str or None
        The ``request-id`` header or the envelope's ``request_id``.
    """

    #: Whether the status (or ``x-should-retry``) asks for a retry; ``retry_after`` is the server's hint.
    retryable: bool = False
    retry_after: float | None = None

    def __init__(self, message: str, *, status: int, error_type: str = "", request_id: str | None = None):
        self.status = status
        self.error_type = error_type
        self.message = message
        self.request_id = request_id
        super().__init__(self._describe())

    def _describe(self) -> str:
        kind = f" {self.error_type}" if self.error_type else ""
        rid = f" (request-id {self.request_id})" if self.request_id else ""
        return f"HTTP {self.status}{kind}: {self.message}{rid}"


class AuthenticationError(APIError):
    """401: the API key was refused."""


class PermissionDeniedError(APIError):
    """403: the key may not do this."""


class NotFoundError(APIError):
    """404: no such batch (or its results are not available yet)."""


class RequestTooLargeError(APIError):
    """413: the request body is over the provider's limit."""


class RateLimitError(APIError):
    """429: rate limited, still after retries."""


class OverloadedError(APIError):
    """529: the provider is overloaded, still after retries."""


class ServerError(APIError):
    """5xx: the provider failed, still after retries."""


class ServiceError(BatchframeError):
    """The local service, or one of its engines, cannot start or run (seen from the client)."""


_BY_STATUS: dict[int, type[APIError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    413: RequestTooLargeError,
    429: RateLimitError,
    529: OverloadedError,
}


def api_error_class(status: int) -> type[APIError]:
    """The APIError subclass for an HTTP status.

    Examples
    --------
    >>> api_error_class(404).__name__
    'NotFoundError'
    >>> api_error_class(503).__name__
    'ServerError'
    """
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ServerError if status >= 500 else APIError
