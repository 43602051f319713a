"""The service's core: plain Python that owns the state and its transitions; no HTTP in here.

Routes (``app.py``) parse a request, call one method here and serialise what it returns. Refusals are
raised as :class:`~batchframe.server.errors.ServiceRequestError`, worded as the real API words them
(reference §1, §3).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from .engines.base import Engine, EngineError, make_engine
from .errors import ServiceError, ServiceRequestError
from .faults import FaultInjector, Faults
from .identity import describe
from .ids import batch_id, now_us
from .intake import accept_create, bad_request, gc_paused, parse_json
from .models import RequestInvalid
from .openai_backend import OpenAIBackend
from .store import Store
from .streams import read_ahead
from .validation import check_count_params, check_params, params_keys
from .wire import ARCHIVE_AFTER_US, batch_object, list_page, message
from .worker import Worker

log = logging.getLogger("batchframe.server")
MAX_BODY_BYTES = 256 * 1024 * 1024
_ID_PREFIX = "msgbatch_"  # every Message Batch id; the OpenAI batches' rows in ``batches`` are ``batch_...``


#: A create body this large (about 5,000 requests) holds the worker back while it is taken in (Worker.hold):
#: long enough to parse it, then a short gap in which a client sending its next shard back to back gets in.
_LARGE_CREATE = 1 << 20
_PARSE_HOLD_S, _NEXT_CREATE_S = 5.0, 0.5


def _not_found(batch: str) -> ServiceRequestError:
    return ServiceRequestError(f"Message Batch {batch} not found.", status=404, error_type="not_found_error")


class Backend:
    """State and transitions of one data directory, plus the engine and worker that process it.

    Examples
    --------
    >>> backend = Backend(data_dir=tmp_path)  # doctest: +SKIP
    >>> backend.create(b'{"requests": [...]}', base_url="http://127.0.0.1:8000")  # doctest: +SKIP
    """

    def __init__(self, *, data_dir: str | Path, engine: str | Engine = "echo",
                 engine_options: dict[str, Any] | None = None, faults: Faults | None = None,
                 ttl_seconds: float = 86400, workers: int | None = None,
                 max_body_bytes: int = MAX_BODY_BYTES):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # One service per data dir: two workers would process the same requests twice.
        # Not thread-local: a service may be stopped from another thread than the one that started it.
        self._lock = FileLock(self.data_dir / "service.lock", thread_local=False)
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise ServiceError(f"another batchframe service already runs on {self.data_dir}; "
                               "stop it or choose another --data-dir") from None
        try:
            self.store = Store(self.data_dir)
            self.store.sweep_inputs()  # under the lock, before any create
            self.engine = engine if isinstance(engine, Engine) else _engine(engine, engine_options)
        except BaseException:
            self._lock.release()
            raise
        #: The options the engine was started with (secrets included: they stay in this process).
        self.engine_options: dict[str, Any] = {} if isinstance(engine, Engine) else dict(engine_options or {})
        self.faults = FaultInjector(faults)
        self.ttl_us = int(ttl_seconds * 1_000_000)
        self.max_body_bytes = max_body_bytes
        self.last_activity = time.monotonic()  # of the last API call (idle exit of detached services)
        self.worker = Worker(self.store, self.engine, self.faults, concurrency=workers)
        self.openai = OpenAIBackend(self.worker, ttl_us=self.ttl_us)  # the OpenAI API, on the same store
        self._writer = ThreadPoolExecutor(2, thread_name_prefix="batchframe-inputs")  # create bodies to disk

    def start(self) -> None:
        """Load what the first create needs (the spec's key sets), then start the worker."""
        params_keys(beta=False), params_keys(beta=True)
        self.worker.start()

    def describe(self) -> dict[str, Any]:
        """What ``GET /v1/service`` answers: id, version, engine, model, engine options without secrets."""
        return describe(data_dir=self.data_dir, engine=self.engine.name, model=self.engine.model_name,
                        engine_options=self.engine_options)

    def close(self) -> None:
        """Stop the worker and the body writer, release the engine, the database and the data-dir lock."""
        self.worker.stop()
        self._writer.shutdown()
        try:
            self.engine.close()
        finally:
            self.store.close()
            self._lock.release()

    # -- batches -----------------------------------------------------------------------------------------
    def create(self, body: bytes, *, base_url: str, beta: bool = False) -> dict[str, Any]:
        """Validate a create body as a whole (400 on any problem), store it, wake the worker.

        ``beta``: a beta call (``?beta=true`` or an ``anthropic-beta`` header), whose requests may use every
        field of the spec's ``BetaCreateMessageParams``.

        Examples
        --------
        >>> body = b'{"requests": [{"custom_id": "a", "params": {"model": "m", "max_tokens": 8, "messages": []}}]}'
        >>> backend.create(body, base_url="http://127.0.0.1:8000")["processing_status"]  # doctest: +SKIP
        'in_progress'
        """
        large = len(body) >= _LARGE_CREATE
        if large:  # intake first: see Worker.hold
            self.worker.hold(_PARSE_HOLD_S)
        dropped, writing, pending = threading.Event(), None, None
        try:
            # The body is written (and fsynced) on a thread while it is validated: a third of a large create's
            # time, beside the parse instead of after it. Refused, it is not fsynced, and its file goes.
            writing = self._writer.submit(self.store.write_input, body, dropped=dropped)
            with gc_paused():  # a body of 100,000 requests is millions of objects: see gc_paused
                n, stored = accept_create(body, beta=beta)
            if stored is not body:  # re-serialised (see intake.stored_body): what the worker reads is this
                dropped.set()
                writing.result().unlink()
                pending = self.store.write_input(stored)
            else:
                pending = writing.result()
            # The id once the body is validated (ids are in time order). Durable before the answer. The worker
            # makes the request rows, in a random order (so processed and streamed in random order, as the
            # API's results).
            new_id, created = batch_id()
            row = self.store.commit_batch(new_id, created, created + self.ttl_us, n, pending, beta=beta)
        except BaseException:
            dropped.set()
            if writing is not None and not writing.cancel() and writing.exception() is None:
                writing.result().unlink(missing_ok=True)  # written (or named: then removed already)
            if pending is not None:
                pending.unlink(missing_ok=True)
            if large:
                self.worker.hold(0)  # refused: nothing was taken in, nothing to make way for
            raise
        if large:  # stored: the parse hold ends, a short gap for the client's next shard remains
            self.worker.hold(_NEXT_CREATE_S)
        self.worker.wake()
        return batch_object(row, base_url, created)  # as stored, even if the worker is already done

    def _row(self, batch: str) -> dict[str, Any]:
        row = self.store.get_batch(batch)
        if row is None or not batch.startswith(_ID_PREFIX):  # an OpenAI batch's row is not a Message Batch
            raise _not_found(batch)
        return row

    def retrieve(self, batch: str, *, base_url: str) -> dict[str, Any]:
        return batch_object(self._row(batch), base_url, now_us())

    def list(self, *, before_id: str | None, after_id: str | None, limit: int,
             base_url: str) -> dict[str, Any]:
        rows, has_more = self.store.list_batches(before_id=before_id, after_id=after_id, limit=limit)
        now = now_us()
        return list_page([batch_object(r, base_url, now) for r in rows], has_more)

    def cancel(self, batch: str, *, base_url: str) -> dict[str, Any]:
        """in_progress -> canceling; the worker then cancels what is pending and ends the batch.

        Canceling a batch that is already canceling or ended returns it unchanged.
        """
        if not batch.startswith(_ID_PREFIX):  # an OpenAI batch is cancelled through the OpenAI API
            raise _not_found(batch)
        row = self.store.set_canceling(batch, now_us())  # the row as canceled, before the worker ends it
        if row is None:
            return self.retrieve(batch, base_url=base_url)
        self.worker.wake()
        return batch_object(row, base_url, now_us())

    def delete(self, batch: str) -> dict[str, Any]:
        row = self._row(batch)
        if row["processing_status"] != "ended":
            raise bad_request("In progress batches cannot be deleted. Consider canceling the batch instead.")
        self.store.delete_batch(row)
        return {"id": batch, "type": "message_batch_deleted"}

    def results(self, batch: str) -> tuple[Iterator[bytes], int | None]:
        """The result lines in chunks, and their total size when known; 404 until the batch has ended, and
        after it is archived.

        A batch sealed when it ended streams its file (``sealed.py``); one that ended before the store
        sealed batches (migration 0005) joins its lines page by page, its size unknown in advance.
        """
        row = self._row(batch)
        if row["processing_status"] != "ended" or now_us() >= row["created_us"] + ARCHIVE_AFTER_US:
            raise ServiceRequestError(f"Message Batch {batch} has no available results.",
                                      status=404, error_type="not_found_error")
        size = self.store.sealed.size(batch)
        if size is None:
            return read_ahead(self.store.result_ranges(row), self.store.result_page), None
        return self.store.sealed.chunks(batch), size

    # -- synchronous Messages ----------------------------------------------------------------------------
    def message(self, body: bytes, *, beta: bool = False) -> dict[str, Any]:
        """POST /v1/messages: one request checked (400/404 as the API), through the engine, answered at once.

        An engine failure is that request's error (its type and status, 500 ``api_error`` for a crash); it
        is answered like any other error, so the connection stays open.
        """
        params = parse_json(body)
        try:
            model = check_params(params, self.engine.model_ids, batch=False, beta=beta)
        except RequestInvalid as exc:
            raise _sync_error(exc) from None
        try:
            completion = self.engine.complete(params)
        except EngineError as exc:
            raise ServiceRequestError(exc.message, status=_STATUS.get(exc.error_type, 500),
                                      error_type=exc.error_type) from None
        except Exception:
            log.exception("engine %r failed on a request", self.engine.name)
            raise _internal() from None
        return message(completion, self.worker.model_for(params, model), service_tier="standard")

    def count_tokens(self, body: bytes, *, beta: bool = False) -> dict[str, int]:
        params = parse_json(body)
        try:
            check_count_params(params, self.engine.model_ids, beta=beta)
        except RequestInvalid as exc:
            raise _sync_error(exc) from None
        try:
            return {"input_tokens": self.engine.count_tokens(params)}
        except Exception:
            log.exception("engine %r failed counting tokens", self.engine.name)
            raise _internal() from None


def _engine(name: str, options: dict[str, Any] | None) -> Engine:
    try:
        return make_engine(name, **(options or {}))
    except TypeError as exc:  # a missing or unknown option: say which, and how to pass it
        raise ServiceError(f"engine {name!r}: {exc}; pass options as --engine-option KEY=VALUE "
                           "(engine_options={...} in Python)") from None


_STATUS = {"invalid_request_error": 400, "authentication_error": 401, "permission_error": 403,
           "not_found_error": 404, "rate_limit_error": 429, "timeout_error": 504, "api_error": 500,
           "overloaded_error": 529, "billing_error": 402}


def _internal() -> ServiceRequestError:
    return ServiceRequestError("Internal server error", status=500, error_type="api_error")


def _sync_error(exc: RequestInvalid) -> ServiceRequestError:
    status = _STATUS.get(exc.error_type, 400)
    return ServiceRequestError(exc.message, status=status, error_type=exc.error_type)
