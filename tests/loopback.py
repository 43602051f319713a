"""Test helpers shared by the test folders: read the local service's own state over loopback HTTP."""

from __future__ import annotations

import httpx

VERSION = "2023-06-01"


def list_batches(base_url: str, key: str) -> list[dict]:
    """The service's own batch list (every page), newest first."""
    out, after = [], None
    headers = {"x-api-key": key, "anthropic-version": VERSION}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
        for _ in range(1000):
            params = {"limit": 1000, **({"after_id": after} if after else {})}
            page = client.get("/v1/messages/batches", params=params).raise_for_status().json()
            out += page["data"]
            if not page["has_more"]:
                return out
            after = page["last_id"]
    raise AssertionError("too many pages")
