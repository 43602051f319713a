"""The worker: one thread that processes pending requests, oldest first across all batches.

Each step it first settles batches (canceling -> ended with canceled lines; past ``expires_at`` ->
ended with expired lines), then claims up to ``concurrency`` pending requests, checks each one (a bad
request becomes an errored line), hands the good ones to ``Engine.complete_many`` and stores the finished
lines in one transaction. Nothing marks a request as claimed on disk: after a crash, whatever was in
flight is simply pending again, and runs again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

import orjson

from .engines.base import Completion, Engine, EngineError
from .faults import FaultInjector
from .ids import now_us, random_id
from .models import RequestInvalid, check_params
from .store import Store
from .wire import errored_line, message, succeeded_line

log = logging.getLogger("batchframe.server")
_MAX_IDLE_WAIT = 1.0  # seconds; also bounds how late an expiry is noticed


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
        self._thread: threading.Thread | None = None

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
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                busy = self.step()
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
        settled = self.store.settle(now_us())
        rows = self.store.claim(self.concurrency)
        if not rows:
            return settled > 0
        self.store.write_results(self.process(rows), now_us())
        return True

    def process(self, rows: list[tuple[int, int, str, bytes]]) -> list[tuple[int, int, str, bytes]]:
        """Finished lines (id, batch seq, result type, line) for claimed rows."""
        out: list[tuple[int, int, str, bytes]] = []
        todo: list[tuple[int, int, str, str, Mapping[str, Any]]] = []
        for rid, seq, cid, raw in rows:
            params = orjson.loads(raw)
            try:
                model = check_params(params, self.engine.model_ids)
            except RequestInvalid as exc:
                out.append((rid, seq, "errored", errored_line(cid, exc.error_type, exc.message)))
                continue
            injected = self.faults.request_error()
            if injected is not None:
                out.append((rid, seq, "errored", errored_line(cid, *injected, random_id("req_"))))
                continue
            todo.append((rid, seq, cid, self.model_for(params, model), params))
        for (rid, seq, cid, model, _), answer in zip(todo, self._complete([t[4] for t in todo]), strict=True):
            if isinstance(answer, Completion):
                line = succeeded_line(cid, message(answer, model, service_tier="batch"))
                out.append((rid, seq, "succeeded", line))
            else:
                out.append((rid, seq, "errored", errored_line(cid, answer.error_type, answer.message,
                                                              random_id("req_"))))
        return out

    def _complete(self, batch: list[Mapping[str, Any]]) -> list[Completion | EngineError]:
        if not batch:
            return []
        try:
            answers = self.engine.complete_many(batch)
            if len(answers) != len(batch):
                raise RuntimeError(f"engine {self.engine.name!r} returned {len(answers)} answers "
                                   f"for {len(batch)} requests")
            return answers
        except Exception:  # an engine bug must not kill the worker: the chunk becomes api_error lines
            log.exception("engine %r failed on a chunk of %d requests", self.engine.name, len(batch))
            return [EngineError("Internal server error", error_type="api_error")] * len(batch)

    def model_for(self, params: Mapping[str, Any], resolved: str) -> str:
        """The ``model`` a Message reports: the engine's own model, unless the request named one of them."""
        return resolved if params.get("model") in self.engine.model_ids else self.engine.model_name
