"""The checks of a Message Batches create body: everything that fails a whole batch, fast.

A create refuses the whole batch (400) on the first problem, in item order, worded as the real API words it
(reference §3). 100,000 requests must be accepted in well under a second, so the checks run over whole
columns at once (C loops over the parsed items: types, key sets, custom_id characters and lengths,
uniqueness); only when one fails does the item-by-item walk run, to find and word the first problem exactly.
Both walks check the same things: the fast one decides, the slow one explains.

:func:`accept_create` reads a body first with msgspec, typed: each item's ``params`` as a map of raw JSON
values, checked for syntax but never built into Python objects (a third of the time of a full parse). Any
body it cannot read that way, or that fails a check, or that SQLite might read otherwise, goes through
:func:`parse_create` (orjson), which decides and words the answer as before. One difference remains: inside
``params``, a number out of float range (``1e999``), or nesting deeper than orjson goes when Python's
recursion limit was raised, passes the typed read, where the full parse refuses the whole batch. Such a
body is accepted when the typed read takes it (no ``\\u`` escape, no duplicate item keys: see
:func:`stored_body`), and the worker then answers that request alone with an error; otherwise it is refused
whole, as before.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from operator import itemgetter
from typing import Any

import msgspec
import orjson

from .errors import ServiceRequestError
from .validation import params_keys

MAX_REQUESTS = 100_000
_CUSTOM_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
_ITEM_KEYS = frozenset({"custom_id", "params"})
_custom_ids, _params = itemgetter("custom_id"), itemgetter("params")


def bad_request(message: str) -> ServiceRequestError:
    """The API's 400 ``invalid_request_error`` with ``message``."""
    return ServiceRequestError(message, status=400, error_type="invalid_request_error")


def parse_json(body: bytes) -> Any:
    """The JSON of a request body, or the API's 400."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"The request body is not valid JSON: {exc}") from None


_gc_lock = threading.Lock()
_gc_holders = 0
_gc_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside (nested and concurrent uses are fine).

    Parsing a large body creates millions of containers, each counting towards the next collection, so the
    collector would walk the half-built body again and again (three to four times the parse time); the parsed
    body holds no cycles, so nothing is lost by collecting after.

    Examples
    --------
    >>> import gc
    >>> with gc_paused():
    ...     gc.isenabled()
    False
    """
    global _gc_holders, _gc_was_enabled
    with _gc_lock:
        if _gc_holders == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_holders += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_holders -= 1
            if _gc_holders == 0 and _gc_was_enabled:
                gc.enable()


def free_later(items: list[Any]) -> None:
    """Free a parsed body's items on a short-lived thread; the caller must hold no other reference to them.

    Freeing 100,000 parsed requests takes a tenth of a second, all of it under the GIL if done in one go;
    done here, a slice at a time, the create's answer goes out meanwhile.

    Examples
    --------
    >>> free_later([{"custom_id": "a"}])
    """
    threading.Thread(target=_drop, args=(items,), name="batchframe-free", daemon=True).start()


def _drop(items: list[Any]) -> None:
    while items:  # a slice at a time: between two, the GIL can go to the event loop
        del items[-2048:]


def stored_body(body: bytes, items: list[dict[str, Any]]) -> bytes:
    """What to store for a validated create body: the body itself when SQLite's JSON functions read it as
    orjson did, else the items re-serialised.

    SQLite takes the first of duplicate keys where orjson takes the last, and matches keys without decoding
    ``\\u`` escapes. Those keys are plain ASCII, so without a backslash-u anywhere each of them occurs
    literally, and exactly one ``"custom_id"`` and one ``"params"`` per item (and one ``"requests"``) means
    no duplicates. Anything else (even a ``"params"`` string in a message) takes the careful path.

    Examples
    --------
    >>> body = b'{"requests": [{"custom_id": "a", "params": {"model": "m"}}]}'
    >>> stored_body(body, parse_create(body)) is body
    True
    >>> body = b'{"requests": [{"custom_id": "a", "custom_id": "b", "params": {}}]}'
    >>> stored_body(body, parse_create(body))
    b'{"requests":[{"custom_id":"b","params":{}}]}'
    """
    return body if _as_stored(body, len(items)) else orjson.dumps({"requests": items})


