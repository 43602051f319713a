"""Giving Arrow's freed memory back between the steps of an ingest.

Arrow's default allocator (mimalloc, or jemalloc) keeps freed pages for reuse and returns them to the system
lazily. An ingest frees a block, a file's column or a slice before the next one allocates its own, often on
another thread, so that retention adds up to several columns' worth of resident memory that nothing uses.
"""

from __future__ import annotations

import pyarrow as pa


def release_unused() -> None:
    """Hand the memory Arrow's default pool holds but no longer uses back to the system.

    It costs microseconds when there is nothing to return.

    Examples
    --------
    >>> release_unused()
    """
    pa.default_memory_pool().release_unused()
