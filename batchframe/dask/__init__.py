"""``ddf.batch``: the pandas accessor's verbs on Dask DataFrames, built on the workers, decided on the driver.

**Workers build and read; only the driver decides.** A worker builds its partition's requests, encodes
their lines and writes them to a staging file in the job store (:mod:`batchframe.dask.stage`), handing back
only fixed-size pieces: per row whether it sends a request, each request's digest and line length, a hash of
the partition's lines. It never consults the ledger, writes a job's files or creates a batch. The driver
(:mod:`batchframe.dask.submit`) dedupes, looks the digests up in the ledger, cuts shards from the line
lengths, streams ``requests.parquet`` from the staging files and sends each shard reading its lines back, so
it holds the fingerprints and the shard plan, never the request bodies; and a worker lost mid-build, whose
partition is simply built again, can never cause a second payment. Merging reads each partition's own rows
from the store's files (read only) on the workers (:mod:`batchframe.dask.merge`). The job store must be on a
filesystem every worker sees (a ``LocalCluster`` does).

Row keys are global: a row's position is its partition's offset plus its place in the partition.

``ddf.batch`` is registered when ``dask.dataframe`` is imported, before or after ``import batchframe``, if
Dask is installed (``pip install 'batchframe[dask]'``); ``import batchframe`` never imports Dask itself.
"""

from __future__ import annotations

import importlib.util

from batchframe.dask.hook import when_imported


def _register() -> None:
    # Imported when dask.dataframe is, not before: the accessor module imports it (1-2 s), which a program
    # that never uses Dask must not pay on `import batchframe`.
    from batchframe.dask import accessor  # noqa: F401  (registers ddf.batch)


if importlib.util.find_spec("dask") is not None:
    when_imported("dask.dataframe", _register)
