"""batchframe: run an LLM over every row of a DataFrame through a provider's batch API.

>>> import batchframe  # registers the ``df.batch`` accessor
"""

from __future__ import annotations

from batchframe import accessor as _accessor  # noqa: F401  (registers df.batch)
from batchframe import dask as _dask  # noqa: F401  (registers ddf.batch once dask.dataframe is imported)
from batchframe import progress as _progress  # noqa: F401  (registers how a Job shows itself in Jupyter)
from batchframe._version import __version__
from batchframe.api import (
    Estimate,
    Job,
    Store,
    embed,
    estimate,
    jobs,
    open_job,
    remote_batches,
    submit,
    table_metadata,
    to_parquet,
)
from batchframe.errors import (
    APIError,
    AuthenticationError,
    BatchframeError,
    BudgetError,
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
    PromptCacheWarning,
    RateLimitError,
    RequestTooLargeError,
    SchemaWarning,
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
    "BudgetError",
    "Column",
    "ConfigError",
    "Estimate",
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
    "PromptCacheWarning",
    "RateLimitError",
    "RequestTooLargeError",
    "RetryPolicy",
    "SchemaWarning",
    "ServerError",
    "ServiceError",
    "ShardLimits",
    "ShardStatus",
    "Store",
    "TransportError",
    "__version__",
    "build_requests",
    "col",
    "embed",
    "estimate",
    "jobs",
    "open_job",
    "remote_batches",
    "submit",
    "table_metadata",
    "to_parquet",
    "to_text",
]
