"""The OpenAI Files and Batches API of the service: plain Python over the same store, engine and worker as
the Anthropic API (``backend.py``); no HTTP in here.

Routes (``openai_routes.py``) parse a request, call one method here and serialise what it returns; refusals
are :class:`~batchframe.server.errors.OpenAIRequestError`. A created batch is stored ``validating`` and
the worker takes it from there (``openai_work.py``), so everything after the create survives a restart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import orjson

from .engines.base import EngineError
from .errors import OpenAIRequestError
from .ids import batch_id
from .openai_convert import to_messages
from .openai_store import dumps_or_none
from .openai_validation import check_chat, check_create, check_embeddings
from .openai_wire import BATCH_FIELDS, batch_object, chat_completion, file_object, list_page
from .openai_work import embeddings_answer, engine_error, reported_model
from .worker import Worker

log = logging.getLogger("batchframe.server")
UPLOAD_PURPOSES = ("batch", "fine-tune", "assistants", "vision", "user_data", "evals")


def _not_found(what: str, param: str = "id") -> OpenAIRequestError:
    return OpenAIRequestError(what, status=404, param=param)


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise OpenAIRequestError(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP "
            "library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)"
        ) from None


class OpenAIBackend:
    """Files, batches and the synchronous chat / embeddings calls of the OpenAI API.

    Examples
    --------
    >>> api = Backend(data_dir=tmp_path).openai  # doctest: +SKIP
    >>> api.upload(filename="in.jsonl", purpose="batch", data=b'{"custom_id": ...}\\n')["id"]  # doctest: +SKIP
    'file-...'
    """

    def __init__(self, worker: Worker, *, ttl_us: int):
        self.worker, self.engine, self.ttl_us = worker, worker.engine, ttl_us
        self.files = worker.openai.files
        self.batches = worker.openai.batches

    # -- files -----------------------------------------------------------------------------------------------
    def upload(self, *, filename: str, purpose: str, data: bytes, expires_after: int | None = None) -> dict[str, Any]:
        """Store an uploaded file (``purpose=batch`` files must be ``.jsonl``, and expire after 30 days)."""
        if purpose not in UPLOAD_PURPOSES:
            raise OpenAIRequestError(f"Invalid value: '{purpose}'. Supported values are: "
                                     f"{', '.join(repr(p) for p in UPLOAD_PURPOSES)}.", param="purpose",
                                     code="invalid_value")
        if purpose == "batch" and not filename.endswith(".jsonl"):
            raise OpenAIRequestError("Invalid file format for Batch API. Must be .jsonl", param="file")
        if purpose == "batch" and expires_after is None:
            expires_after = 30 * 86400
        return file_object(self.files.add(filename=filename, purpose=purpose, data=data, expires_after=expires_after))

    def file(self, file_id: str) -> dict[str, Any]:
        return file_object(self._file_row(file_id))

    def _file_row(self, file_id: str) -> dict[str, Any]:
        row = self.files.get(file_id)
        if row is None:
            raise _not_found(f"No such File object: {file_id}")
        return row

    def file_content(self, file_id: str) -> tuple[Iterator[bytes], int]:
        """The file's bytes in chunks, and their size (404 for an unknown or deleted file)."""
        return self.files.chunks(file_id), self._file_row(file_id)["bytes"]

    def delete_file(self, file_id: str) -> dict[str, Any]:
        if not self.files.delete(file_id):
            raise _not_found(f"No such File object: {file_id}")
        return {"id": file_id, "object": "file", "deleted": True}

    def list_files(self, *, purpose: str | None, limit: int, order: str, after: str | None) -> dict[str, Any]:
        rows, has_more = self.files.page(purpose=purpose, limit=limit, order=order, after=after)
        return list_page([file_object(r) for r in rows], has_more, ids_required=True)

    # -- batches ---------------------------------------------------------------------------------------------
    def create_batch(self, body: bytes) -> dict[str, Any]:
        """Store a new batch ``validating`` and wake the worker; return it as stored.

        The input file must exist and have ``purpose=batch``; its lines are checked by the worker.
        """
        create = check_create(_json(body))
        source = self.files.get(create.input_file_id)
        if source is None:
            raise _not_found(f"No such File object: {create.input_file_id}", "input_file_id")
        if source["purpose"] != "batch":
            raise OpenAIRequestError(f"The input file {create.input_file_id} must have purpose 'batch', not "
                                     f"'{source['purpose']}'.", param="input_file_id")
        suffix, created_us = batch_id()  # its clock and suffix: time-ordered, so the list pages by id
        row: dict[str, Any] = {"id": "batch_" + suffix.removeprefix("msgbatch_"), "status": "validating",
               "endpoint": create.endpoint, "input_file_id": create.input_file_id,
               "completion_window": create.completion_window, "metadata": dumps_or_none(create.metadata),
               "output_expires_after": create.output_expires_after, "created_at": created_us // 1_000_000,
               "expires_at": (created_us + self.ttl_us) // 1_000_000}
        self.batches.insert(row)
        self.worker.wake()
        return batch_object({**dict.fromkeys(BATCH_FIELDS), **row})  # as stored, even if the worker moved on

    def batch(self, batch: str) -> dict[str, Any]:
        row = self.batches.get(batch)
        if row is None:
            raise _not_found(f"No batch found with id '{batch}'.", "batch_id")
        return batch_object(row)

    def list_batches(self, *, after: str | None, limit: int) -> dict[str, Any]:
        rows, has_more = self.batches.page(after=after, limit=limit)
        return list_page([batch_object(r) for r in rows], has_more)

    def cancel_batch(self, batch: str) -> dict[str, Any]:
        """validating / in_progress -> cancelling; the worker cancels what is pending and finishes the batch.

        A batch already cancelling is returned unchanged; one that has ended is refused (409).
        """
        current = self.batch(batch)
        now_us = time.time_ns() // 1000
        if self.batches.move(batch, "cancelling", leaving=("validating", "in_progress"),
                             cancelling_at=now_us // 1_000_000):
            self.worker.store.set_canceling(batch, now_us)  # no-op until validated: then the worker does it
            self.worker.wake()
        elif current["status"] not in ("cancelling", "finalizing"):
            raise OpenAIRequestError(f"Cannot cancel a batch with status '{current['status']}'.", status=409)
        return self.batch(batch)

    # -- synchronous calls -----------------------------------------------------------------------------------
    def chat(self, body: bytes) -> dict[str, Any]:
        """POST /v1/chat/completions: checked, answered by the engine at once."""
        request = _json(body)
        model = check_chat(request, self.engine.model_ids)
        try:
            completion = self.engine.complete(to_messages(request))
        except EngineError as exc:
            raise engine_error(exc) from None
        except Exception:
            log.exception("engine %r failed on a chat request", self.engine.name)
            raise engine_error(EngineError("Internal server error")) from None
        return chat_completion(completion, reported_model(self.engine, model), int(time.time()))

    def embeddings(self, body: bytes) -> dict[str, Any]:
        """POST /v1/embeddings: checked, answered by the engine at once."""
        request = check_embeddings(_json(body), self.engine.model_ids)
        try:
            return embeddings_answer(self.engine, request)
        except EngineError as exc:
            raise engine_error(exc) from None
        except Exception:
            log.exception("engine %r failed on an embeddings request", self.engine.name)
            raise engine_error(EngineError("Internal server error")) from None
