"""The local batch service (``batchframe serve``): Anthropic's Message Batches API and OpenAI's Files and
Batches API on one SQLite state, one worker and one engine.

::

    app.py      Starlette routes (parse, serialise) + request-id / auth / admin switch / fault middleware
    backend.py  the state and its transitions (create, retrieve, list, cancel, delete, results, messages)
    worker.py   processes pending requests FIFO across batches through an engine
    store.py    SQLite (migrations.py: named, append-only schema steps)
    validation.py  the one validation layer (create, /v1/messages, count_tokens), from the spec's schemas
                   vendored in schemas/messages.json (GA and beta); models.py: accepted models and limits
    wire.py     the API's object shapes
    identity.py what GET /v1/service tells: id (ids.service_id of the data dir), version, engine, model,
                engine options without secrets
    engines/    echo, openai-compatible, llama
    openai_routes.py / openai_backend.py / openai_work.py
                the OpenAI Files and Batches API: routes, state and transitions, the worker's side
                (validate input files, answer requests, write output and error files); openai_wire.py
                its shapes, openai_validation.py its checks, openai_convert.py chat -> Messages,
                openai_models.py accepted OpenAI model ids, openai_store.py its SQL; files.py the files
                (bytes on disk, rows in SQLite); multipart.py reads uploads; responses.py HTTP helpers
    runner.py   serve_in_thread; process.py: spawn, ensure_running; cli.py: ``batchframe serve``

Examples
--------
>>> from batchframe.server import serve_in_thread
>>> with serve_in_thread(data_dir=tmp_path) as service:  # doctest: +SKIP
...     client = anthropic.Anthropic(base_url=service.base_url, api_key="local")
"""

from .faults import Faults
from .ids import service_id
from .process import ensure_running, serve_command, spawn
from .runner import LocalService, default_data_dir, serve_in_thread

__all__ = ["Faults", "LocalService", "default_data_dir", "ensure_running", "serve_command", "serve_in_thread",
           "service_id", "spawn"]
