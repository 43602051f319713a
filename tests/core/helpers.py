"""Helpers of the core integration tests: they talk to the real local service over loopback HTTP."""

from __future__ import annotations

import httpx

import batchframe
from loopback import list_batches

KEY = "sk-test-key-0123456789"
FAST = batchframe.RetryPolicy(max_retries=8, backoff=0.01, max_backoff=0.05)


def submit(df, service, **kwargs):
    """``df.batch.submit`` against ``service`` through the anthropic provider (as user code would)."""
    kwargs.setdefault("prompt", "q")
    kwargs.setdefault("model", "claude-haiku-4-5")
    kwargs.setdefault("max_tokens", 64)
    kwargs.setdefault("retry", FAST)
    return df.batch.submit(
        provider="anthropic", api_key=kwargs.pop("api_key", KEY), base_url=service.base_url, **kwargs
    )


def remote_batches(service, key=KEY):
    """The service's own batch list (every page), newest first."""
    return list_batches(service.base_url, key)


def raw_results(service, batch_id, key=KEY):
    """The custom_ids of a batch's results in the order the service streams them."""
    import orjson

    with httpx.Client(
        base_url=service.base_url, headers={"x-api-key": key, "anthropic-version": "2023-06-01"}, timeout=30
    ) as client:
        body = client.get(f"/v1/messages/batches/{batch_id}/results").raise_for_status().content
    return [orjson.loads(line)["custom_id"] for line in body.split(b"\n") if line]


def values(series):
    """A column as a list with every missing value as None (Arrow-backed columns give pd.NA)."""
    import pandas as pd

    return [None if pd.isna(v) else v for v in series.tolist()]
