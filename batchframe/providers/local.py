"""The bundled local service (``batchframe serve``), spoken to with the Anthropic protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from batchframe.config import local_data_dir
from batchframe.errors import ServiceError
from batchframe.providers.anthropic.client import AnthropicProvider
from batchframe.providers.base import Endpoint
from batchframe.providers.registry import register_provider


@register_provider
class LocalProvider(AnthropicProvider):
    """The local Message Batches service, started on demand (or reused) for a data folder.

    Examples
    --------
    >>> endpoint = LocalProvider.open_endpoint(base_url="http://127.0.0.1:8080", data_dir="/tmp/svc")
    >>> endpoint.identity
    'local:/tmp/svc'
    """

    name = "local"

    @classmethod
    def open_endpoint(
        cls,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        data_dir: str | Path | None = None,
        engine: str | None = None,
        **options: Any,
    ) -> Endpoint:
        folder = data_dir or (base_url and _served_folder(base_url)) or local_data_dir()
        if base_url is None:
            base_url = _start(folder, engine)
        # The port changes between runs; the data folder is what names this service's batches.
        identity = f"local:{Path(folder).resolve() if folder else 'default'}"
        return Endpoint(
            cls.name,
            base_url.rstrip("/"),
            identity,
            api_key=api_key or "local",
            data_dir=str(folder) if folder else None,
        )


def _start(folder: str | Path | None, engine: str | None) -> str:
    """The base URL of the service for ``folder``, started if none runs; its errors become the client's."""
    # Imported here so that `import batchframe` does not load the server (Starlette, uvicorn, SQLite).
    from batchframe.server import ensure_running
    from batchframe.server.errors import ServiceError as ServerSideError

    try:
        return ensure_running(data_dir=folder, engine=engine)
    except ServerSideError as exc:
        raise ServiceError(str(exc)) from exc


def _served_folder(base_url: str) -> str | None:
    """The data folder of the service at ``base_url``, so that a job re-opened later finds the service
    that holds its batches (not a new one on ``$BATCHFRAME_DATA_DIR``)."""
    from batchframe.server.runner import healthy

    info = healthy(base_url.rstrip("/"))
    return info.get("data_dir") if info else None
