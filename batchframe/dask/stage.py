"""Each partition's request lines written where the driver reads them: the staging files of a Dask submit.

**A worker writes only its own partition's staging file, and hands back only fixed-size pieces.** It builds
the partition's requests (:func:`batchframe.requests.build.build_requests`), numbers them from the
partition's offset in the frame (custom_ids ``r<position>`` are global), encodes their lines with the
provider's codec and writes them, with the row labels, request digests and input hashes, to one Parquet file
in a staging folder the driver made in the job store. It returns a :class:`Staged`: which rows send a
request, each request's 16-byte digest, line length, parameters' length and ``max_tokens`` (what an estimate
prices: :func:`.submit.price_staged`), and a hash of the partition's lines in order. It never reads the ledger, writes a
job's files or creates a batch: the driver decides (:mod:`.submit`).

The staging folder must be one every worker sees (the store on a local disk with a ``LocalCluster``, or a
shared filesystem); a worker that does not see it fails with a message saying so. Each run of a partition's
task writes a file of its own (its name carries a fresh run id, handed back in :class:`Staged`), atomically:
the driver reads exactly the file of the run whose digests and sizes it planned from, even when a worker
thought lost finishes an earlier run of the same partition later.

The driver makes the folder and removes it when the submit (or estimate) ends (:func:`staging`), and reads
the files back either a slice at a time (the job's requests file) or, to price a job, only the rows whose
tokens it counts (:func:`fetch_params`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from batchframe.errors import InputError
from batchframe.jobs.labels import labels_table
from batchframe.jobs.ledger import DIGEST
from batchframe.jobs.store import Store, check_index_storable
from batchframe.providers import provider_class
from batchframe.providers.base import Codec
from batchframe.requests.build import RequestSet, build_requests
from batchframe.requests.fingerprint import request_digests
from batchframe.requests.keys import custom_ids
from batchframe.results.merge import input_hashes
from batchframe.results.schema import INPUT_HASH

#: Rows of a staging file read at a time while fetching the sampled requests.
FETCH_ROWS = 65_536
#: The staging files' column of each request's parameters, where its line does not carry them verbatim.
PARAMS = "params"

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
    16-byte digest (concatenated), line length, the length of its serialized parameters (``params_sizes``,
    what the token count's sample is stratified by) and its ``max_tokens``; the sha256 of its lines in order;
    ``file``, the name of the staging file this run wrote (in the stage's folder)."""

    number: int
    n_rows: int
    sent: np.ndarray
    digests: bytes
    sizes: np.ndarray
    lines_hash: bytes
    params_sizes: np.ndarray
    max_tokens: np.ndarray
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
        none = np.zeros(0, np.int64)
        return Staged(number, 0, np.zeros(0, bool), b"", np.zeros(0, np.int64), hashlib.sha256().digest(), none, none)
    check_index_storable(part.index)
    requests = build(part, stage.spec, stage.post)
    ids = custom_ids(requests.positions + offset)
    codec = provider_class(stage.provider).codec
    lines = codec.encode_lines(ids, requests.params)
    digests = request_digests(stage.answerer, requests.params)
    sent = ~np.asarray(requests.skipped, bool)
    at = pa.array(np.cumsum(sent) - 1, pa.int64(), mask=~sent)  # each row's request, null where skipped
    table, _ = labels_table(part.index, {"position": np.arange(offset, offset + n, dtype=np.int64)})
    table = (table.append_column("custom_id", pa.array(ids, pa.string()).take(at))
             .append_column("body", pa.array(lines, pa.binary()).take(at))
             .append_column(DIGEST, pa.array(digests, pa.binary(16)).take(at))
             .append_column(INPUT_HASH, pa.array(input_hashes(part, requests.columns), pa.uint64()))
             .append_column(PARAMS, _params_column(codec, lines, requests.params, at, n)))
    path = part_path(folder, number, uuid.uuid4().hex)
    _write(table, path)
    lines_hash = hashlib.sha256()
    for line in lines:
        lines_hash.update(line)
        lines_hash.update(b"\n")
    sizes = np.fromiter((len(b) for b in lines), dtype=np.int64, count=len(lines))
    # int32: a request is smaller than a batch (256 MB); max_tokens int64: the API sets it no upper bound.
    params_sizes = np.fromiter((len(p) for p in requests.params), dtype=np.int32, count=len(lines))
    return Staged(number, n, sent, b"".join(digests), sizes, lines_hash.digest(), params_sizes,
                  max_tokens_of(requests.params), path.name)


