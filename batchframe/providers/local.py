"""The bundled local service (``batchframe serve``), spoken to with the Anthropic protocol.

A local job is pinned to the service that accepted it: its identity is the service's id (derived from the
service's data folder, so it survives a new port), and the manifest records the engine, its model and its
options (never a secret). Re-opening the job reaches that service again, restarts it with exactly the
recorded engine and options, or says how to start it; it never lets another engine answer the job's rows.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from batchframe.config import local_data_dir
from batchframe.errors import ServiceError
from batchframe.providers.anthropic.client import API_VERSION, AnthropicProvider
from batchframe.providers.anthropic.pricing import batch_price_for
from batchframe.providers.base import Endpoint
from batchframe.providers.hosts import check_stored_host, is_loopback
from batchframe.providers.registry import register_provider
from batchframe.results.cost import PriceLookup

#: Engine facts a job pins: what answered it and how the engine was configured (secrets left out).
PINNED = ("id", "engine", "model", "engine_options", "secret_options")


@register_provider
class LocalProvider(AnthropicProvider):
    """The local Message Batches service, started on demand (or reused) for a data folder.

    Examples
    --------
    >>> with batchframe.server.serve_in_thread(data_dir=tmp_path) as service:  # doctest: +SKIP
    ...     LocalProvider.open_endpoint(base_url=service.base_url).service["engine"]
    'echo'
    """

    name = "local"

    @classmethod
    def structured_via(cls, model: str) -> str:
        """Every engine of the local service honours ``output_config.format``, whatever model is named.

        Examples
        --------
        >>> LocalProvider.structured_via("claude-3-haiku-20240307")
        'output_config'
        """
        return "output_config"

    @classmethod
    def pricer(cls, model: str) -> tuple[PriceLookup, str | None]:
        """The local service answers with its own engine and bills nothing; so that a demo shows real-looking
        money, its usage is priced at the batch price of the model the job named, and says so.

        Examples
        --------
        >>> lookup, note = LocalProvider.pricer("claude-haiku-4-5")
        >>> lookup("echo").output, note
        (2.5, 'estimate: the local usage priced as claude-haiku-4-5 at batch rates')
        >>> LocalProvider.pricer("smollm2")[1] is None
        True
        """
        price = batch_price_for(model)
        if price is None:
            return (lambda _answered: None), None
        return (lambda _answered: price), f"estimate: the local usage priced as {model} at batch rates"

    @classmethod
    def open_endpoint(
        cls,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        data_dir: str | Path | None = None,
        engine: str | None = None,
        engine_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> Endpoint:
        if options:
            raise ServiceError(f"provider 'local' takes data_dir, engine and engine_options, not {sorted(options)}")
        key = api_key or "local"
        folder = Path(data_dir) if data_dir is not None else None
        if base_url is None:
            folder = folder or _default_folder()
            base_url = _start(folder, engine, engine_options)
        base_url = base_url.rstrip("/")
        info = service_info(base_url, key)
        if engine is not None and info["engine"] != engine:
            raise ServiceError(f"the local service at {base_url} runs engine {info['engine']!r}, not {engine!r}")
        if folder is None:  # sent by URL: find its folder when it is the usual one, so a restart can reuse it
            folder = next((d for d in _candidate_folders() if _service_id(d) == info["id"]), None)
        # The port changes between runs; the service id (from its data folder) names its batches.
        return Endpoint(cls.name, base_url, f"local:{info['id']}", api_key=key,
                        data_dir=str(folder) if folder else None, service={k: info.get(k) for k in PINNED})

    @classmethod
    def check_reopen(cls, record: dict[str, Any], *, base_url: str | None = None) -> None:
        """Refuse, offline, hosts read from a job's files that the user did not choose: the service's URL
        when it is not this machine, and a URL among the pinned engine options (an openai-compatible engine
        restarted with it would forward requests, and ``$OPENAI_API_KEY``, there). Which service answers is
        checked against the job's pin when it is reached."""
        if base_url is not None:
            return
        urls = [record["base_url"], *(v for v in ((record.get("service") or {}).get("engine_options") or {}).values()
                                      if isinstance(v, str) and v.startswith(("http://", "https://")))]
        for url in urls:
            if not is_loopback(url):
                check_stored_host(record["name"], url, environment=os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com",
                                  variable="OPENAI_BASE_URL")

    @classmethod
    def reopen_endpoint(cls, record: dict[str, Any], *, api_key: str | None = None,
                        base_url: str | None = None) -> Endpoint:
        """The service that accepted the job, never another engine; restarted with its pinned engine if gone."""
        cls.check_reopen(record, base_url=base_url)
        pinned, folder = record.get("service"), record.get("data_dir")
        if base_url is None and folder and pinned and not pinned.get("secret_options"):
            base_url = _start(Path(folder), pinned["engine"], pinned.get("engine_options") or {})
        elif base_url is None and folder:
            base_url = _running(Path(folder))  # no pin (an older job) or a secret option: never guess
        base_url = base_url or record["base_url"]
        try:
            endpoint = cls.open_endpoint(api_key=api_key, base_url=base_url, data_dir=folder)
        except ServiceError as exc:
            raise ServiceError(f"job {record['name']!r}: {exc}. {_restart_hint(record)}") from exc
        _check_pinned(record, endpoint)
        return endpoint


