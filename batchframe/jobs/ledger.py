"""The store's ledger: every request ever paid for, by its digest, whatever job, frame or revision carried it.

A request's digest (:func:`batchframe.requests.fingerprint.request_digests`) covers who answers it and every
parameter it sends, never a row label or position. Each job keeps the digest of each of its rows in its
requests file (column :data:`DIGEST`), so the ledger is those columns read across the store: there is no
second copy to keep in step, and a job removed from the store leaves the ledger with it.

Before a submit sends anything it asks :func:`lookup` which of its requests the store already carries:

* **answered**: the request's latest attempt succeeded and its result is stored;
* **in flight**: it is planned, being created, running or ended and not yet downloaded.

Those rows are not sent again: the new job *links* them to the row that carries them (see
:mod:`batchframe.jobs.links`). A request whose latest try failed (errored, expired, canceled, refused) is
not a source; it is sent again. Rows that are themselves answered through a link count only once their
answer is stored, so a link never points at another link still waiting.
"""

from __future__ import annotations

import tempfile  # noqa: F401  (the doctests use it)
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from batchframe.errors import JobError
from batchframe.jobs.manifest import iter_shards
from batchframe.jobs.outcomes import latest_results, shard_key, store_reader
from batchframe.jobs.states import ShardState, state_of
from batchframe.jobs.store import Store

#: The requests file's column holding each row's request digest (16 bytes; null for a skipped row).
DIGEST = "request_digest"
#: A source's rank: an answer in hand beats one still in flight.
_ANSWERED, _IN_FLIGHT = 0, 1


@dataclass(frozen=True)
class Matches:
    """Where the store already carries each looked-up request.

    ``found[i]`` says whether request ``i`` is carried; then ``job[i]`` (the job folder), ``uid[i]`` (that
    job's :func:`job_uid`, which survives a rename) and ``position[i]`` (its row there) say where, and
    ``answered[i]`` whether its result is stored.
    """

    found: np.ndarray
    job: np.ndarray
    uid: np.ndarray
    position: np.ndarray
    answered: np.ndarray


def job_uid(manifest: dict[str, Any]) -> str:
    """A job's identity that a rename (a revision) does not change.

    Examples
    --------
    >>> job_uid({"uid": "u1", "fingerprint": "f", "created_at": "t"})
    'u1'
    >>> job_uid({"fingerprint": "f", "created_at": "t"})
    'f@t'
    """
    return manifest.get("uid") or f"{manifest.get('fingerprint')}@{manifest.get('created_at')}"


def as_keys(digests: pa.Array | pa.ChunkedArray | list[bytes | None]) -> np.ndarray:
    """Digests as an ``(n, 2)`` uint64 array (zeros where null), for vectorised matching.

    Examples
    --------
    >>> as_keys([b"\\x01" + b"\\x00" * 15, None]).tolist()
    [[1, 0], [0, 0]]
    """
    if isinstance(digests, list) and None not in digests:  # the common case, without a detour through Arrow
        return np.frombuffer(b"".join(d for d in digests if d is not None), dtype="<u8").reshape(-1, 2).copy()
    if isinstance(digests, pa.ChunkedArray):
        digests = digests.combine_chunks()
    array = digests if isinstance(digests, pa.Array) else pa.array(digests, pa.binary(16))
    n = len(array)
    data = array.buffers()[1]
    if data is None or n == 0:
        return np.zeros((n, 2), np.uint64)
    words = np.frombuffer(data, dtype="<u8", count=(array.offset + n) * 2).reshape(-1, 2)[array.offset :]
    keys = words.astype(np.uint64, copy=True)
    if array.null_count:
        keys[array.is_null().to_numpy(zero_copy_only=False)] = 0
    return keys