def _params_column(codec: Codec, lines: list[bytes], params: list[bytes], at: pa.Array, n: int) -> pa.Array:
    """Each row's serialized parameters, kept only where its line does not carry them verbatim (an OpenAI
    line carries the chat-completions body lowered from them): what token counting reads, as for pandas."""
    if not params or codec.params_of(lines[0]) == params[0]:
        return pa.nulls(n, pa.binary())
    return pa.array(params, pa.binary()).take(at)


def max_tokens_of(params: list[bytes]) -> np.ndarray:
    """Each request's ``max_tokens`` (0 where it has none: an embeddings request).

    Examples
    --------
    >>> max_tokens_of([b'{"model":"m","max_tokens":64}', b'{"input":"x"}']).tolist()
    [64, 0]
    """
    return np.fromiter((orjson.loads(p).get("max_tokens", 0) for p in params), dtype=np.int64, count=len(params))


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


def fetch_params(folder: str | Path, staged: list[Staged], at: np.ndarray, codec: Codec) -> list[bytes]:
    """The parameters of the requests on the frame's rows ``at`` (in that order), read from the staging files
    in one pass: partition by partition, only the ``body`` column, only these rows kept.

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> from batchframe.providers.anthropic import codec
    >>> stage = Stage(tempfile.mkdtemp(), "local:x", "anthropic", {"prompt": "q", "model": "m", "max_tokens": 8})
    >>> parts = [stage_partition(pd.DataFrame({"q": q}), stage, k, 2 * k)
    ...          for k, q in enumerate([["a", "b"], ["c", "d"]])]
    >>> [b[-8:] for b in fetch_params(stage.folder, parts, np.array([3, 0]), codec)]
    [b'":"d"}]}', b'":"a"}]}']
    """
    order = np.argsort(at, kind="stable")
    wanted = at[order]
    out: list[bytes] = [b""] * len(at)
    start = 0
    for s in staged:
        lo, hi = np.searchsorted(wanted, [start, start + s.n_rows])
        if hi > lo:
            with pq.ParquetFile(s.path(folder)) as source:
                offset = start
                for batch in source.iter_batches(batch_size=FETCH_ROWS, columns=["body", PARAMS]):
                    a, b = np.searchsorted(wanted, [offset, offset + batch.num_rows])
                    rows = pa.array(wanted[a:b] - offset)
                    lines = batch.column(0).take(rows).to_pylist() if b > a else []
                    params = batch.column(1).take(rows).to_pylist() if b > a else []
                    for k, line, kept in zip(order[a:b].tolist(), lines, params, strict=True):
                        out[k] = kept if kept is not None else codec.params_of(line)
                    offset += batch.num_rows
        start += s.n_rows
    return out


@contextlib.contextmanager
def staging(store: Store) -> Iterator[Path]:
    """A fresh staging folder in ``store`` (those a killed submit left are swept first), removed on exit."""
    sweep_staging(store.root / STAGING)
    folder = store.root / STAGING / uuid.uuid4().hex
    folder.mkdir(parents=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


#: A staging folder older than this was left by a submit that was killed (a live one ends within it).
STALE_STAGING_S = 24 * 3600


def sweep_staging(root: Path, *, older_than_s: float = STALE_STAGING_S) -> list[Path]:
    """Remove the staging folders a killed submit left behind (their request bodies), untouched for
    ``older_than_s`` seconds; return them.

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "left").mkdir()
    >>> [p.name for p in sweep_staging(root, older_than_s=0)], [p.name for p in sweep_staging(root)]
    (['left'], [])
    """
    if not root.is_dir():
        return []
    cutoff = time.time() - older_than_s
    stale = [p for p in root.iterdir() if p.is_dir() and p.stat().st_mtime <= cutoff]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale
