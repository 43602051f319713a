"""batchframe: run an LLM over every row of a DataFrame through a provider's batch API.

>>> import batchframe  # registers the ``df.batch`` accessor
"""

from __future__ import annotations

from batchframe import accessor as _accessor  # noqa: F401  (registers df.batch)
from batchframe import progress as _progress  # noqa: F401  (registers how a Job shows itself in Jupyter)
from batchframe._version import __version__
from batchframe.api import Job, Store, jobs, open_job, remote_batches, submit, table_metadata, to_parquet
from batchframe.errors import (
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
from batchframe.progress.render import to_text
from batchframe.providers.http import RetryPolicy
from batchframe.requests.build import Column, build_requests, col
from batchframe.requests.shards import ShardLimits
from batchframe.types import JobStatus, ShardStatus

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
    "build_requests",
    "col",
    "jobs",
    "open_job",
    "remote_batches",
    "submit",
    "table_metadata",
    "to_parquet",
    "to_text",
]
