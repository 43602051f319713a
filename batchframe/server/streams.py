"""Result streams read ahead: the next pages are read from the store while the current one is being sent.

Reading a page of result lines is SQLite's work, done with the GIL released; sending is the event loop's. A
stream reads its pages on ``workers`` threads, up to ``depth`` pages ahead, and yields them in order, so
reading and sending overlap instead of alternating, and a second core can read too. At most ``depth`` pages
wait in memory; a consumer that stops early (a client gone) leaves the pages not started unread.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

Page = TypeVar("Page")
#: Seconds a stream waits for one page before giving up (the store's own lock timeout is 60 s).
PAGE_TIMEOUT = 120.0


def read_ahead(pages: Iterable[Page], read: Callable[[Page], bytes], *, workers: int = 2,
               depth: int = 4) -> Iterator[bytes]:
    """``read(page)`` of every page, in order, computed on ``workers`` threads up to ``depth`` pages ahead.

    Examples
    --------
    >>> list(read_ahead(range(5), lambda i: b"%d" % i, depth=2))
    [b'0', b'1', b'2', b'3', b'4']
    """
    todo = iter(pages)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="results-read-ahead")
    pending: deque[Future[bytes]] = deque()
    try:
        for page in todo:
            pending.append(pool.submit(read, page))
            if len(pending) >= depth:
                yield pending.popleft().result(timeout=PAGE_TIMEOUT)
        while pending:
            yield pending.popleft().result(timeout=PAGE_TIMEOUT)
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=False)
