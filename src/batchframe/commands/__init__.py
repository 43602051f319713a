"""Subcommands of the ``batchframe`` CLI that drive jobs: submit, status, results, jobs,
retry, cancel, delete, batches.

Each module exposes ``add_parser(subparsers)``; they are thin façades over the same functions the
notebook API uses.
"""