def service_info(base_url: str, api_key: str) -> dict[str, Any]:
    """What the service at ``base_url`` says of itself (``GET /v1/service``): id, engine, model, options.

    Examples
    --------
    >>> service_info(service.base_url, "local")["engine"]  # doctest: +SKIP
    'echo'
    """
    headers = {"x-api-key": api_key, "anthropic-version": API_VERSION}
    try:
        with httpx.Client(timeout=10.0) as client:
            answer = client.get(f"{base_url}/v1/service", headers=headers)
    except httpx.HTTPError as exc:
        raise ServiceError(f"no local service answers at {base_url} ({type(exc).__name__})") from None
    if answer.status_code != 200:
        raise ServiceError(f"the service at {base_url} is not a batchframe local service (HTTP {answer.status_code})")
    return answer.json()


def _check_pinned(record: dict[str, Any], endpoint: Endpoint) -> None:
    pinned, now = record.get("service"), endpoint.service or {}
    if pinned is None:
        return
    if now.get("id") != pinned.get("id") or now.get("engine") != pinned.get("engine") or (
        now.get("engine_options") or {}) != (pinned.get("engine_options") or {}):
        raise ServiceError(
            f"job {record['name']!r} was answered by the local service {pinned.get('id')} with engine "
            f"{pinned.get('engine')!r} {pinned.get('engine_options') or {}}, but {endpoint.base_url} is service "
            f"{now.get('id')} with engine {now.get('engine')!r} {now.get('engine_options') or {}}; nothing was "
            f"sent. {_restart_hint(record)}"
        )


def _restart_hint(record: dict[str, Any]) -> str:
    """The command that starts the service a job was sent to (secret options shown as ``...``)."""
    from batchframe.server import serve_command

    pinned = record.get("service") or {}
    if not pinned.get("engine"):
        return ("Start the service the job was sent to (the engine it used is not recorded), then "
                f"batchframe.open_job({record['name']!r}, base_url=...)")
    options = {**(pinned.get("engine_options") or {}), **dict.fromkeys(pinned.get("secret_options") or (), "")}
    if record.get("data_dir"):
        command = serve_command(data_dir=record["data_dir"], engine=pinned["engine"], engine_options=options)
        return f"Start it with: {command}"
    port = urlsplit(record["base_url"]).port
    engine_part = serve_command(data_dir=".", engine=pinned["engine"], engine_options=options).split(" --engine ")[1]
    return (f"Start it again with the data folder it used: batchframe serve --data-dir <that folder> --port {port} "
            f"--engine {engine_part}")


def _start(folder: Path, engine: str | None, engine_options: dict[str, Any] | None) -> str:
    """The base URL of the service for ``folder``, started if none runs; its errors become the client's."""
    # Imported here so that `import batchframe` does not load the server (Starlette, uvicorn, SQLite).
    from batchframe.server import ensure_running
    from batchframe.server.errors import ServiceError as ServerSideError

    try:
        return ensure_running(data_dir=folder, engine=engine, engine_options=engine_options)
    except ServerSideError as exc:
        raise ServiceError(str(exc)) from exc


def _running(folder: Path) -> str | None:
    """The base URL of the service recorded for ``folder`` if it answers; never starts one."""
    from batchframe.server.runner import healthy, recorded

    info = recorded(folder)
    return info["base_url"] if info and healthy(info["base_url"], folder) else None


def _default_folder() -> Path:
    from batchframe.server.runner import default_data_dir

    return Path(local_data_dir() or default_data_dir())


def _candidate_folders() -> list[Path]:
    return [_default_folder()]


def _service_id(folder: Path) -> str:
    from batchframe.server.ids import service_id

    return service_id(folder)
