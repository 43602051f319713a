"""The worker's OpenAI side: validate input files, answer OpenAI requests, write the result files.

The worker (``worker.py``) calls :meth:`OpenAIWork.advance` each step and hands it the claimed requests
that are OpenAI's (:func:`is_openai_request`). Every move is persisted before the next begins, so a
killed service resumes where it stopped: a ``validating`` batch is validated again (its requests, if
already inserted, are found by id and not inserted twice); requests in flight are pending again; a batch
killed while ``finalizing`` writes the same derived files again. Lifecycle::

    validating -> in_progress -> finalizing -> completed | expired
         |              |
         |              +-> cancelling -> finalizing -> cancelled
         +-> failed (the input file fails the batch: ``errors``)  /  cancelling -> cancelled
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from .engines.base import Completion, Engine, EngineError
from .errors import OpenAIRequestError
from .faults import FaultInjector
from .files import FileStore, derived_file_id
from .openai_convert import to_messages
from .openai_store import OpenAIBatchStore, dumps_or_none
from .openai_validation import EmbeddingRequest, InputFileInvalid, check_chat, check_embeddings, parse_input_file
from .openai_wire import STATUS_OF_TYPE, chat_completion, embedding_list, error_body, output_line, unfinished_line
from .store import Store

log = logging.getLogger("batchframe.server")
#: Stored params of an OpenAI request start with this key (an Anthropic request can never hold it: its
#: keys are checked against the spec at create), so the worker tells them apart without parsing.
OPENAI_KEY = "batchframe_openai_endpoint"
_PREFIX = b'{"' + OPENAI_KEY.encode() + b'":'
FILE_TTL_SECONDS = 30 * 86400
Row = tuple[int, int, str, bytes]
Complete = Callable[[list[dict[str, Any]]], list[Completion | EngineError]]


def is_openai_request(raw: bytes) -> bool:
    """Whether stored request params belong to an OpenAI batch.

    Examples
    --------
    >>> is_openai_request(stored_params("/v1/embeddings", {"model": "m"})), is_openai_request(b'{"model":"m"}')
    (True, False)
    """
    return raw.startswith(_PREFIX)


def stored_params(endpoint: str, body: dict[str, Any]) -> bytes:
    """The ``requests.params`` of an OpenAI request: its endpoint first, then its body."""
    return orjson.dumps({OPENAI_KEY: endpoint, "body": body})


def engine_error(exc: EngineError) -> OpenAIRequestError:
    """An engine's error as the OpenAI error of the same status.

    Examples
    --------
    >>> engine_error(EngineError("boom")).status, engine_error(EngineError("boom")).error_type
    (500, 'server_error')
    """
    status = STATUS_OF_TYPE.get(exc.error_type, 500)
    kind = "server_error" if status >= 500 else "requests" if status == 429 else "invalid_request_error"
    return OpenAIRequestError(exc.message, status=status, error_type=kind)


def reported_model(engine: Engine, requested: str) -> str:
    """The ``model`` an answer reports: the engine's own, unless the request named one of the engine's."""
    return requested if requested in engine.model_ids else engine.model_name


def embeddings_answer(engine: Engine, request: EmbeddingRequest) -> dict[str, Any]:
    """The embeddings body for a checked request (raises EngineError)."""
    out = engine.embed(request.inputs, model=request.model, dimensions=request.dimensions)
    if len(out.vectors) != len(request.inputs):
        raise EngineError(f"engine {engine.name!r} returned {len(out.vectors)} vectors for "
                          f"{len(request.inputs)} inputs")
    return embedding_list(out.vectors, reported_model(engine, request.model), out.input_tokens,
                          encoding_format=request.encoding_format)


class OpenAIWork:
    """What the worker does for OpenAI batches (see the module docstring)."""

    def __init__(self, store: Store, engine: Engine, faults: FaultInjector):
        self.store, self.engine, self.faults = store, engine, faults
        self.files = FileStore(store)
        self.batches = OpenAIBatchStore(store)

    # -- requests --------------------------------------------------------------------------------------------
    def process(self, rows: list[Row], complete: Complete) -> list[tuple[int, int, str, bytes]]:
        """Finished lines (id, batch seq, result type, line) for claimed OpenAI requests, each on its own.

        ``complete`` answers Messages params (the worker's, which retries a failing chunk one by one).
        """
        out: list[tuple[int, int, str, bytes]] = []
        chats: list[tuple[int, int, str, str, dict[str, Any]]] = []
        for rid, seq, cid, raw in rows:
            stored = orjson.loads(raw)
            endpoint, body = stored[OPENAI_KEY], stored["body"]
            try:
                if endpoint == "/v1/chat/completions":
                    model = check_chat(body, self.engine.model_ids, batch=True)
                    params = to_messages(body)
                else:
                    request = check_embeddings(body, self.engine.model_ids)
            except OpenAIRequestError as exc:
                out.append((rid, seq, "errored", _error_line(cid, exc)))
                continue
            injected = self.faults.request_error()
            if injected is not None:
                out.append((rid, seq, "errored", _error_line(cid, engine_error(EngineError(
                    injected[1], error_type=injected[0])))))
            elif endpoint == "/v1/chat/completions":
                chats.append((rid, seq, cid, reported_model(self.engine, model), params))
            else:
                out.append((rid, seq, *self._embedding_line(cid, request)))
        answers = complete([c[4] for c in chats]) if chats else []
        now = int(time.time())
        for (rid, seq, cid, model, _), answer in zip(chats, answers, strict=True):
            if isinstance(answer, Completion):
                out.append((rid, seq, "succeeded", output_line(cid, 200, chat_completion(answer, model, now))))
            else:
                out.append((rid, seq, "errored", _error_line(cid, engine_error(answer))))
        return out

    def _embedding_line(self, cid: str, request: EmbeddingRequest) -> tuple[str, bytes]:
        try:
            return "succeeded", output_line(cid, 200, embeddings_answer(self.engine, request))
        except EngineError as exc:
            return "errored", _error_line(cid, engine_error(exc))
        except Exception:  # an engine bug: this request only
            log.exception("engine %r failed on an embeddings request", self.engine.name)
            return "errored", _error_line(cid, engine_error(EngineError("Internal server error")))

    # -- batches ---------------------------------------------------------------------------------------------
    def advance(self, now_us: int) -> int:
        """Validate ``validating`` batches, finish those whose requests all ended; return how many moved."""
        moved = 0
        for row in self.batches.due():
            try:
                if row["status"] == "validating":
                    self._validate(row, now_us)
                else:
                    self._finish(row)
            except Exception:  # keep the others moving; this one is retried on a later step
                log.exception("OpenAI batch %s could not move on from %s", row["id"], row["status"])
                continue
            moved += 1
        return moved

    def _validate(self, row: dict[str, Any], now_us: int) -> None:
        now = now_us // 1_000_000
        if self.files.get(row["input_file_id"]) is None:
            self._fail(row["id"], [{"code": "invalid_request", "message": f"The input file {row['input_file_id']} "
                                    "was deleted before the batch could be validated.", "param": "input_file_id",
                                    "line": None}], now)
            return
        try:
            requests, model = parse_input_file(self.files.read(row["input_file_id"]), row["endpoint"])
        except InputFileInvalid as exc:
            self._fail(row["id"], exc.errors, now)
            return
        existing = self.store.get_batch(row["id"])  # inserted before a crash: not twice
        if existing is None:
            random.shuffle(requests)  # stored (so processed and written) in random order, as the API's output
            stored = [(cid, stored_params(row["endpoint"], body)) for cid, body in requests]
            existing = self.store.insert_batch(row["id"], row["created_at"] * 1_000_000,
                                               row["expires_at"] * 1_000_000, stored)
        if self.batches.link(row["id"], existing["seq"], model, now) == "cancelling":
            self.store.set_canceling(row["id"], now_us)  # cancelled while validating

    def _fail(self, batch: str, errors: list[dict[str, Any]], now: int) -> None:
        self.batches.move(batch, "failed", leaving=("validating",), failed_at=now, errors=orjson.dumps(errors))
        self.batches.move(batch, "cancelled", leaving=("cancelling",), cancelled_at=now)

    def _finish(self, row: dict[str, Any]) -> None:
        """finalizing (persisted first), write the output and error files, then the final status."""
        now = int(time.time())
        if row["status"] != "finalizing":
            self.batches.move(row["id"], "finalizing", leaving=(row["status"],), finalizing_at=now)
        cancelled = row["status"] == "cancelling" or row["cancel_us"] is not None
        final = "cancelled" if cancelled else "expired" if row["expired"] else "completed"
        usage = {"input_tokens": 0, "output_tokens": 0}
        columns: dict[str, Any] = {f"{final}_at": now}
        files = []
        for kind, lines in (("output", self._output_lines(row, usage)), ("error", self._error_lines(row))):
            file_id = derived_file_id(row["id"], kind)
            size = self.files.write(file_id, lines)
            if not size:  # no such lines: no file (a batch whose every request failed has no output file)
                self.files.path(file_id).unlink(missing_ok=True)
                continue
            columns[f"{kind}_file_id"] = file_id
            files.append({"id": file_id, "filename": f"{row['id']}_{kind}.jsonl", "purpose": "batch_output",
                          "bytes": size, "created_at": now,
                          "expires_at": now + (row["output_expires_after"] or FILE_TTL_SECONDS)})
        if row["batch"] is not None:
            columns["usage"] = dumps_or_none(_batch_usage(usage))
        sets = ", ".join(["status = :to", *(f"{c} = :{c}" for c in columns)])
        with self.store.transaction() as db:  # the file rows and the final status together
            for f in files:
                self.files.record(db, f)
            self.batches.move_in(db, row["id"], sets, final, ("finalizing",), columns)

    def _output_lines(self, row: dict[str, Any], usage: dict[str, int]) -> Iterator[bytes]:
        for _, kind, line in self.batches.lines(row):
            if kind == "succeeded":
                body_usage = orjson.loads(line)["response"]["body"].get("usage") or {}
                usage["input_tokens"] += body_usage.get("prompt_tokens", 0)
                usage["output_tokens"] += body_usage.get("completion_tokens", 0)
                yield line

    def _error_lines(self, row: dict[str, Any]) -> Iterator[bytes]:
        for cid, kind, line in self.batches.lines(row):
            if kind == "errored":
                yield line
            elif kind in ("canceled", "expired"):  # their stored line is Anthropic's; OpenAI's is made here
                yield unfinished_line(cid, kind)


def _error_line(custom_id: str, exc: OpenAIRequestError) -> bytes:
    return output_line(custom_id, exc.status, error_body(exc.message, exc.error_type, exc.param, exc.code))


def _batch_usage(usage: dict[str, int]) -> dict[str, Any]:
    return {"input_tokens": usage["input_tokens"], "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": usage["output_tokens"], "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage["input_tokens"] + usage["output_tokens"]}
