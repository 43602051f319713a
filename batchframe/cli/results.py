"""``batchframe results NAME -o out.parquet``: write a job's result columns (merged into --input if given)."""

from __future__ import annotations

import argparse
from typing import Any

from batchframe.api import DEFAULT_PREFIX, open_job
from batchframe.cli.output import read_table, write_table


def add_parser(subparsers: Any) -> None:
    """Register ``results``."""
    p = subparsers.add_parser("results", help="write a job's results to a file", description=__doc__.splitlines()[0])
    p.add_argument("name", help="job name")
    p.add_argument("--base-url", help="the host of the job's batches, if it is not $ANTHROPIC_BASE_URL's (your choice)")
    p.add_argument("-o", "--output", required=True, help="output file (.parquet keeps job metadata, or .csv)")
    p.add_argument("--input", help="the submitted table, to write it merged with the results")
    p.add_argument("--index-col", help="index column of --input")
    p.add_argument("--prefix", default=DEFAULT_PREFIX, help=f"result column prefix (default {DEFAULT_PREFIX})")
    p.add_argument("--wait", action="store_true", help="wait for the job to end first")
    p.add_argument("--poll-interval", type=float, default=10.0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    job = open_job(args.name, base_url=args.base_url)
    job.wait(poll_interval=args.poll_interval) if args.wait else job.refresh()
    if args.input:
        frame = job.merge(read_table(args.input, args.index_col), prefix=args.prefix)
    else:
        frame = job.results(prefix=args.prefix)
    write_table(frame, args.output, job.export_metadata())
    counts = frame[f"{args.prefix}status"].value_counts().to_dict()
    print(f"wrote {len(frame)} rows to {args.output}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    return 0
