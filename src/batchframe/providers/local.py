"""The bundled local service (``batchframe serve``), spoken to with the Anthropic protocol."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .anthropic import AnthropicProvider
from .base import Endpoint, register_provider


@register_provider
class LocalProvider(AnthropicProvider):
    """The local Message Batches service, started on demand (or reused) for a data folder.

    Examples
    --------
    >>> endpoint = LocalProvider.resolve(base_url="http://127.0.0.1:8080", data_dir="/tmp/svc")
    >>> endpoint.identity
    'local:/tmp/svc'
    """

    name = "local"

    @classmethod
    def resolve(
        cls,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        data_dir: str | os.PathLike | None = None,
        engine: str | None = None,
        **options: Any,
    ) -> Endpoint:
        folder = data_dir or (base_url and _served_folder(base_url)) or os.environ.get("BATCHFRAME_DATA_DIR")
        if base_url is None:
            from ..server import ensure_running  # the server package is imported only when needed

            base_url = ensure_running(data_dir=folder, engine=engine)
        # The port changes between runs; the data folder is what names this service's batches.
        identity = f"local:{Path(folder).resolve() if folder else 'default'}"
        return Endpoint(
            cls.name,
            base_url.rstrip("/"),
            identity,
            api_key=api_key or "local",
            data_dir=str(folder) if folder else None,
        )


def _served_folder(base_url: str) -> str | None:
    """The data folder of the service at ``base_url``, so that a job re-opened later finds the service
    that holds its batches (not a new one on ``$BATCHFRAME_DATA_DIR``)."""
    from ..server.runner import healthy

    info = healthy(base_url.rstrip("/"))
    return info.get("data_dir") if info else None
