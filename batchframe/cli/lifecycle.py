"""``batchframe retry|cancel|delete NAME`` and ``batchframe batches``: act on a job, list remote batches.

Thin façades over :meth:`batchframe.Job.retry`, :meth:`~batchframe.Job.cancel`,
:meth:`~batchframe.Job.delete` and :func:`batchframe.remote_batches`.
"""

from __future__ import annotations

import argparse
from typing import Any

import pandas as pd

from batchframe.api import open_job, remote_batches


def add_parser(subparsers: Any) -> None:
    """Register ``retry``, ``cancel``, ``delete`` and ``batches``."""
    p = subparsers.add_parser("retry", help="resubmit a job's failed rows as a new attempt",
                              description="Resubmit the rows whose latest try errored, expired, was canceled or "
                                          "is missing (never the succeeded or running ones).")
    p.add_argument("name", help="job name")
    p.add_argument("--base-url", help="the host of the job's batches, if it is not $ANTHROPIC_BASE_URL's (your choice)")
    p.add_argument("--error-type", action="append", dest="error_types", metavar="TYPE",
                   help="retry errored rows of this type only (repeatable; default: all but invalid_request_error)")
    p.set_defaults(func=_retry)
    p = subparsers.add_parser("cancel", help="cancel a job's running batches (done rows keep their results)")
    p.add_argument("name", help="job name")
    p.add_argument("--base-url", help="the host of the job's batches, if it is not $ANTHROPIC_BASE_URL's (your choice)")
    p.set_defaults(func=_cancel)
    p = subparsers.add_parser("delete", help="delete a job's ended remote batches (and its local files)")
    p.add_argument("name", help="job name")
    p.add_argument("--base-url", help="the host of the job's batches, if it is not $ANTHROPIC_BASE_URL's (your choice)")
    p.add_argument("--local", action="store_true", help="also remove the job's folder if no remote batch is left")
    p.set_defaults(func=_delete)
    p = subparsers.add_parser("batches", help="list remote batches; orphans are those no local job knows")
    p.add_argument("--provider", help="anthropic or local (default $BATCHFRAME_PROVIDER or anthropic)")
    p.add_argument("--orphans", action="store_true", help="only the orphans")
    p.set_defaults(func=_batches)


def _retry(args: argparse.Namespace) -> int:
    n = open_job(args.name, base_url=args.base_url).retry(set(args.error_types) if args.error_types else None)
    print(f"job {args.name}: {n} row(s) resubmitted" if n else f"job {args.name}: nothing to retry")
    return 0


def _cancel(args: argparse.Namespace) -> int:
    print(f"job {args.name}: {open_job(args.name, base_url=args.base_url).cancel().state}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    report = open_job(args.name, base_url=args.base_url).delete(local=args.local)
    _print(report)
    if args.local:
        print("local files removed" if report.attrs["local_files_removed"] else "local files kept")
    return 0 if report["deleted"].all() else 1


def _batches(args: argparse.Namespace) -> int:
    table = remote_batches(args.provider)
    if args.orphans:
        table = table[table["orphan"]]
    _print(table[["id", "processing_status", "requests", "created_at", "job", "orphan", "suspected_job"]])
    return 0


def _print(frame: pd.DataFrame) -> None:
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_rows", 500):
        print(frame.to_string(index=False) if len(frame) else "(none)")
