"""Anthropic Message Batches: the client, its wire codec, its result parser and its price table.

Nothing outside this folder knows an Anthropic wire key (``processing_status``, ``request_counts``,
the ``{"requests": [...]}`` envelope): the rest of batchframe sees :class:`~batchframe.providers.base.RemoteBatch`
values and Arrow tables in :data:`batchframe.results.schema.RESULT_SCHEMA`.
"""

from batchframe.providers.anthropic.client import AnthropicProvider

__all__ = ["AnthropicProvider"]
