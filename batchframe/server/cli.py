"""Run the local Message Batches service (``batchframe serve``) in the foreground until Ctrl-C.

It binds 127.0.0.1 by default. ``/health`` (status, version) needs no key; the API and ``/v1/service``
need a key header, and exactly the key in ``$BATCHFRAME_SERVICE_API_KEY`` with ``--require-api-key``. The
admin routes (``PUT /admin/faults``) exist only with ``--enable-admin`` or a ``--fault-*`` option.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from typing import Any

from .backend import MAX_BODY_BYTES, Backend
from .faults import Faults
from .runner import API_KEY_ENV, ENGINE_SECRETS_ENV, admin_enabled, default_data_dir, run_forever


def add_parser(subparsers: Any) -> None:
    """Register ``serve`` on the ``batchframe`` command."""
    p = subparsers.add_parser("serve", help="run the local Message Batches service",
                              description=__doc__.splitlines()[0])
    p.add_argument("--data-dir",
                   help="folder of the SQLite state (default: $BATCHFRAME_DATA_DIR or a per-user folder)")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8765, help="port (0 = any free port; default 8765)")
    p.add_argument("--engine", default="echo",
                   help="engine answering requests: echo, openai-compatible, llama")
    p.add_argument("--engine-option", action="append", default=[], metavar="KEY=VALUE",
                   help="engine option (VALUE parsed as JSON when it can be), e.g. latency=0.05; repeatable")
    p.add_argument("--require-api-key", action="store_true",
                   help=f"only accept the key in ${API_KEY_ENV} (any other key gets 401), admin routes included")
    p.add_argument("--enable-admin", action="store_true",
                   help="serve the admin routes (PUT /admin/faults: any local process can then break every "
                        "call unless --require-api-key); implied by any --fault-* option")
    p.add_argument("--ttl-seconds", type=float, default=86400,
                   help="batch expiry after creation (default 24 h)")
    p.add_argument("--workers", type=int, help="requests processed at once (default: the engine's own)")
    p.add_argument("--idle-exit-seconds", type=float,
                   help="exit after this long without API calls once no batch is unfinished (default: never)")
    p.add_argument("--max-body-bytes", type=int, default=MAX_BODY_BYTES, help="bodies over this get 413")
    faults = p.add_argument_group("fault injection (off by default; for testing clients; enables admin)")
    faults.add_argument("--fault-http-error-rate", type=float, default=0.0)
    faults.add_argument("--fault-http-error-statuses", default="429,529,500", help="comma-separated statuses")
    faults.add_argument("--fault-http-errors-after-processing", action="store_true",
                        help="serve the call, then answer with the injected error (a lost response)")
    faults.add_argument("--fault-request-error-rate", type=float, default=0.0)
    faults.add_argument("--fault-request-error-type", default="api_error")
    faults.add_argument("--fault-cut-results-after-bytes", type=int)
    faults.add_argument("--fault-slow-seconds", type=float, default=0.0)
    faults.add_argument("--fault-retry-after-seconds", type=float, default=1.0)
    faults.add_argument("--fault-results-crlf", action="store_true", help="results lines end with CRLF")
    faults.add_argument("--fault-results-no-content-type", action="store_true",
                        help="results are sent without a content-type header")
    faults.add_argument("--fault-seed", type=int)
    p.set_defaults(func=run)


def engine_options(pairs: list[str]) -> dict[str, Any]:
    """Parse ``KEY=VALUE`` pairs; values are JSON when they parse, else strings.

    Examples
    --------
    >>> engine_options(["latency=0.5", "base_url=http://x/v1"])
    {'latency': 0.5, 'base_url': 'http://x/v1'}
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"batchframe serve: --engine-option needs KEY=VALUE, got {pair!r}")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def secret_options() -> dict[str, Any]:
    """Secret engine options handed over by ``spawn`` / ``ensure_running`` in the environment (JSON)."""
    raw = os.environ.get(ENGINE_SECRETS_ENV)
    if not raw:
        return {}
    try:
        options = json.loads(raw)
    except ValueError:
        raise SystemExit(f"batchframe serve: ${ENGINE_SECRETS_ENV} is not a JSON object") from None
    if not isinstance(options, dict):
        raise SystemExit(f"batchframe serve: ${ENGINE_SECRETS_ENV} is not a JSON object")
    return options


def faults_from(args: argparse.Namespace) -> Faults:
    return Faults(
        http_error_rate=args.fault_http_error_rate,
        http_error_statuses=tuple(int(s) for s in args.fault_http_error_statuses.split(",") if s.strip()),
        http_errors_after_processing=args.fault_http_errors_after_processing,
        request_error_rate=args.fault_request_error_rate,
        request_error_type=args.fault_request_error_type,
        cut_results_after_bytes=args.fault_cut_results_after_bytes,
        slow_seconds=args.fault_slow_seconds,
        retry_after_seconds=args.fault_retry_after_seconds,
        results_crlf=args.fault_results_crlf,
        results_no_content_type=args.fault_results_no_content_type,
        seed=args.fault_seed,
    )


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    api_key = None
    if args.require_api_key:
        api_key = os.environ.get(API_KEY_ENV)
        if not api_key:
            raise SystemExit(f"batchframe serve: --require-api-key needs the key in ${API_KEY_ENV}")
    data_dir = args.data_dir or default_data_dir()
    faults = faults_from(args)
    backend = Backend(data_dir=data_dir, engine=args.engine,
                      engine_options={**secret_options(), **engine_options(args.engine_option)},
                      faults=faults, ttl_seconds=args.ttl_seconds, workers=args.workers,
                      max_body_bytes=args.max_body_bytes)

    def ready(base_url: str) -> None:
        print(f"batchframe serve: {base_url} (engine {args.engine}, data dir {backend.data_dir})", flush=True)

    run_forever(backend, host=args.host, port=args.port, api_key=api_key, on_ready=ready,
                idle_exit_seconds=args.idle_exit_seconds, enable_admin=admin_enabled(args.enable_admin, faults))
    return 0
