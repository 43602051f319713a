"""Fixtures of the server tests: clients (official SDK, plain httpx) on the local service."""

from __future__ import annotations

import httpx
import pytest
from server_helpers import HEADERS, make_sdk


@pytest.fixture
def sdk(service):
    client = make_sdk(service.base_url)
    yield client
    client.close()


@pytest.fixture
def http(service):
    with httpx.Client(base_url=service.base_url, headers=HEADERS, timeout=30) as client:
        yield client
