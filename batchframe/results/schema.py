"""The shared result schema: what every provider's result parser produces, and the columns a user sees.

A provider's parser (e.g. :mod:`batchframe.providers.anthropic.results`) turns its result lines into
:data:`RESULT_SCHEMA`; harvesting adds :data:`HARVEST_FIELDS` (the row each line belongs to, found through
the persisted custom_id mapping, never by order); merging produces :data:`RESULT_COLUMNS` under a prefix.
"""

from __future__ import annotations

import pyarrow as pa

from batchframe.errors import InputError

#: One parsed result line, the same for every provider.
RESULT_SCHEMA = pa.schema(
    [
        ("custom_id", pa.string()),
        ("status", pa.string()),
        ("text", pa.string()),
        ("stop_reason", pa.string()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("cache_creation_input_tokens", pa.int64()),
        ("cache_read_input_tokens", pa.int64()),
        ("cache_creation_1h_input_tokens", pa.int64()),
        ("error_type", pa.string()),
        ("error_message", pa.string()),
        ("model", pa.string()),
        ("message_id", pa.string()),
        ("tool_use", pa.string()),
    ]
)
#: The vector of an embeddings result, kept (with RESULT_SCHEMA) in the results of an embeddings job only.
EMBEDDING = pa.field("embedding", pa.list_(pa.float32()))
#: Columns a harvested table adds to RESULT_SCHEMA.
HARVEST_FIELDS = [
    pa.field("position", pa.int64()),
    pa.field("attempt", pa.int32()),
    pa.field("batch_id", pa.string()),
]
#: A harvested shard's table, as the job store keeps it (plus the source index columns).
HARVEST_SCHEMA = pa.schema([*RESULT_SCHEMA, *HARVEST_FIELDS])
#: Token counts of a result, as priced by :mod:`batchframe.results.cost`.
USAGE_COLUMNS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "cache_creation_1h_input_tokens",
)
#: Result columns of a merged frame, in order, before the prefix is applied.
RESULT_COLUMNS = (
    "text",
    "status",
    "stop_reason",
    *USAGE_COLUMNS,
    "cost_usd",
    "error_type",
    "error_message",
    "model",
    "message_id",
    "batch_id",
    "custom_id",
    "attempt",
    "tool_use",
    "reused",
)
DEFAULT_PREFIX = "llm_"
#: The requests file's ``shard`` of a row never sent (empty prompt), and of a row whose identical request
#: another row carries (it is answered through ``same_as``, the position of that row).
SKIPPED, REUSED = -1, -2
SAME_AS = "same_as"
#: The requests file's column holding each row's input hash (see :func:`batchframe.results.merge.input_hashes`).
INPUT_HASH = "input_hash"


def check_prefix(prefix: object) -> str:
    """``prefix`` if it can prefix column names, else InputError.

    Examples
    --------
    >>> check_prefix(None)
    Traceback (most recent call last):
    ...
    batchframe.errors.InputError: prefix must be a string such as 'llm_' ... got None
    """
    if not isinstance(prefix, str):
        raise InputError(f"prefix must be a string such as 'llm_' (result column names start with it), got {prefix!r}")
    return prefix
