"""``batchframe submit FILE --prompt ... --model ... --max-tokens N``: submit a table's rows as batches."""

from __future__ import annotations

import argparse
from typing import Any

from batchframe.api import submit
from batchframe.cli.output import read_table
from batchframe.progress.render import to_text


def add_parser(subparsers: Any) -> None:
    """Register ``submit``."""
    p = subparsers.add_parser(
        "submit", help="submit the rows of a table as Message Batches", description=__doc__.splitlines()[0]
    )
    p.add_argument("file", help="input table (.parquet, .csv, .jsonl)")
    p.add_argument("--prompt", required=True, help="a column name or a template such as 'Summarize: {text}'")
    p.add_argument("--model", required=True)
    p.add_argument("--max-tokens", required=True, help="an integer, or a column holding one per row")
    p.add_argument("--system", help="system prompt")
    p.add_argument("--index-col", help="column to use as the row index")
    p.add_argument("--name", help="job name (default: generated)")
    p.add_argument("--provider", help="anthropic (default), local or openai")
    p.add_argument("--base-url", help="provider base URL (default $ANTHROPIC_BASE_URL, or $OPENAI_BASE_URL for openai)")
    p.add_argument("--new", action="store_true", help="submit again even if the same job exists (pays again)")
    p.add_argument("--max-batch-requests", type=int)
    p.add_argument("--max-batch-bytes", type=int)
    p.add_argument("--wait", action="store_true", help="wait until the job has ended")
    p.add_argument("--poll-interval", type=float, default=10.0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    frame = read_table(args.file, args.index_col)
    max_tokens: Any = int(args.max_tokens) if args.max_tokens.isdigit() else args.max_tokens
    extra = {"system": args.system} if args.system else {}
    job = submit(
        frame,
        prompt=args.prompt,
        model=args.model,
        max_tokens=max_tokens,
        name=args.name,
        provider=args.provider,
        base_url=args.base_url,
        new=args.new,
        max_batch_requests=args.max_batch_requests,
        max_batch_bytes=args.max_batch_bytes,
        **extra,
    )
    status = job.wait(poll_interval=args.poll_interval) if args.wait else job.status
    print(to_text(status))
    return 0
