"""batchframe: run an LLM over every row of a DataFrame through a provider's batch API.

>>> import batchframe  # registers the ``df.batch`` accessor
"""

from __future__ import annotations

__version__ = "0.1.0"  # before the imports below: providers put it in the user-agent

from . import accessor as _accessor  # noqa: E402,F401  (registers df.batch)
from .build import Column, col
from .catalog import jobs, open_job, remote_batches
from .errors import (
    APIError,
    AuthenticationError,
    BatchframeError,
    ConfigError,
    InputError,
    JobError,
    JobNotFoundError,
    JobTimeoutError,
    LimitError,
    NotFoundError,
    OrphanBatchError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    ServerError,
    ServiceError,
    TransportError,
)
from .http import RetryPolicy
from .job import Job
from .shard import ShardLimits
from .status import JobStatus, ShardStatus
from .store import Store
from .submission import submit

__all__ = [
    "APIError",
    "AuthenticationError",
    "BatchframeError",
    "Column",
    "ConfigError",
    "InputError",
    "JobError",
    "Job",
    "JobNotFoundError",
    "JobStatus",
    "JobTimeoutError",
    "LimitError",
    "NotFoundError",
    "OrphanBatchError",
    "OverloadedError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTooLargeError",
    "RetryPolicy",
    "ServerError",
    "ServiceError",
    "ShardLimits",
    "ShardStatus",
    "Store",
    "TransportError",
    "__version__",
    "col",
    "jobs",
    "open_job",
    "remote_batches",
    "submit",
]
