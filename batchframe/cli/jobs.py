"""``batchframe jobs``: the jobs of the store with their last known state and row counts (no network)."""

from __future__ import annotations

import argparse
from typing import Any

from batchframe.api import jobs

_COLUMNS = ["name", "provider", "model", "state", "rows", "succeeded", "errored", "pending", "skipped", "reused"]


def add_parser(subparsers: Any) -> None:
    """Register ``jobs``."""
    p = subparsers.add_parser("jobs", help="list the jobs of the store", description=__doc__.splitlines()[0])
    p.add_argument("--store", help="job store folder (default $BATCHFRAME_STORE, else the per-user one)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    table = jobs(store=args.store)
    if table.empty:
        print("no jobs in the store")
        return 0
    print(table[_COLUMNS].to_string(index=False, na_rep="-"))
    return 0
