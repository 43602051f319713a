"""The OpenAI Batch API provider (``provider="openai"``): Files + Batches, chat completions and embeddings."""

from batchframe.providers.openai.client import OpenAIProvider

__all__ = ["OpenAIProvider"]
