"""The Job: one submit call, its shards (remote batches) and attempts, persisted in the job store.

Every method re-reads the manifest under the job's file lock, so two processes (or a notebook and a
terminal) can work on one job. A Job keeps one HTTP connection (one ``httpx.Client``, injected into its
provider) for its lifetime, not one per poll; it is closed by :meth:`Job.close` or when the Job is collected.
"""

from __future__ import annotations

import copy
import logging
import threading
import weakref
from collections.abc import Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import pandas as pd

from batchframe.errors import (
    APIError,
    BudgetError,
    InputError,
    JobError,
    JobNotFoundError,
    OrphanBatchError,
    TransportError,
)
from batchframe.jobs import delete, links, polling, resubmit, structured, waves
from batchframe.jobs.harvest import harvest_shard, stored_results, submitted_hashes
from batchframe.jobs.labels import name_from_json
from batchframe.jobs.ledger import job_uid
from batchframe.jobs.manifest import iter_shards, job_status, now
from batchframe.jobs.orphans import adopt_chosen, reconcile, verify_adopted
from batchframe.jobs.send import send_shard, shard_lines
from batchframe.jobs.states import ShardState, move, record_batch, state_of
from batchframe.jobs.store import Store
from batchframe.jobs.views import VIEWS
from batchframe.providers import Endpoint, Provider, provider_class
from batchframe.providers.http import RetryPolicy
from batchframe.results.merge import input_hashes, merge_into
from batchframe.results.schema import DEFAULT_PREFIX, check_prefix
from batchframe.types import JobStatus

