"""The ``batchframe`` command: a thin façade over the same core the notebook API uses.

Each subcommand lives in a module that exposes ``add_parser(subparsers)``; the parser's ``func`` default
runs it and returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from batchframe._version import __version__
from batchframe.errors import BatchframeError
from batchframe.server.errors import ServiceError

# Subcommand modules, each with add_parser(subparsers). Missing ones are skipped while they are written.
_COMMAND_MODULES: tuple[str, ...] = ("batchframe.server.cli", "batchframe.cli.submit", "batchframe.cli.status",
                                     "batchframe.cli.results", "batchframe.cli.jobs", "batchframe.cli.lifecycle",
                                     "batchframe.cli.demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="batchframe", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"batchframe {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script.

    Examples
    --------
    >>> main(["--version"])  # doctest: +SKIP
    batchframe 0.1.0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (BatchframeError, ServiceError) as exc:  # `serve` raises the service's own errors
        print(f"batchframe: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("batchframe: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
