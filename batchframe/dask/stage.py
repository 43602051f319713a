"""Each partition's request lines written where the driver reads them: the staging files of a Dask submit.

**A worker writes only its own partition's staging file, and hands back only fixed-size pieces.** It builds
the partition's requests (:func:`batchframe.requests.build.build_requests`), numbers them from the
partition's offset in the frame (custom_ids ``r<position>`` are global), encodes their lines with the
provider's codec and writes them, with the row labels, request digests and input hashes, to one Parquet file
in a staging folder the driver made in the job store. It returns a :class:`Staged`: which rows send a
request, each request's 16-byte digest and line length, and a hash of the partition's lines in order. It
never reads the ledger, writes a job's files or creates a batch: the driver decides (:mod:`.submit`).

The staging folder must be one every worker sees (the store on a local disk with a ``LocalCluster``, or a
shared filesystem); a worker that does not see it fails with a message saying so. Each run of a partition's
task writes a file of its own (its name carries a fresh run id, handed back in :class:`Staged`), atomically:
the driver reads exactly the file of the run whose digests and sizes it planned from, even when a worker
thought lost finishes an earlier run of the same partition later.
"""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from batchframe.errors import InputError
from batchframe.jobs.labels import labels_table
from batchframe.jobs.ledger import DIGEST
from batchframe.jobs.store import check_index_storable
from batchframe.providers import provider_class
from batchframe.requests.build import RequestSet, build_requests
from batchframe.requests.fingerprint import request_digests
from batchframe.requests.keys import custom_ids
from batchframe.results.merge import input_hashes
from batchframe.results.schema import INPUT_HASH

#: The folder of the job store under which each Dask submit stages its partitions (removed when it ends).
STAGING = ".staging"

#: Turns the requests built from a partition into the requests sent (embeddings: :func:`as_embeddings`).
Post = Callable[[RequestSet], RequestSet]


@dataclass(frozen=True)
class Stage:
    """What a worker needs to stage a partition: the folder, who answers (for the digests), the provider
    (for its codec), :func:`build_requests`' keyword arguments and an optional ``post`` step."""

    folder: str
    answerer: str
    provider: str
    spec: dict[str, Any]
    post: Post | None = None


@dataclass(frozen=True)
class Staged:
    """What a worker hands back for one partition: per row, whether it sends a request; per request, its
    16-byte digest (concatenated) and line length; the sha256 of its lines in order; ``file``, the name of the
    staging file this run wrote (in the stage's folder)."""

    number: int
    n_rows: int
    sent: np.ndarray
    digests: bytes
    sizes: np.ndarray
    lines_hash: bytes
    file: str = ""

    def path(self, folder: str | Path) -> Path:
        """This run's staging file in ``folder``."""
        return Path(folder) / self.file


def part_path(folder: str | Path, number: int, run: str) -> Path:
    """The staging file of run ``run`` of partition ``number``.

    Examples
    --------
    >>> part_path("/s", 3, "ab12").name
    'part.00003.ab12.parquet'
    """
    return Path(folder) / f"part.{number:05d}.{run}.parquet"


def build(part: pd.DataFrame, spec: dict[str, Any], post: Post | None) -> RequestSet:
    """A partition's requests, as sent (``post`` applied)."""
    requests = build_requests(part, **spec)
    return post(requests) if post is not None else requests


def stage_partition(part: pd.DataFrame, stage: Stage, number: int, offset: int) -> Staged:
    """On a worker: write partition ``number`` (its first row at position ``offset``) to its staging file.

    Examples
    --------
    >>> import tempfile
    >>> stage = Stage(tempfile.mkdtemp(), "local:x", "anthropic", {"prompt": "q", "model": "m", "max_tokens": 8})
    >>> staged = stage_partition(pd.DataFrame({"q": ["hi", None, "yo"]}, index=[7, 8, 9]), stage, 1, 100)
    >>> staged.sent.tolist(), staged.sizes.tolist() == [len(b) for b in read_staged(stage.folder, staged)["body"]
    ...                                                  .drop_null().to_pylist()]
    ([True, False, True], True)
    >>> read_staged(stage.folder, staged)["custom_id"].to_pylist()
    ['r100', None, 'r102']
    """
    folder = Path(stage.folder)
    if not folder.is_dir():
        raise InputError(
            f"the job store's staging folder {str(folder)!r} is not visible on Dask worker {socket.gethostname()!r}: "
            "ddf.batch.submit needs a job store on a filesystem every worker sees (a LocalCluster does); pass "
            "store= a shared folder")
    n = len(part)
    if n == 0:
        return Staged(number, 0, np.zeros(0, bool), b"", np.zeros(0, np.int64), hashlib.sha256().digest())
    check_index_storable(part.index)
    requests = build(part, stage.spec, stage.post)
    ids = custom_ids(requests.positions + offset)
    lines = provider_class(stage.provider).codec.encode_lines(ids, requests.params)
    digests = request_digests(stage.answerer, requests.params)
    sent = ~np.asarray(requests.skipped, bool)
    at = pa.array(np.cumsum(sent) - 1, pa.int64(), mask=~sent)  # each row's request, null where skipped
    table, _ = labels_table(part.index, {"position": np.arange(offset, offset + n, dtype=np.int64)})
    table = (table.append_column("custom_id", pa.array(ids, pa.string()).take(at))
             .append_column("body", pa.array(lines, pa.binary()).take(at))
             .append_column(DIGEST, pa.array(digests, pa.binary(16)).take(at))
             .append_column(INPUT_HASH, pa.array(input_hashes(part, requests.columns), pa.uint64())))
    path = part_path(folder, number, uuid.uuid4().hex)
    _write(table, path)
    lines_hash = hashlib.sha256()
    for line in lines:
        lines_hash.update(line)
        lines_hash.update(b"\n")
    sizes = np.fromiter((len(b) for b in lines), dtype=np.int64, count=len(lines))
    return Staged(number, n, sent, b"".join(digests), sizes, lines_hash.digest(), path.name)


def _write(table: pa.Table, path: Path) -> None:
    """Write atomically into the staging folder, never creating it: once the driver has removed it (the submit
    ended or failed), a task still running writes nothing."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(table, tmp, compression="lz4")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_staged(folder: str | Path, staged: Staged) -> pa.Table:
    """The staging file a run wrote (labels, position, custom_id, body, digest, input hash)."""
    return pq.read_table(staged.path(folder))