def lookup(store: Store, identity: str, digests: list[bytes], *, exclude: str | None = None) -> Matches:
    """Which of ``digests`` (requests to the endpoint ``identity``) the store already carries, and where.

    ``exclude`` names a job folder to leave out (the one being replaced by this submit).

    Examples
    --------
    >>> lookup(Store(tempfile.mkdtemp()), "local:x", [b"\\x00" * 16]).found.tolist()
    [False]
    """
    n = len(digests)
    known = _sources(store, identity, exclude)
    found = np.zeros(n, bool)
    job = np.full(n, None, object)
    uid = np.full(n, None, object)
    position = np.full(n, -1, np.int64)
    answered = np.zeros(n, bool)
    known = [k for k in known if len(k[0])]
    if not known or n == 0:
        return Matches(found, job, uid, position, answered)
    keys = np.concatenate([k[0] for k in known])
    rank = np.concatenate([k[1] for k in known])
    source = np.concatenate([np.full(len(k[0]), i, np.int64) for i, k in enumerate(known)])
    pos = np.concatenate([k[2] for k in known])
    # One source per digest, the best ranked; sorted by the digest's first word for a binary search. Two
    # digests sharing a first word but not the second are (at 2**-64) never matched: sent again, never wrong.
    order = np.lexsort((rank, keys[:, 1], keys[:, 0]))
    keys, rank, source, pos = keys[order], rank[order], source[order], pos[order]
    first = np.r_[True, (keys[1:] != keys[:-1]).any(axis=1)]
    keys, rank, source, pos = keys[first], rank[first], source[first], pos[first]
    wanted = as_keys(digests)
    at = np.searchsorted(keys[:, 0], wanted[:, 0])
    at_ok = np.minimum(at, len(keys) - 1)
    hit = (at < len(keys)) & (keys[at_ok, 0] == wanted[:, 0]) & (keys[at_ok, 1] == wanted[:, 1])
    folders = np.array([k[3] for k in known], object)
    uids = np.array([k[4] for k in known], object)
    found[:] = hit
    job[hit] = folders[source[at_ok[hit]]]
    uid[hit] = uids[source[at_ok[hit]]]
    position[hit] = pos[at_ok[hit]]
    answered[hit] = rank[at_ok[hit]] == _ANSWERED
    return Matches(found, job, uid, position, answered)


_Source = tuple[np.ndarray, np.ndarray, np.ndarray, str, str]


def _sources(store: Store, identity: str, exclude: str | None) -> list[_Source]:
    """Per job of the store speaking to ``identity``: keys, rank and position of its usable rows."""
    out = []
    for name, manifest in store.manifests(revisions=True):
        if isinstance(manifest, JobError) or name == exclude or manifest.get("identity") != identity:
            continue
        try:
            found = _usable_rows(store, name, manifest)
        except (JobError, OSError, pa.ArrowException):
            continue  # a damaged job is no source: its requests are sent again rather than trusted
        if found is not None:
            out.append((*found, name, job_uid(manifest)))
    return out


def _usable_rows(store: Store, name: str, manifest: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    path = store.requests_path(name, 1)
    if DIGEST not in pq.read_schema(path).names:
        return None  # stored before request digests: the job still finds itself by its fingerprint
    table = store.read_table(path, columns=["position", DIGEST])
    outcome = latest_results(manifest, store_reader(store, name))
    # Whether each row's latest shard still waits for its answer (a link waiting on another job does not
    # count: links never chain), looked up by (attempt, shard) for all rows at once.
    waiting = {ShardState.PLANNED, ShardState.CREATING, ShardState.SUBMITTED, ShardState.ENDED}
    records = list(iter_shards(manifest))
    shard_keys = np.array([shard_key(a, s["index"]) for a, s in records] + [-1], np.int64)
    shard_waits = np.array([state_of(s) in waiting and "linked" not in s for _, s in records] + [False], bool)
    order = np.argsort(shard_keys)
    row_keys = shard_key(outcome["attempt"].astype(np.int64), outcome["shard"].astype(np.int64))
    at = order[np.minimum(np.searchsorted(shard_keys[order], row_keys), len(order) - 1)]
    waits = (shard_keys[at] == row_keys) & shard_waits[at] & (outcome["attempt"] > 0)
    answered = outcome["harvested"] & (outcome["status"] == "succeeded")
    usable = answered | (waits & ~outcome["harvested"])
    # A retry that changed the request (another max_tokens) answered another request than the digest says.
    changed = [r["attempt"] for r in manifest["attempts"] if r.get("max_tokens") is not None]
    if changed:
        usable &= ~np.isin(outcome["attempt"], changed)
    positions = table.column("position").to_numpy()
    keep = usable[positions] & table.column(DIGEST).is_valid().to_numpy()
    rank = np.where(answered[positions[keep]], _ANSWERED, _IN_FLIGHT)
    return as_keys(table.column(DIGEST))[keep], rank, positions[keep]

