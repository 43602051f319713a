"""The Job: one submit call, its shards (remote batches) and attempts, persisted in the job store.

Every method re-reads the manifest under the job's file lock, so two processes (or a notebook and a
terminal) can work on one job. The provider connection is opened per operation and closed after it.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
import pyarrow.compute as pc

from . import waiting
from .build import RequestSet
from .create import Ambiguous, create_checked
from .errors import (
    APIError,
    OrphanBatchError,
    TransportError,
)
from .harvest import harvest_shard
from .http import RetryPolicy
from .manifest import iter_shards, job_status, now, record_batch
from .merge import DEFAULT_PREFIX, HARVEST_SCHEMA, batch_pricer, combine, merge_into, to_frame
from .orphans import adopt_chosen, reconcile, verify_adopted
from .providers import Endpoint, Provider, provider_class
from .shard import shard_body
from .status import JobStatus
from .store import Store


class Job:
    """A submitted DataFrame: shards on a provider, and their results in the job store.

    Examples
    --------
    >>> job = df.batch.submit(prompt="q", model="claude-haiku-4-5", max_tokens=64,
    ...                       provider="local")  # doctest: +SKIP
    >>> job.wait(poll_interval=1).counts  # doctest: +SKIP
    {'processing': 0, 'succeeded': 2, 'errored': 0, 'canceled': 0, 'expired': 0}
    >>> df.batch.merge(job)  # doctest: +SKIP
    """

    def __init__(
        self,
        name: str,
        *,
        store: Store | None = None,
        endpoint: Endpoint | None = None,
        retry: RetryPolicy | None = None,
    ):
        self.store = store or Store()
        self._manifest = self.store.read_manifest(name)
        self._endpoint = endpoint
        self._retry = retry or RetryPolicy()
        self._api_key: str | None = None

    @classmethod
    def open(
        cls,
        name: str,
        *,
        store: str | Store | None = None,
        api_key: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> Job:
        """Re-attach to a job of the store by name (from any process); no network.

        The API key comes from ``api_key`` or the environment (it is never stored); the provider and
        base URL from the manifest.

        Examples
        --------
        >>> job = Job.open("reviews")  # doctest: +SKIP
        """
        job = cls(name, store=store if isinstance(store, Store) else Store(store), retry=retry)
        job._api_key = api_key
        return job

    def __repr__(self) -> str:
        status = self.status
        return (
            f"Job(name={self.name!r}, provider={self.provider_name!r}, model={self.model!r}, "
            f"state={status.state!r}, rows={status.n_rows})"
        )

    def _ipython_display_(self) -> None:
        """In Jupyter: the live widget (returns at once, updates itself); elsewhere: the status as text."""
        from .widget import display_job

        display_job(self)

    @property
    def name(self) -> str:
        """The job's name in the store."""
        return self._manifest["name"]

    @property
    def provider_name(self) -> str:
        """``"anthropic"`` or ``"local"``."""
        return self._manifest["provider"]

    @property
    def model(self) -> str:
        """The model the requests name."""
        return self._manifest["model"]

    @property
    def manifest(self) -> dict[str, Any]:
        """A copy of the last manifest read (plain JSON data; see :mod:`batchframe.manifest`).

        Examples
        --------
        >>> job.manifest["attempts"][0]["shards"][0]["batch_id"]  # doctest: +SKIP
        'msgbatch_01HkcTjaV5uDC8jWR4ZsDV8d'
        """
        return _copy(self._manifest)

    @property
    def status(self) -> JobStatus:
        """Last known status, from the manifest; no network. :meth:`refresh` asks the provider.

        Examples
        --------
        >>> job.status.counts  # doctest: +SKIP
        {'processing': 10, 'succeeded': 0, 'errored': 0, 'canceled': 0, 'expired': 0}
        """
        return job_status(self._manifest)

    # -- network steps --------------------------------------------------------------------------------
    @contextmanager
    def _session(self) -> Iterator[tuple[dict[str, Any], Provider]]:
        """Hold the job lock, re-read the manifest and open the provider for one operation."""
        with self.store.lock(self.name):
            self._manifest = self.store.read_manifest(self.name)
            with provider_class(self.provider_name)(self._resolve(), retry=self._retry) as provider:
                yield self._manifest, provider

    def _resolve(self) -> Endpoint:
        if self._endpoint is None:
            m = self._manifest
            options = {"data_dir": m["data_dir"]} if m.get("data_dir") else {}
            base_url = None if options else m["base_url"]
            self._endpoint = provider_class(m["provider"]).resolve(api_key=self._api_key, base_url=base_url, **options)
        return self._endpoint

    def _save(self) -> None:
        self._manifest["updated_at"] = now()
        self.store.write_manifest(self.name, self._manifest)

    def send_unsent(self, requests: RequestSet | None = None) -> JobStatus:
        """Send every shard that has no remote batch yet (``planned``, or ``failed`` = refused).

        Shards left ``creating`` by an interrupted process are first reconciled with the remote batches
        (adopted, or sent again if none was created; see :mod:`batchframe.orphans`).

        Examples
        --------
        >>> job.send_unsent().state  # doctest: +SKIP
        'in_progress'
        """
        with self._session() as (manifest, provider):
            reconcile(self.store, manifest, provider, self._save)
            for attempt, shard in iter_shards(manifest):
                if shard["state"] in ("planned", "failed"):
                    self._send_shard(provider, attempt, shard, requests if attempt == 1 else None)
        return self.status

    def _send_shard(self, provider: Provider, attempt: int, shard: dict, requests: RequestSet | None) -> None:
        lines = self._shard_lines(attempt, shard["index"], requests)
        shard.update(state="creating", intent_at=now(), error=None)
        self._save()  # persisted BEFORE the POST: a crash after it is detectable
        try:
            betas = (self._manifest.get("request") or {}).get("betas") or ()
            batch = create_checked(provider, self.store, shard, shard_body(lines), self._retry, betas=betas)
        except Ambiguous as exc:  # a batch may exist: stays "creating" for orphans.reconcile
            shard.update(error=_error_record(exc.error))
            self._save()
            raise exc.error from exc
        except APIError as exc:  # refused, and the batch list shows nothing was created
            shard.update(state="failed", error=_error_record(exc))
            self._save()
            raise
        except TransportError as exc:
            shard.update(state="creating" if exc.maybe_sent else "planned", error={"message": str(exc)})
            self._save()
            raise
        if batch is not None:
            record_batch(shard, batch)
        self._save()  # the batch id, right after the POST

    def _shard_lines(self, attempt: int, index: int, requests: RequestSet | None) -> list[bytes]:
        if requests is not None:  # still in memory from this submit: shards are consecutive runs of bodies
            shards = self._manifest["attempts"][0]["shards"]
            start = sum(s["n_requests"] for s in shards[:index])
            return requests.bodies[start : start + shards[index]["n_requests"]]
        table = self.store.read_table(self.store.requests_path(self.name, attempt), columns=["shard", "body"])
        table = table.filter(pc.equal(table.column("shard"), index))
        return table.column("body").to_pylist()

    def refresh(self) -> JobStatus:
        """Ask the provider about every running shard; download and persist the results of ended ones.

        Examples
        --------
        >>> job.refresh().state  # doctest: +SKIP
        'in_progress'
        """
        with self._session() as (manifest, provider):
            reconcile(self.store, manifest, provider, self._save)
            for attempt, shard in iter_shards(manifest):
                if shard["state"] == "submitted":
                    record_batch(shard, provider.retrieve(shard["batch_id"]))
                    self._save()
                if shard["state"] == "ended" and not (shard.get("adopted") or {"verified": True})["verified"]:
                    try:
                        verify_adopted(provider, self.store, manifest, attempt, shard)
                    finally:
                        self._save()
                if shard["state"] == "ended":
                    shard.update(harvest_shard(provider, self.store, manifest, attempt, shard))
                    self._save()
        return self.status

    def wait(self, poll_interval: float = 10.0, timeout: float | None = None) -> JobStatus:
        """Block until every shard has ended and its results are stored; show a progress bar.

        Ctrl-C stops waiting and says so; it does not cancel the remote batches. A poll that fails for
        a transient reason (network, 429, 529, 5xx, a cut download), after the HTTP layer's own retries,
        is tried again at the next interval, up to :data:`batchframe.waiting.POLL_FAILURES` times in a row.

        Parameters
        ----------
        poll_interval : float
            Seconds between refreshes.
        timeout : float, optional
            Raise :class:`batchframe.errors.JobTimeoutError` after this many seconds.

        Examples
        --------
        >>> job.wait(poll_interval=5, timeout=3600).state  # doctest: +SKIP
        'ended'
        """
        return waiting.wait(self, poll_interval=poll_interval, timeout=timeout)

    async def wait_async(self, poll_interval: float = 10.0, timeout: float | None = None) -> JobStatus:
        """Like :meth:`wait` without blocking the event loop (refreshes run in a worker thread).

        Examples
        --------
        >>> status = await job.wait_async(poll_interval=5)  # doctest: +SKIP
        """
        return await waiting.wait_async(self, poll_interval=poll_interval, timeout=timeout)

    def cancel(self) -> JobStatus:
        """Ask the provider to cancel every shard still running. Rows already done keep their results.

        A batch whose creation was interrupted is adopted first (see :mod:`batchframe.orphans`) and
        canceled too; if that needs the user's choice, the others are canceled, then it is asked.

        Examples
        --------
        >>> job.cancel().state  # doctest: +SKIP
        'canceling'
        """
        with self._session() as (manifest, provider):
            asked = _reconcile_or_error(self.store, manifest, provider, self._save)
            for _, shard in iter_shards(manifest):
                if shard["state"] == "submitted" and shard.get("processing_status") == "in_progress":
                    record_batch(shard, provider.cancel(shard["batch_id"]))
                    self._save()
        if asked is not None:
            raise asked
        return self.status

    def retry(
        self,
        error_types: Collection[str] | None = None,
        *,
        expired: bool = True,
        canceled: bool = True,
        missing: bool = True,
    ) -> int:
        """Resubmit, as a new attempt of this job, only the rows whose latest try failed; returns how many.

        A row is resubmitted when its latest attempt ended with it errored (with one of ``error_types``),
        expired, canceled, or without a result line. Rows still running or succeeded are never sent
        again, so retrying twice without new failures submits nothing. Merged results take each row's
        latest attempt (``attempt`` column). See :mod:`batchframe.retry`.

        Parameters
        ----------
        error_types : collection of str, optional
            Error types to resubmit; default every type but ``invalid_request_error`` (it would fail again).
        expired, canceled, missing : bool
            Whether to resubmit rows in those states.

        Examples
        --------
        >>> job.retry()  # doctest: +SKIP
        7
        >>> job.wait(); job.retry()  # doctest: +SKIP
        0
        """
        from .retry import retry_job

        return retry_job(self, error_types, expired=expired, canceled=canceled, missing=missing)

    def delete(self, *, local: bool = False) -> pd.DataFrame:
        """Delete the remote batches that have ended (results downloaded first); report the others and why.

        Parameters
        ----------
        local : bool
            Also remove the job's folder from the store, only if no remote batch is left.

        Returns
        -------
        DataFrame
            One row per shard: ``attempt``, ``shard``, ``batch_id``, ``deleted``, ``reason``;
            ``report.attrs["local_files_removed"]``.

        Examples
        --------
        >>> job.delete(local=True)  # doctest: +SKIP
        """
        from .lifecycle import delete_job

        return delete_job(self, local=local)

    def adopt(self, batch_id: str | None, *, attempt: int | None = None, shard: int | None = None) -> JobStatus:
        """Answer :class:`batchframe.errors.OrphanBatchError`: ``batch_id`` is the interrupted shard's batch,
        or None if none is (the shard is then sent again: it may be paid twice if that was wrong).

        Examples
        --------
        >>> job.adopt("msgbatch_013Zva2CMHLNnXjNJJKqJ2EF")  # doctest: +SKIP
        """
        with self._session() as (manifest, provider):
            adopt_chosen(self.store, manifest, provider, batch_id, attempt=attempt, shard=shard)
            self._save()
        return self.status

    # -- results ----------------------------------------------------------------------------------------
    def results(self, *, prefix: str = DEFAULT_PREFIX) -> pd.DataFrame:
        """The result columns, one row per source row, indexed like the submitted frame.

        Rows not harvested yet are ``pending``; rows never sent are ``skipped``.

        Examples
        --------
        >>> job.results()["llm_status"].value_counts()  # doctest: +SKIP
        """
        with self.store.lock(self.name):
            self._manifest = self.store.read_manifest(self.name)
            source = self.store.read_table(self.store.requests_path(self.name, 1), columns=["position", "shard"])
            tables = [
                self.store.read_table(self.store.job_dir(self.name) / s["results_file"], columns=HARVEST_SCHEMA.names)
                for _, s in iter_shards(self._manifest)
                if s["state"] == "harvested"
            ]
        skipped = source.column("shard").to_numpy() < 0
        index = source.to_pandas().index  # the index columns come back through the pandas metadata
        return to_frame(combine(len(skipped), skipped, tables, pricer=batch_pricer), index, prefix)

    def merge(self, df: pd.DataFrame, *, prefix: str = DEFAULT_PREFIX) -> pd.DataFrame:
        """``df`` with the result columns added (see :func:`batchframe.merge.merge_into`).

        Examples
        --------
        >>> job.merge(df, prefix="ai_").columns[-1]  # doctest: +SKIP
        'ai_tool_use'
        """
        return merge_into(df, self.results(prefix=prefix))

    def batch_ids(self) -> list[str]:
        """Remote batch ids of every shard that has one.

        Examples
        --------
        >>> job.batch_ids()  # doctest: +SKIP
        ['msgbatch_01HkcTjaV5uDC8jWR4ZsDV8d']
        """
        return [s["batch_id"] for _, s in iter_shards(self._manifest) if s.get("batch_id")]


def _error_record(exc: APIError) -> dict[str, Any]:
    return {"status": exc.status, "type": exc.error_type, "message": exc.message, "request_id": exc.request_id}


def _reconcile_or_error(store: Store, manifest: dict, provider: Provider, save: Any) -> OrphanBatchError | None:
    try:
        reconcile(store, manifest, provider, save)
    except OrphanBatchError as exc:
        return exc
    return None


def _copy(data: Any) -> Any:
    return copy.deepcopy(data)
