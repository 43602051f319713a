"""The job store: one folder per job under :func:`batchframe.config.store_root`.

::

    <root>/
      <job name>/
        manifest.json                 provider, base URL, model, fingerprint, attempts -> shards
        requests.parquet              attempt 1: index, position, custom_id, shard, where each row's line is
                                      in lines-<token>.bin (one row per row; Dask: a body column instead)
        lines-<token>.bin             attempt 1's request lines, in LZ4 frames (see jobs.bodies)
        requests-a<N>.parquet         attempt N > 1 (retries): position, custom_id, shard, body
        results/a<N>-s<MMMM>.parquet  one file per harvested shard, index preserved
        job.lock                      filelock held while a process changes the job

Every write goes to a temporary file in the same folder and is renamed over the target, so a crash
leaves either the old file or the new one, never half of one. The API key is never written.
"""

from __future__ import annotations

import json
import os
import re
import tempfile  # noqa: F401  (the doctests use it)
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import filelock
import pyarrow as pa
import pyarrow.parquet as pq

from batchframe.config import store_root
from batchframe.errors import InputError, JobError, JobNotFoundError
from batchframe.jobs.migrations import migrate
from batchframe.jobs.outcomes import requests_file, store_reader
from batchframe.results.export import atomic_write_bytes, write_table

MANIFEST = "manifest.json"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
#: An earlier revision of job ``<name>`` lives in ``<name>~r<N>``: ``~`` is never in a name a user gives.
REVISION_MARK = "~r"
_REVISION_RE = re.compile(r"^(?P<name>.+)~r(?P<n>[1-9][0-9]{0,5})$")
#: Seconds to wait for another process that holds a job's lock.
LOCK_TIMEOUT = 60.0


def validate_name(name: str) -> str:
    """A job name is a folder name: letters, digits, ``.``, ``_``, ``-``; no separators, no traversal.

    Examples
    --------
    >>> validate_name("reviews-2024")
    'reviews-2024'
    >>> validate_name("../etc")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    batchframe.errors.InputError: job name '../etc' is not allowed: ...
    >>> validate_name("reviews\\n")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    batchframe.errors.InputError: job name 'reviews\\n' is not allowed: ...
    """
    # fullmatch, not match: the pattern's "$" also matches before a trailing newline ("name\n").
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or ".." in name:
        raise InputError(
            f"job name {name!r} is not allowed: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (no spaces, newlines or other control characters)"
        )
    return name