log = logging.getLogger("batchframe")


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
        api_key: str | None = None,
    ):
        self.store = store or Store()
        self._manifest = self.store.read_manifest(name)
        # The job this handle is on: a later revision under the same name moves it to <name>~r<N>, and the
        # handle follows it there (see _locked) rather than act on another frame's rows.
        self._uid = job_uid(self._manifest)
        self._endpoint = endpoint
        self._http_policy = retry or RetryPolicy()
        self._api_key = api_key
        self._base_url: str | None = None  # a host chosen when re-opening (Job.open(base_url=...))
        # One connection for the job's lifetime, made at the first network step; the widget's monitor thread
        # and the notebook's thread share it, so it is made and dropped under a lock.
        self._provider: Provider | None = None
        self._finalizer: weakref.finalize | None = None
        self._connection_lock = threading.Lock()

    @classmethod
    def open(
        cls,
        name: str,
        *,
        store: str | Store | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> Job:
        """Re-attach to a job of the store by name (from any process); no network.

        The API key comes from ``api_key`` or the environment (it is never stored) and goes only to a host
        you chose: the job's stored host must be your environment's (``ANTHROPIC_BASE_URL`` or the default)
        or a ``base_url`` passed in this process, else this raises :class:`batchframe.errors.ConfigError` and
        nothing is sent. ``base_url`` given here is your choice for this job.

        Examples
        --------
        >>> job = Job.open("reviews")  # doctest: +SKIP
        >>> job = Job.open("reviews", base_url="https://gateway.example.com")  # doctest: +SKIP
        """
        job = cls(name, store=store if isinstance(store, Store) else Store(store), retry=retry, api_key=api_key)
        job._base_url = base_url
        provider_class(job.provider_name).check_reopen(job._manifest, base_url=base_url)
        return job

    def __repr__(self) -> str:
        status = self.status
        return (
            f"Job(name={self.name!r}, provider={self.provider_name!r}, model={self.model!r}, "
            f"state={status.state!r}, rows={status.n_rows})"
        )

    def _ipython_display_(self) -> None:
        """In Jupyter: the live widget (returns at once, updates itself); elsewhere: the status as text.

        The view is registered by :mod:`batchframe.progress` (see :mod:`batchframe.jobs.views`).
        """
        if VIEWS.display is None:
            print(repr(self))
        else:
            VIEWS.display(self)

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
        """A copy of the last manifest read (plain JSON data; see :mod:`batchframe.jobs.manifest`).

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

    def close(self) -> None:
        """Close the job's HTTP connection (a later network step opens a new one).

        Examples
        --------
        >>> with batchframe.open_job("reviews") as job:  # doctest: +SKIP
        ...     job.refresh()
        """
        with self._connection_lock:
            self._provider = None
            if self._finalizer is not None:
                self._finalizer()
            self._finalizer = None

    def __enter__(self) -> Job:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- network steps --------------------------------------------------------------------------------
    @contextmanager
    def session(self) -> Iterator[tuple[dict[str, Any], Provider]]:
        """Hold the job lock and re-read the manifest for one operation; yields it with the job's provider.

        Changes to the manifest are persisted by :meth:`save` (call it before and after every network step).

        Examples
        --------
        >>> with job.session() as (manifest, provider):  # doctest: +SKIP
        ...     provider.retrieve(manifest["attempts"][0]["shards"][0]["batch_id"]).state
        'ended'
        """
        with self._locked() as manifest:
            yield manifest, self._connected()

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """Hold the job lock and re-read the manifest, staying on the job this handle was opened on: if a
        revision of its name moved it to ``<name>~r<N>``, the handle follows it there (checked under the lock,
        so a move cannot slip in between)."""
        for _ in range(2):
            with self.store.lock(self.name):
                try:
                    manifest = self.store.read_manifest(self.name)
                except JobNotFoundError as exc:
                    manifest, missing = None, exc
                moved = None if manifest is not None and job_uid(manifest) == self._uid else (
                    links.find_job(self.store, self._uid, self.name))
                if moved is None or moved == self.name:
                    if manifest is None:
                        raise missing
                    self._manifest = manifest
                    yield manifest
                    return
            self._manifest = self.store.read_manifest(moved)  # then locked and re-read at its new place
        raise JobError(f"job {self.name!r} keeps moving: another process is revising it; try again")

    def _connected(self) -> Provider:
        with self._connection_lock:
            if self._provider is None:
                endpoint = self._endpoint_for_job()
                client = httpx.Client(timeout=httpx.Timeout(60.0, connect=5.0))
                # Closed when the Job is collected too: a notebook rarely closes what it opened.
                self._finalizer = weakref.finalize(self, client.close)
                cls = provider_class(self.provider_name)
                self._provider = cls(endpoint, client=client, retry=self._http_policy)
            return self._provider

    def _endpoint_for_job(self) -> Endpoint:
        if self._endpoint is None:
            cls = provider_class(self.provider_name)
            self._endpoint = cls.reopen_endpoint(self._manifest, api_key=self._api_key, base_url=self._base_url)
        return self._endpoint

    def save(self) -> None:
        """Persist the manifest read by the current :meth:`session` (atomically, stamped ``updated_at``)."""
        self._manifest["updated_at"] = now()
        self.store.write_manifest(self.name, self._manifest)

    def send_unsent(self, lines: Sequence[bytes] | None = None, *, fingerprint: str | None = None) -> JobStatus:
        """Send every shard that has no remote batch yet (``planned``, or ``failed`` = refused).

        Shards left ``creating`` by an interrupted process are first reconciled with the remote batches
        (adopted, or sent again if none was created; see :mod:`batchframe.jobs.orphans`). ``lines`` (attempt
        1's, still in memory from a submit) are used only while the stored job is still the one they were
        planned for (its ``fingerprint``); otherwise each shard's lines are read from the store.

        Examples
        --------
        >>> job.send_unsent().state  # doctest: +SKIP
        'in_progress'
        """
        with self.session() as (manifest, provider):
            if lines is not None and manifest.get("fingerprint") != fingerprint:
                lines = None  # another submit replanned this job meanwhile: its lines are in the store
            reconcile(self.store, manifest, provider, self.save)
            self._send_wave(manifest, provider, lines)
            if waves.stalled(manifest):
                money = waves.spend(manifest)
                raise BudgetError(
                    f"job {self.name!r}: its next shard would take the worst case over budget_usd="
                    f"${money.cap:,.4f} (spent ${money.spent:,.4f}); its unsent shards wait. Raise the cap with "
                    f"job.set_budget(...), or use the results so far", worst_case_usd=money.spent,
                    cap_usd=money.cap or 0.0, job=self.name)
        return self.status

    def _send_wave(self, manifest: dict[str, Any], provider: Provider, lines: Sequence[bytes] | None = None) -> None:
        """Send the shards the wave scheduler lets go now (every unsent one for a job without waves).

        A shard's batch id is saved with the next shard's intent (one write and fsync, not two), or when the
        wave ends, however it ends; a process killed in between leaves that shard ``creating``, whose batch
        :func:`~batchframe.jobs.orphans.reconcile` then adopts, as after any create it did not record."""
        unsaved = False

        def record() -> None:
            nonlocal unsaved
            unsaved = True

        def save() -> None:
            nonlocal unsaved
            self.save()
            unsaved = False

        def body(attempt: int, shard: dict[str, Any]) -> bytes:
            return provider.codec.frame_shard(self._lines_of(attempt, shard["index"], lines if attempt == 1 else None))

        wave = waves.next_wave(manifest)
        # The next shard's body is framed (tens of MB joined, or read back from the store) on a thread while
        # this one's create call waits for the provider; on an error it is not waited for.
        pool = ThreadPoolExecutor(1, thread_name_prefix="batchframe-frame")
        ahead = pool.submit(body, *wave[0]) if wave else None
        try:
            for k, (_, shard) in enumerate(wave):
                assert ahead is not None
                framed = ahead.result()
                ahead = pool.submit(body, *wave[k + 1]) if k + 1 < len(wave) else None
                send_shard(self.store, manifest, shard, framed, provider, self._http_policy, save, record=record)
                del framed
        finally:
            pool.shutdown(wait=False, cancel_futures=True)  # after an error, the prefetch is not waited for
            if unsaved:
                self.save()

    def set_budget(self, budget_usd: float | None = None, *, max_in_flight: int | None = None) -> JobStatus:
        """Change the job's cap or its queue limit (None lifts it); shards held back may then go.

        Examples
        --------
        >>> job.set_budget(5.0).state  # doctest: +SKIP
        'in_progress'
        """
        self._set_waves(budget_usd, max_in_flight)
        return self.send_unsent()

    def _set_waves(self, budget_usd: float | None, max_in_flight: int | None) -> None:
        with self.store.lock(self.name):
            manifest = self.store.read_manifest(self.name)
            manifest["waves"] = {**(manifest.get("waves") or {}), "budget_usd": budget_usd,
                                 "max_in_flight": max_in_flight}
            manifest["updated_at"] = now()
            self.store.write_manifest(self.name, manifest)
            self._manifest = manifest

    def _lines_of(self, attempt: int, index: int, lines: Sequence[bytes] | None) -> Sequence[bytes]:
        if lines is None:
            return shard_lines(self.store, self.name, attempt, index)
        # still in memory from this submit: attempt 1's shards are consecutive runs of its lines
        shards = self._manifest["attempts"][0]["shards"]
        start = sum(s["n_requests"] for s in shards[:index])
        return lines[start : start + shards[index]["n_requests"]]

    def refresh(self) -> JobStatus:
        """Ask the provider about every running shard; download and persist the results of ended ones.

        Rows linked to requests another job of the store carries (see :mod:`batchframe.jobs.links`) get
        their answers once that job has them; it is refreshed on the way.

        Examples
        --------
        >>> job.refresh().state  # doctest: +SKIP
        'in_progress'
        """
        if links.waiting(self._manifest):
            links.prepare_sources(self.store, self._manifest, self._open_source)
        with self.session() as (manifest, provider):
            reconcile(self.store, manifest, provider, self.save)
            links.settle(self.store, manifest, self.save)
            if structured.count_linked(self.store, manifest):
                self.save()
            for attempt, shard in iter_shards(manifest):
                if state_of(shard) is ShardState.PLANNED and "linked_from" in shard:  # a link given up
                    lines = shard_lines(self.store, self.name, attempt, shard["index"])
                    send_shard(self.store, manifest, shard, provider.codec.frame_shard(lines), provider,
                               self._http_policy, self.save)
                if state_of(shard) is ShardState.SUBMITTED:
                    record_batch(shard, provider.retrieve(shard["batch_id"]))
                    self.save()
                if state_of(shard) is ShardState.ENDED and not (shard.get("adopted") or {"verified": True})["verified"]:
                    try:
                        verify_adopted(provider, self.store, manifest, attempt, shard)
                    finally:
                        self.save()
                if state_of(shard) is ShardState.ENDED:
                    fields = harvest_shard(provider, self.store, manifest, attempt, shard)
                    fields.update(structured.shard_parse_counts(self.store, manifest, fields["results_file"]))
                    move(shard, ShardState.HARVESTED, **fields)
                    self.save()
                if state_of(shard) is ShardState.HARVESTED and shard.get("staged"):
                    _unstage(provider, shard, self.save)  # an uploaded input file is not needed once it ended
        return self.status

    def _open_source(self, name: str) -> Job:
        """Another job of the store that carries some of this job's requests (same endpoint, by the ledger)."""
        return Job(name, store=self.store, endpoint=self._endpoint_for_job(), retry=self._http_policy)

    def wait(self, poll_interval: float = 10.0, timeout: float | None = None) -> JobStatus:
        """Block until every shard has ended and its results are stored; show a progress bar.

        Ctrl-C stops waiting and says so; it does not cancel the remote batches. A poll that fails for
        a transient reason (network, 429, 529, 5xx, a cut download), after the HTTP layer's own retries,
        is tried again at the next interval, up to :data:`batchframe.jobs.polling.POLL_FAILURES` times in a row.

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
        return polling.wait(self, poll_interval=poll_interval, timeout=timeout)

    async def wait_async(self, poll_interval: float = 10.0, timeout: float | None = None) -> JobStatus:
        """Like :meth:`wait` without blocking the event loop (refreshes run in a worker thread).

        Examples
        --------
        >>> status = await job.wait_async(poll_interval=5)  # doctest: +SKIP
        """
        return await polling.wait_async(self, poll_interval=poll_interval, timeout=timeout)

    def cancel(self) -> JobStatus:
        """Ask the provider to cancel every shard still running. Rows already done keep their results.

        A batch whose creation was interrupted is adopted first (see :mod:`batchframe.jobs.orphans`) and
        canceled too; if that needs the user's choice, the others are canceled, then it is asked.

        Examples
        --------
        >>> job.cancel().state  # doctest: +SKIP
        'canceling'
        """
        with self.session() as (manifest, provider):
            asked = _reconcile_or_error(self.store, manifest, provider, self.save)
            for _, shard in iter_shards(manifest):
                if state_of(shard) is ShardState.SUBMITTED and shard.get("remote_state") == "in_progress":
                    record_batch(shard, provider.cancel(shard["batch_id"]))
                    self.save()
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
        budget_usd: float | None = None,
        max_in_flight: int | None = None,
        parse_failures: bool = False,
        max_tokens: int | None = None,
    ) -> int:
        """Resubmit, as a new attempt of this job, only the rows whose latest try failed; returns how many.

        A row is resubmitted when its latest attempt ended with it errored (with one of ``error_types``),
        expired, canceled, or without a result line. Rows still running or succeeded are never sent
        again, so retrying twice without new failures submits nothing. Merged results take each row's
        latest attempt (``attempt`` column). See :mod:`batchframe.jobs.resubmit`.

        Parameters
        ----------
        error_types : collection of str, optional
            Error types to resubmit; default every type but ``invalid_request_error`` and ``not_found_error``
            (deterministic: they would fail again).
        expired, canceled, missing : bool
            Whether to resubmit rows in those states.
        budget_usd, max_in_flight : optional
            Set the job's cap (its whole spend, every attempt) and queue limit before resending (see
            :meth:`set_budget`); a retry shard goes only while the spent cost stays within the cap.
        parse_failures : bool
            For a job with a schema: resend only the rows whose request succeeded but whose answer did not
            parse (``parse_status`` other than ``ok``), instead of the failed requests.
        max_tokens : int, optional
            With ``parse_failures``: the new ``max_tokens`` of the resent requests (e.g. for ``truncated``
            rows); recorded on the attempt.

        Examples
        --------
        >>> job.retry()  # doctest: +SKIP
        7
        >>> job.wait(); job.retry()  # doctest: +SKIP
        0
        >>> job.retry(parse_failures=True, max_tokens=512)  # doctest: +SKIP
        2
        """
        if max_tokens is not None and not parse_failures:
            raise InputError("max_tokens= is for retry(parse_failures=True); a failed request is resent as it was")
        if budget_usd is not None or max_in_flight is not None:
            self._set_waves(budget_usd, max_in_flight)
        if parse_failures:
            return structured.resubmit_parse_failures(self, max_tokens=max_tokens)
        return resubmit.resubmit_failed(self, error_types, expired=expired, canceled=canceled, missing=missing)

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
        return delete.delete_job(self, local=local)

    def adopt(self, batch_id: str | None, *, attempt: int | None = None, shard: int | None = None) -> JobStatus:
        """Answer :class:`batchframe.errors.OrphanBatchError`: ``batch_id`` is the interrupted shard's batch,
        or None if none is (the shard is then sent again: it may be paid twice if that was wrong).

        Examples
        --------
        >>> job.adopt("msgbatch_013Zva2CMHLNnXjNJJKqJ2EF")  # doctest: +SKIP
        """
        with self.session() as (manifest, provider):
            adopt_chosen(self.store, manifest, provider, batch_id, attempt=attempt, shard=shard)
            self.save()
        return self.status

    # -- results ----------------------------------------------------------------------------------------
    def results(self, *, prefix: str = DEFAULT_PREFIX) -> pd.DataFrame:
        """The result columns, one row per source row, indexed like the submitted frame.

        Rows not harvested yet are ``pending``; rows never sent are ``skipped``. A job with a schema adds
        ``parse_status``, ``parse_error``, ``json`` and its typed columns (:mod:`batchframe.results.typed`).

        Examples
        --------
        >>> job.results()["llm_status"].value_counts()  # doctest: +SKIP
        """
        check_prefix(prefix)
        with self._locked():
            price_for, _ = provider_class(self.provider_name).pricer(self.model)
            frame = stored_results(self.store, self._manifest, price_for=price_for, prefix=prefix)
        return structured.with_typed(frame, self._manifest, prefix)

    def merge(self, df: pd.DataFrame, *, prefix: str = DEFAULT_PREFIX) -> pd.DataFrame:
        """``df`` with the result columns added, every row proven (see :mod:`batchframe.results.merge`).

        A row gets an answer only if its label is in the job and the values its request was built from are
        unchanged since submit; else its status is ``stale`` or ``not_submitted``. If no row matches, this
        raises :class:`batchframe.errors.InputError` rather than return empty columns.

        Examples
        --------
        >>> job.merge(df, prefix="ai_").columns[-1]  # doctest: +SKIP
        'ai_tool_use'
        """
        results = self.results(prefix=prefix)
        columns = (self._manifest.get("request") or {}).get("columns")
        submitted = submitted_hashes(self.store, self.name)
        current = None
        if columns is not None and submitted is not None:
            current = input_hashes(df, [name_from_json(c) for c in columns])
        return merge_into(df, results, prefix=prefix, current=current, submitted=submitted, job=f"job {self.name!r}")

    def export_metadata(self) -> dict[str, Any]:
        """What an exported Parquet file records about this job (never the key).

        Examples
        --------
        >>> job.export_metadata()["batch_ids"]  # doctest: +SKIP
        ['msgbatch_01HkcTjaV5uDC8jWR4ZsDV8d']
        """
        return {
            "job": self.name,
            "provider": self.provider_name,
            "model": self.model,
            "batch_ids": self.batch_ids(),
            "created_at": self._manifest.get("created_at"),
            "fingerprint": self._manifest.get("fingerprint"),
            **({"cost_basis": self._manifest["cost_basis"]} if self._manifest.get("cost_basis") else {}),
        }

    def batch_ids(self) -> list[str]:
        """Remote batch ids of every shard that has one.

        Examples
        --------
        >>> job.batch_ids()  # doctest: +SKIP
        ['msgbatch_01HkcTjaV5uDC8jWR4ZsDV8d']
        """
        return [s["batch_id"] for _, s in iter_shards(self._manifest) if s.get("batch_id")]


def _unstage(provider: Provider, shard: dict[str, Any], save: Any) -> None:
    try:
        provider.unstage(shard["staged"])
    except (APIError, TransportError) as exc:  # kept on the shard: the next refresh tries again
        log.warning("could not delete the input file of batch %s: %s", shard.get("batch_id"), exc)
        return
    del shard["staged"]
    save()


def _reconcile_or_error(store: Store, manifest: dict, provider: Provider, save: Any) -> OrphanBatchError | None:
    try:
        reconcile(store, manifest, provider, save)
    except OrphanBatchError as exc:
        return exc
    return None


def _copy(data: Any) -> Any:
    return copy.deepcopy(data)
