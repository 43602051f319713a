"""batchframe: run an LLM over every row of a DataFrame through a provider's batch API.

>>> import batchframe  # registers the ``df.batch`` accessor
"""

from __future__ import annotations

from .errors import (
    APIError,
    AuthenticationError,
    BatchframeError,
    ConfigError,
    InputError,
    JobError,
    JobNotFoundError,
    LimitError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    ServerError,
    ServiceError,
    TransportError,
)
from .status import JobStatus, ShardStatus

__version__ = "0.1.0"

__all__ = [
    "APIError",
    "AuthenticationError",
    "BatchframeError",
    "ConfigError",
    "InputError",
    "JobError",
    "JobNotFoundError",
    "JobStatus",
    "LimitError",
    "NotFoundError",
    "OverloadedError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTooLargeError",
    "ServerError",
    "ServiceError",
    "ShardStatus",
    "TransportError",
    "__version__",
]