def _as_stored(body: bytes, n: int) -> bool:
    """Whether SQLite reads the ``n`` items of ``body`` as orjson does (see :func:`stored_body`)."""
    # A backslash is found by memchr, far faster than the two-byte search it spares when there is none.
    return ((b"\\" not in body or b"\\u" not in body) and body.count(b'"custom_id"') == n
            and body.count(b'"params"') == n and body.count(b'"requests"') == 1)


class _Item(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    custom_id: str
    params: dict[str, msgspec.Raw]


class _Body(msgspec.Struct, forbid_unknown_fields=True):
    requests: list[_Item]


_read_typed = msgspec.json.Decoder(_Body).decode


class _RawItem(msgspec.Struct, gc=False):
    custom_id: str
    params: msgspec.Raw


class _RawBody(msgspec.Struct):
    requests: list[_RawItem]


_read_raw = msgspec.json.Decoder(_RawBody).decode


def raw_items(body: bytes) -> list[tuple[str, bytes]]:
    """``(custom_id, params as raw JSON)`` of each item of an accepted create body, read as the typed read of
    :func:`accept_create` read it (what a full parse may refuse: see the module's notes).

    Examples
    --------
    >>> raw_items(b'{"requests": [{"custom_id": "a", "params": {"temperature": 1e999}}]}')
    [('a', b'{"temperature": 1e999}')]
    """
    return [(item.custom_id, bytes(item.params)) for item in _read_raw(body).requests]


def accept_create(body: bytes, *, beta: bool = False) -> tuple[int, bytes]:
    """Validate a create body (the API's 400 on any problem); return its number of requests and the bytes
    to store (:func:`stored_body`).

    Examples
    --------
    >>> body = b'{"requests": [{"custom_id": "a", "params": {"model": "m"}}]}'
    >>> accept_create(body) == (1, body)
    True
    >>> try:
    ...     accept_create(b'{"requests": [{"custom_id": "a b", "params": {}}]}')
    ... except ServiceRequestError as exc:
    ...     print(exc.message)
    requests.0.custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'
    """
    try:
        items: list[Any] = _read_typed(body).requests
    except (msgspec.DecodeError, RecursionError):
        items = []
    allowed = params_keys(beta=beta)
    n = len(items)
    stored = body if n and _as_stored(body, n) and _typed_valid(items, allowed) and _utf8(body) else None
    if stored is None:
        items = parse_create(body, beta=beta)
        n, stored = len(items), stored_body(body, items)
        free_later(items)  # emptied in place, on its own thread
    # (Typed items are freed here: structs the GC does not track, a hundredth of a second per 100,000.)
    return n, stored


def _typed_valid(items: list[_Item], allowed: frozenset[str]) -> bool:
    """:func:`_all_valid` over typed items (their types and key sets were checked by the decoder)."""
    if len(items) > MAX_REQUESTS:
        return False
    cids = [item.custom_id for item in items]
    return _columns_valid(cids, "".join(cids), [item.params for item in items], allowed)


def _utf8(body: bytes) -> bool:
    """Whether ``body`` is UTF-8 (raw values are not decoded, so not checked, by the typed read)."""
    if body.isascii():
        return True
    try:
        body.decode()
    except UnicodeDecodeError:
        return False
    return True


def parse_create(body: bytes, *, beta: bool = False) -> list[dict[str, Any]]:
    """Validate a create body; return its request items (``{"custom_id", "params"}`` dicts), in order.

    Checks only what fails a whole batch (reference §3), and the keys of each ``params`` (the spec's
    ``CreateMessageParams``, or ``BetaCreateMessageParams`` when ``beta``); the rest of each ``params`` is
    checked later, by the worker, so a bad request becomes its own errored line.

    Examples
    --------
    >>> parse_create(b'{"requests": [{"custom_id": "a", "params": {"model": "m"}}]}')
    [{'custom_id': 'a', 'params': {'model': 'm'}}]
    >>> try:
    ...     parse_create(b'{"requests": [{"custom_id": "a", "params": {}}, {"custom_id": "a b", "params": {}}]}')
    ... except ServiceRequestError as exc:
    ...     print(exc.status, exc.message)
    400 requests.1.custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'
    """
    items = _request_list(parse_json(body))
    allowed = params_keys(beta=beta)
    if not _all_valid(items, allowed):
        _first_problem(items, allowed)
    return items


def _request_list(doc: Any) -> list[Any]:
    if not isinstance(doc, dict):
        raise bad_request("Input should be a valid dictionary")
    extra = sorted(set(doc) - {"requests"})
    if extra:
        raise bad_request(f"{extra[0]}: Extra inputs are not permitted")
    if "requests" not in doc:
        raise bad_request("requests: Field required")
    items = doc["requests"]
    if not isinstance(items, list):
        raise bad_request("requests: Input should be a valid list")
    if not items:
        raise bad_request("requests: List should have at least 1 item after validation, not 0")
    if len(items) > MAX_REQUESTS:
        raise bad_request(f"requests: List should have at most {MAX_REQUESTS} items after validation, "
                          f"not {len(items)}")
    return items


def _all_valid(items: list[Any], allowed: frozenset[str]) -> bool:
    """Whether every item passes :func:`_first_problem`'s checks, decided column by column."""
    if set(map(type, items)) != {dict} or set(map(len, items)) != {2}:
        return False
    try:  # two keys each, both found: exactly custom_id and params
        cids, params = list(map(_custom_ids, items)), list(map(_params, items))
        joined = "".join(cids)  # a TypeError unless every custom_id is a str
    except (KeyError, TypeError):
        return False
    if set(map(type, params)) != {dict}:
        return False
    return _columns_valid(cids, joined, params, allowed)


def _columns_valid(cids: list[str], joined: str, params: list[Any], allowed: frozenset[str]) -> bool:
    """The checks both reads share, over whole columns: custom_id lengths, characters (``joined``: the ids
    concatenated) and uniqueness; every params key allowed."""
    lengths = set(map(len, cids))
    return (min(lengths) >= 1 and max(lengths) <= 64 and set(joined) <= _CUSTOM_ID_CHARS
            and set().union(*params) <= allowed and len(set(cids)) == len(cids))


def _first_problem(items: list[Any], allowed: frozenset[str]) -> None:
    """Raise the 400 of the first problem, in item order (the order the API reports them in)."""
    seen: set[str] = set()
    for i, item in enumerate(items):
        if type(item) is not dict or item.keys() != _ITEM_KEYS:
            _item_problem(i, item)
        cid, params = item["custom_id"], item["params"]
        if type(cid) is not str or not 1 <= len(cid) <= 64 or not set(cid) <= _CUSTOM_ID_CHARS:
            _custom_id_problem(i, cid)
        if type(params) is not dict:
            raise bad_request(f"requests.{i}.params: Input should be a valid dictionary")
        if not params.keys() <= allowed:
            extra = sorted(set(params) - allowed)[0]
            raise bad_request(f"requests.{i}.params.{extra}: Extra inputs are not permitted")
        if cid in seen:
            raise bad_request("requests: custom_id's must be unique within a batch. "
                              f"Duplicate custom_id found: {cid}")
        seen.add(cid)
    raise AssertionError("the column checks refused a batch whose items are all valid")  # a bug here


def _item_problem(i: int, item: Any) -> None:
    if not isinstance(item, dict):
        raise bad_request(f"requests.{i}: Input should be a valid dictionary")
    for key in ("custom_id", "params"):
        if key not in item:
            raise bad_request(f"requests.{i}.{key}: Field required")
    extra = sorted(set(item) - _ITEM_KEYS)
    raise bad_request(f"requests.{i}.{extra[0]}: Extra inputs are not permitted")


def _custom_id_problem(i: int, cid: Any) -> None:
    where = f"requests.{i}.custom_id"
    if not isinstance(cid, str):
        raise bad_request(f"{where}: Input should be a valid string")
    if not cid:
        raise bad_request(f"{where}: String should have at least 1 character")
    if len(cid) > 64:
        raise bad_request(f"{where}: String should have at most 64 characters")
    raise bad_request(f"{where}: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
