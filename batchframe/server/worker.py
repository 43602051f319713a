"""The worker: one thread that processes pending requests, oldest first across all batches.

Each step it first expands newly created batches into request rows (``Store.expand``), then settles
batches (canceling -> ended with canceled lines; past ``expires_at`` -> ended with expired lines), then
claims up to ``concurrency`` pending requests, checks each one (``validation.py``: a bad request becomes
its own ``invalid_request_error`` line), hands the good ones to ``Engine.complete_many`` and stores the
finished lines in one transaction. Requests are answered one by
one even when processed together: if ``complete_many`` raises for the chunk, its requests are retried one
at a time, so a request that crashes the engine is its own ``api_error`` line and its neighbours (of any
batch) still succeed. Nothing marks a request as claimed on disk: after a crash, whatever was in
flight is simply pending again, and runs again. Requests of OpenAI batches share the queue; their checks,
answers and result files are ``openai_work.py``'s (:class:`~batchframe.server.openai_work.OpenAIWork`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import orjson

from .engines.base import Completion, Engine, EngineError
from .faults import FaultInjector
from .ids import now_us, random_id
from .models import RequestInvalid
from .openai_work import OpenAIWork, is_openai_request
from .store import Store
from .validation import BETA_KEY, UNSTORABLE_KEY, check_params
from .wire import errored_line, message, succeeded_line

log = logging.getLogger("batchframe.server")
_MAX_IDLE_WAIT = 1.0  # seconds; also bounds how late an expiry is noticed
_MAX_HELD = 5.0  # seconds: the longest creates may keep the worker from stepping (see Worker.hold)
_INTERNAL = "Internal server error"


class Worker:
    """Processes the queue in a background thread; :meth:`wake` after adding work or canceling."""

    def __init__(self, store: Store, engine: Engine, faults: FaultInjector, *,
                 concurrency: int | None = None):
        self.store = store
        self.engine = engine
        self.faults = faults
        self.concurrency = max(1, concurrency or engine.max_concurrency)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._held_until = 0.0  # time.monotonic() before which the worker starts no step (see hold)
        self._last_step = time.monotonic()
        self._idle = False  # the last step found nothing to do, and nothing was added since (see hold)
        self._thread: threading.Thread | None = None
        self.openai = OpenAIWork(store, engine, faults)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="batchframe-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wake(self) -> None:
        self._idle = False
        self._wake.set()

    def hold(self, seconds: float) -> None:
        """Start no step for ``seconds`` from now (a step under way finishes): intake goes first.

        A client sending a large job creates its batches back to back; expanding and answering the first
        while the next arrives would make each create wait for the write lock and share the CPU with it.
        The service calls this when a large create arrives (long enough to parse it) and again when it is
        stored (a short gap for the next one); a later call replaces an earlier one. However creates keep
        coming, the worker steps at least every :data:`_MAX_HELD` seconds: intake goes first, never alone.

        Examples
        --------
        >>> w = Worker.__new__(Worker); w._held_until = w._last_step = 0.0; w._idle = True
        >>> w.hold(60); 59 < w.held_for() <= 60
        True
        >>> w.hold(0); w.held_for()
        0.0
        """
        now = time.monotonic()
        if seconds > 0 and self._idle:
            # An idle worker owes no step: the bound counts from here, or the first create of a job would
            # always meet a forced step (an expansion) of the worker. A worker with work keeps its bound.
            self._last_step = max(self._last_step, now)
        self._held_until = now + seconds

    def held_for(self) -> float:
        """Seconds left of the current :meth:`hold` (0 when none)."""
        return max(0.0, self._held_until - time.monotonic())

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            held = self.held_for()
            if held > 0 and time.monotonic() - self._last_step < _MAX_HELD:
                self._stop.wait(min(held, _MAX_IDLE_WAIT))  # bounded: holds end, and stop() ends the wait
                continue
            self._last_step = time.monotonic()
            try:
                busy = self.step()
                # Nothing to do, and nothing added meanwhile: no step is owed (see hold).
                self._idle = not busy and not self._wake.is_set()
            except Exception:  # keep serving: a failed step is retried after a pause
                if self._stop.is_set():
                    return
                log.exception("worker step failed")
                busy = False
            if not busy:
                self._wake.wait(self._idle_wait())

    def _idle_wait(self) -> float:
        expiry = self.store.next_expiry()
        if expiry is None:
            return _MAX_IDLE_WAIT
        return min(_MAX_IDLE_WAIT, max(0.005, (expiry - now_us()) / 1e6))

    def step(self) -> bool:
        """Settle, then process one chunk; False when there was nothing to do."""
        # Staged batches first: settling (cancel, expiry) and claiming work on request rows. A step taken
        # while creates hold the worker back (see hold) expands one batch only: it must not stall intake.
        limit = 1 if self.held_for() > 0 else None
        settled = self.store.expand(limit) + self.store.settle(now_us()) + self.openai.advance(now_us())
        rows = self.store.claim(self.concurrency)
        if not rows:
            return settled > 0
        self.store.write_results(self.process(rows), now_us())
        return True

    def process(self, rows: list[tuple[int, int, str, bytes]]) -> list[tuple[int, int, str, bytes]]:
        """Finished lines (id, batch seq, result type, line) for claimed rows, each answered on its own.

        A request that fails the checks is its own ``invalid_request_error`` (or ``not_found_error``) line;
        a request the engine fails on is its own ``api_error`` line; neither touches another request.
        """
        theirs = [row for row in rows if is_openai_request(row[3])]
        out = self.openai.process(theirs, self._complete) if theirs else []
        todo: list[tuple[int, int, str, str, dict[str, Any]]] = []
        for rid, seq, cid, raw in rows:
            if theirs and is_openai_request(raw):
                continue
            try:
                params, model = self._checked(raw)
            except RequestInvalid as exc:
                out.append((rid, seq, "errored", errored_line(cid, exc.error_type, exc.message)))
                continue
            except Exception:  # a bug in the checks: this request only
                log.exception("checking request %s failed", cid)
                out.append((rid, seq, "errored", errored_line(cid, "api_error", _INTERNAL, random_id("req_"))))
                continue
            injected = self.faults.request_error()
            if injected is not None:
                out.append((rid, seq, "errored", errored_line(cid, *injected, random_id("req_"))))
                continue
            todo.append((rid, seq, cid, model, params))
        for (rid, seq, cid, model, _), answer in zip(todo, self._complete([t[4] for t in todo]), strict=True):
            line = None
            if isinstance(answer, Completion):
                try:
                    line = succeeded_line(cid, message(answer, model, service_tier="batch"))
                except Exception:  # an answer that cannot be serialised: this request only
                    log.exception("engine %r answered request %s with an unusable completion",
                                  self.engine.name, cid)
                    answer = EngineError(_INTERNAL)
            if line is not None:
                out.append((rid, seq, "succeeded", line))
            else:
                assert isinstance(answer, EngineError)
                out.append((rid, seq, "errored", errored_line(cid, answer.error_type, answer.message,
                                                              random_id("req_"))))
        return out

    def _checked(self, raw: bytes) -> tuple[dict[str, Any], str]:
        """The stored params (without the beta mark) and the model their Message reports, or RequestInvalid."""
        try:
            params = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:  # taken in raw by the create (intake.accept_create): e.g. 1e999
            raise RequestInvalid("invalid_request_error", f"params: not valid JSON: {exc}") from None
        if isinstance(params, dict) and params.get(UNSTORABLE_KEY) is True:
            raise RequestInvalid("invalid_request_error",
                                 "params: nested too deeply to be processed; flatten the request's nested values")
        beta = isinstance(params, dict) and bool(params.pop(BETA_KEY, False))
        model = check_params(params, self.engine.model_ids, beta=beta)
        return params, self.model_for(params, model)

    def _complete(self, batch: list[dict[str, Any]]) -> list[Completion | EngineError]:
        """The engine's answers, one per request.

        ``complete_many`` answers a whole chunk; if it raises (or answers the wrong number of requests),
        the chunk's requests are retried one at a time, so only a request that fails on its own errors.
        """
        if not batch:
            return []
        try:
            return self._answers(batch)
        except Exception:
            if len(batch) == 1:
                log.exception("engine %r failed on a request", self.engine.name)
                return [EngineError(_INTERNAL)]
            log.warning("engine %r failed on a chunk of %d requests; retrying them one at a time",
                        self.engine.name, len(batch), exc_info=True)
        out: list[Completion | EngineError] = []
        for params in batch:
            try:
                out.extend(self._answers([params]))
            except Exception:
                log.exception("engine %r failed on a request", self.engine.name)
                out.append(EngineError(_INTERNAL))
        return out

    def _answers(self, batch: list[dict[str, Any]]) -> list[Completion | EngineError]:
        answers = self.engine.complete_many(batch)
        if len(answers) != len(batch):
            raise RuntimeError(f"engine {self.engine.name!r} returned {len(answers)} answers "
                               f"for {len(batch)} requests")
        for answer in answers:
            if not isinstance(answer, Completion | EngineError):
                raise TypeError(f"engine {self.engine.name!r} answered with a {type(answer).__name__}")
        return list(answers)

    def model_for(self, params: Mapping[str, Any], resolved: str) -> str:
        """The ``model`` a Message reports: the engine's own model, unless the request named one of them."""
        return resolved if params.get("model") in self.engine.model_ids else self.engine.model_name