class Store:
    """A job store folder.

    Examples
    --------
    >>> store = Store(tempfile.mkdtemp())
    >>> store.names()
    []
    """

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else store_root()

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def job_dir(self, name: str) -> Path:
        """The folder of job ``name`` (the name is validated first), or of one of its earlier revisions."""
        revision = _REVISION_RE.fullmatch(name) if isinstance(name, str) else None
        if revision is not None:
            validate_name(revision["name"])
            return self.root / name
        return self.root / validate_name(name)

    def exists(self, name: str) -> bool:
        """Whether job ``name`` has a manifest."""
        return (self.job_dir(name) / MANIFEST).is_file()

    def names(self, *, revisions: bool = False) -> list[str]:
        """Names of every job with a manifest, sorted; with ``revisions``, their earlier revisions' folders too.

        Examples
        --------
        >>> Store(tempfile.mkdtemp()).names()
        []
        """
        if not self.root.is_dir():
            return []
        found = (p.parent.name for p in self.root.glob(f"*/{MANIFEST}"))
        return sorted(n for n in found if revisions or REVISION_MARK not in n)

    def revise(self, name: str) -> str:
        """Move job ``name`` aside as its latest earlier revision, ``<name>~r<N>``, freeing the name for the
        job's next revision; returns the folder it moved to. Call it holding the store's lock.

        Nothing in the folder refers to its own path, and links from other jobs name it by its uid
        (:func:`batchframe.jobs.ledger.job_uid`), so the move breaks nothing.

        Examples
        --------
        >>> store = Store(tempfile.mkdtemp())
        >>> store.write_manifest("j", {"name": "j", "attempts": []})
        >>> store.revise("j"), store.names(), store.names(revisions=True)
        ('j~r1', [], ['j~r1'])
        """
        with self.lock(name):
            manifest = json.loads((self.job_dir(name) / MANIFEST).read_bytes())
            n = int(manifest.get("revision") or 1)
            while (self.root / f"{name}{REVISION_MARK}{n}").exists():
                n += 1
            moved = f"{name}{REVISION_MARK}{n}"
            os.rename(self.job_dir(name), self.root / moved)
            # Written after the move: a crash in between leaves a folder whose manifest names the old place,
            # which read_manifest corrects (the folder is the truth).
            manifest.update(name=moved, revision=n, revised_as=name)
            self.write_manifest(moved, manifest)
        return moved

    # -- locks ---------------------------------------------------------------------------------------
    @contextmanager
    def lock(self, name: str | None = None) -> Iterator[None]:
        """Hold the lock of one job, or of the whole store (name None) while choosing a new job's name.

        Examples
        --------
        >>> with Store(tempfile.mkdtemp()).lock("j1"):
        ...     pass
        """
        folder = self.job_dir(name) if name else self.root
        folder.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(str(folder / ("job.lock" if name else "store.lock")), timeout=LOCK_TIMEOUT)
        try:
            with lock:
                yield
        except filelock.Timeout as exc:
            what = f"job {name!r}" if name else f"store {str(self.root)!r}"
            raise JobError(f"{what} is locked by another process (waited {LOCK_TIMEOUT:.0f} s)") from exc

    # -- manifest ------------------------------------------------------------------------------------
    def read_manifest(self, name: str) -> dict[str, Any]:
        """The manifest of job ``name``; JobNotFoundError names the known jobs."""
        path = self.job_dir(name) / MANIFEST
        try:
            manifest = json.loads(path.read_bytes())
        except FileNotFoundError:
            known = ", ".join(self.names()[:10]) or "none"
            raise JobNotFoundError(f"no job named {name!r} in {str(self.root)!r} (jobs: {known})") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise JobError(f"manifest of job {name!r} is corrupt: {exc}") from exc
        except OSError as exc:
            raise JobError(f"manifest of job {name!r} cannot be read: {exc}") from exc
        manifest["name"] = name  # the folder names the job, whatever an interrupted move left in the file
        return migrate(manifest, store_reader(self, name))

    def write_manifest(self, name: str, manifest: dict[str, Any]) -> None:
        """Replace the manifest of job ``name`` atomically."""
        data = json.dumps(manifest, indent=1, sort_keys=False, default=str).encode()
        atomic_write_bytes(self.job_dir(name) / MANIFEST, data)

    def manifests(self, *, revisions: bool = False) -> Iterator[tuple[str, dict[str, Any] | JobError]]:
        """``(name, manifest)`` of every job, in name order; an unreadable one comes as its :class:`JobError`
        (one corrupt job must not hide the others). The one scan of the whole store.

        Examples
        --------
        >>> list(Store(tempfile.mkdtemp()).manifests())
        []
        """
        for name in self.names(revisions=revisions):
            try:
                yield name, self.read_manifest(name)
            except JobError as exc:
                yield name, exc

    def find_fingerprint(self, fingerprint: str) -> str | None:
        """Name of the newest job whose request fingerprint is ``fingerprint``, if any.

        Examples
        --------
        >>> Store(tempfile.mkdtemp()).find_fingerprint("0" * 64) is None
        True
        """
        found = [
            (manifest.get("created_at", ""), name)
            for name, manifest in self.manifests()
            if not isinstance(manifest, JobError) and manifest.get("fingerprint") == fingerprint
        ]
        return max(found)[1] if found else None

    # -- parquet -------------------------------------------------------------------------------------
    def requests_path(self, name: str, attempt: int = 1) -> Path:
        """``requests.parquet`` (attempt 1) or ``requests-a<N>.parquet`` of a job."""
        return self.job_dir(name) / requests_file(attempt)

    def results_path(self, name: str, attempt: int, shard: int) -> Path:
        """The results file of one shard of one attempt."""
        return self.job_dir(name) / "results" / f"a{attempt}-s{shard:04d}.parquet"

    def write_table(self, path: Path, table: pa.Table, metadata: dict[str, Any] | None = None) -> None:
        """Write a Parquet file atomically, adding ``metadata`` under the ``batchframe`` key.

        Examples
        --------
        >>> folder = Path(tempfile.mkdtemp())
        >>> Store(folder).write_table(folder / "t.parquet", pa.table({"x": [1]}), metadata={"job": "j"})
        >>> pq.read_table(folder / "t.parquet").column("x").to_pylist()
        [1]
        """
        write_table(path, table, metadata)

    def read_table(self, path: Path, columns: list[str] | None = None) -> pa.Table:
        """A Parquet file of the store, with the index columns its pandas metadata names."""
        try:
            return pq.read_table(path, columns=columns, use_pandas_metadata=True)
        except FileNotFoundError as exc:
            raise JobError(f"missing file {str(path)!r} in the job store") from exc


def check_index_storable(index: Any) -> None:
    """Refuse an index Parquet cannot hold (mixed object types), with what to do instead.

    Examples
    --------
    >>> import pandas as pd
    >>> check_index_storable(pd.Index(["a", "b"]))
    """
    import pandas as pd

    try:
        pa.Table.from_pandas(pd.DataFrame(index=index[:1000]), preserve_index=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise InputError(
            f"the frame's index cannot be stored in Parquet ({exc}); convert it, e.g. "
            "df.index = df.index.astype(str), or df.reset_index()"
        ) from exc
