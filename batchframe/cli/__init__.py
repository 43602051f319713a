"""The ``batchframe`` command: argparse over the public API (:mod:`batchframe.api`), one module per
subcommand, each exposing ``add_parser(subparsers)``."""

from batchframe.cli.main import main

__all__ = ["main"]
