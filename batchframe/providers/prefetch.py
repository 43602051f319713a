"""A download read ahead on a thread, so receiving the next bytes overlaps with parsing the last ones.

The socket read (and the HTTP framing around it) runs on a reader thread that stays at most ``max_bytes``
ahead; the caller's thread parses (pyarrow's JSON reader releases the GIL, so both progress at once). Small
network pieces are gathered into ``piece_bytes`` so the hand-over costs little. An error of the download
(a cut stream) reaches the caller in order, after the bytes that came before it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator

#: Seconds the reader waits for a caller that stopped taking pieces before it gives up.
STALL_SECONDS = 600.0
_END = object()


def read_ahead(chunks: Iterable[bytes], *, max_bytes: int = 8 << 20, piece_bytes: int = 1 << 20) -> Iterator[bytes]:
    """The bytes of ``chunks``, in order, in pieces of about ``piece_bytes``, read on a thread.

    Examples
    --------
    >>> b"".join(read_ahead(iter([b"ab", b"c", b"d"]), piece_bytes=2))
    b'abcd'
    """
    ready: queue.Queue = queue.Queue(maxsize=max(1, max_bytes // piece_bytes))
    stop = threading.Event()
    reader = threading.Thread(target=_read, args=(chunks, ready, stop, piece_bytes), name="download-read-ahead",
                              daemon=True)
    reader.start()
    try:
        while (item := ready.get(timeout=STALL_SECONDS)) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join(timeout=STALL_SECONDS)


def _read(chunks: Iterable[bytes], ready: queue.Queue, stop: threading.Event, piece_bytes: int) -> None:
    piece: list[bytes] = []
    size = 0
    try:
        for chunk in chunks:
            piece.append(chunk)
            size += len(chunk)
            if size >= piece_bytes:
                if not _put(ready, b"".join(piece), stop):
                    return
                piece, size = [], 0
        if piece and not _put(ready, b"".join(piece), stop):
            return
        _put(ready, _END, stop)
    except BaseException as exc:  # handed over after the bytes before it, raised in the caller's thread
        if piece and not _put(ready, b"".join(piece), stop):
            return
        _put(ready, exc, stop)


def _put(ready: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Hand ``item`` over unless the caller stopped (False), waiting at most :data:`STALL_SECONDS`."""
    for _ in range(int(STALL_SECONDS / 0.1)):
        if stop.is_set():
            return False
        try:
            ready.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False
