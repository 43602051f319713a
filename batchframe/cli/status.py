"""``batchframe status NAME``: where a job stands (asks the provider unless --offline)."""

from __future__ import annotations

import argparse
from typing import Any

from batchframe.api import open_job
from batchframe.progress.render import to_text


def add_parser(subparsers: Any) -> None:
    """Register ``status``."""
    p = subparsers.add_parser("status", help="show a job's state and counts", description=__doc__.splitlines()[0])
    p.add_argument("name", help="job name")
    p.add_argument("--base-url", help="the host of the job's batches, if it is not $ANTHROPIC_BASE_URL's (your choice)")
    p.add_argument("--offline", action="store_true", help="show the last known state without any network call")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    job = open_job(args.name, base_url=args.base_url)
    print(to_text(job.status if args.offline else job.refresh()))
    return 0
