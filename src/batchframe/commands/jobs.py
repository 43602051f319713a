"""``batchframe jobs``: the jobs of the store with their last known state (no network)."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import JobError
from ..manifest import job_status
from ..store import Store


def add_parser(subparsers: Any) -> None:
    """Register ``jobs``."""
    p = subparsers.add_parser("jobs", help="list the jobs of the store", description=__doc__.splitlines()[0])
    p.add_argument("--store", help="job store folder (default $BATCHFRAME_STORE or ./.batchframe)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    store = Store(args.store)
    names = store.names()
    if not names:
        print(f"no jobs in {str(store.root)!r}")
        return 0
    print(f"{'name':40} {'provider':10} {'model':28} {'state':12} {'rows':>8} {'succeeded':>9} {'errored':>8}")
    for name in names:
        try:
            status = job_status(store.read_manifest(name))
        except (JobError, KeyError) as exc:
            print(f"{name:40} unreadable manifest: {exc}")
            continue
        counts = status.counts
        print(
            f"{name:40} {status.provider:10} {status.model:28} {status.state:12} {status.n_rows:>8} "
            f"{counts['succeeded']:>9} {counts['errored']:>8}"
        )
    return 0
