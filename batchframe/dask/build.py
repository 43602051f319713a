"""Requests built where the rows are, each partition on a worker, and put together on the driver: the path of
``estimate`` and of a submit with ``budget_usd``, which price every request's parameters (a plain submit stages
the lines on the workers instead: :mod:`batchframe.dask.submit`).

A worker builds its partition with :func:`batchframe.requests.build.build_requests` and hashes the inputs of
each row (:func:`batchframe.results.merge.input_hashes`); it sends back, per row, the request's parameters
(null for a skipped row) and that hash, and nothing else: no store, no ledger, no network. The driver
concatenates the partitions in order into one :class:`~batchframe.requests.build.RequestSet` whose positions
are global (a partition's offset plus the row's place in it), so custom_ids ``r<position>`` are unique across
the frame and shards are cut across partition boundaries by the provider's limits, as for a pandas frame.

On this path the driver holds the row labels, the request parameters and their fingerprints, never the frame's
columns.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
from dask.dataframe.utils import make_meta

from batchframe.dask.stage import Post, build
from batchframe.errors import InputError
from batchframe.jobs.plan import Built
from batchframe.requests.build import build_requests, preview
from batchframe.requests.keys import custom_ids
from batchframe.results.merge import input_hashes

#: The columns a partition's build hands back: each row's request parameters (null: skipped) and input hash.
PARAMS, HASH = "params", "input_hash"
_BINARY = pd.ArrowDtype(pa.binary())


def built_meta(index: pd.Index) -> pd.DataFrame:
    """The (empty) frame a partition's build returns, for ``map_partitions(meta=...)``.

    Examples
    --------
    >>> built_meta(pd.RangeIndex(0)).dtypes.astype(str).tolist()
    ['binary[pyarrow]', 'uint64']
    """
    return pd.DataFrame({PARAMS: pd.Series([], dtype=_BINARY), HASH: pd.Series([], dtype=np.uint64)},
                        index=index[:0])


def build_partition(part: pd.DataFrame, spec: dict[str, Any], post: Post | None = None) -> pd.DataFrame:
    """On a worker: one row per row of ``part``, its request's parameters and its input hash.

    ``spec`` holds :func:`build_requests`' keyword arguments, ``post`` what turns the built requests into the
    ones sent (embeddings). Positions in an error message are the row's place in its partition; the label is
    the frame's.

    Examples
    --------
    >>> out = build_partition(pd.DataFrame({"q": ["hi", None]}), {"prompt": "q", "model": "m", "max_tokens": 8})
    >>> out[PARAMS].isna().tolist()
    [False, True]
    """
    if len(part) == 0:
        return built_meta(part.index)
    requests = build(part, spec, post)
    params: list[bytes | None] = [None] * len(part)
    for pos, body in zip(requests.positions.tolist(), requests.params, strict=True):
        params[pos] = body
    return pd.DataFrame({PARAMS: pd.array(pa.array(params, pa.binary()), dtype=_BINARY),
                         HASH: input_hashes(part, requests.columns)}, index=part.index)


class PartitionBuild:
    """A :data:`batchframe.jobs.plan.Builder` over a Dask frame: builds on the workers, assembles here.

    After a call, ``sizes`` holds the number of rows of each partition, in order.

    Examples
    --------
    >>> build = PartitionBuild(ddf)  # doctest: +SKIP
    >>> build(prompt="q", model="claude-haiku-4-5", max_tokens=8).requests.custom_ids[-1]  # doctest: +SKIP
    'r19999'
    """

    def __init__(self, ddf: dd.DataFrame, *, post: Post | None = None):
        self.ddf, self.post = ddf, post
        self.sizes: list[int] = []

    def __call__(self, **spec: Any) -> Built:
        check_spec(spec)
        described = build(first_row(self.ddf), spec, self.post)  # bad arguments fail here, before any work
        built = self.ddf.map_partitions(build_partition, spec, self.post,
                                        meta=built_meta(make_meta(self.ddf).index))
        # One frame per partition, in partition order: their lengths are the partitions' row counts.
        parts = dask.compute(*built.to_delayed())
        self.sizes = [len(p) for p in parts]
        return assemble(described, parts)


def check_spec(spec: dict[str, Any]) -> None:
    """Refuse what cannot follow a frame's partitions to the workers (a pandas Series aligned to an index)."""
    for key, value in spec.items():
        if isinstance(value, pd.Series):
            raise InputError(f"{key} is a pandas Series, which cannot be split along a Dask frame's partitions; "
                             f"add it as a column and pass {key}=batchframe.col('<column>')")


def first_row(ddf: dd.DataFrame) -> pd.DataFrame:
    """The frame's first row (from the first partition that has one), to check the arguments on the driver."""
    with warnings.catch_warnings():  # "insufficient elements": the first partition is empty, the next are looked at
        warnings.simplefilter("ignore", UserWarning)
        head = ddf.head(1, npartitions=1)  # one partition computed, not every one (they are built again later)
    if len(head) == 0 and ddf.npartitions > 1:
        head = ddf.head(1, npartitions=-1)
    if len(head) == 0:
        raise InputError("the frame has no rows: nothing to send; pass a DataFrame with at least one row "
                         "(check the filter that produced it)")
    return head


def assemble(described: Any, parts: tuple[pd.DataFrame, ...] | list[pd.DataFrame]) -> Built:
    """The whole frame's requests, from each partition's build in order (``described``: any RequestSet of
    the same arguments, for what does not depend on the rows: columns read, cache prefix, schema).

    Examples
    --------
    >>> spec = {"prompt": "q", "model": "m", "max_tokens": 8}
    >>> a, b = pd.DataFrame({"q": ["x", ""]}, index=[10, 11]), pd.DataFrame({"q": ["y"]}, index=[12])
    >>> built = assemble(build_requests(a, **spec), [build_partition(a, spec), build_partition(b, spec)])
    >>> built.requests.custom_ids, built.index.tolist()
    (['r0', 'r2'], [10, 11, 12])
    """
    params = pa.chunked_array([pa.array(p[PARAMS].array, pa.binary()) for p in parts], pa.binary())
    sent = params.is_valid().to_numpy(zero_copy_only=False)
    positions = np.flatnonzero(sent).astype(np.int64)
    requests = dataclasses.replace(described, n_rows=len(sent), positions=positions,
                                   custom_ids=custom_ids(positions), params=params.filter(pa.array(sent)).to_pylist(),
                                   skipped=~sent)
    index = parts[0].index.append([p.index for p in parts[1:]]) if parts else pd.RangeIndex(0)
    hashes = np.concatenate([p[HASH].to_numpy(np.uint64) for p in parts]) if parts else np.zeros(0, np.uint64)
    return Built(requests, index, hashes)


def requests_preview(ddf: dd.DataFrame, **spec: Any) -> dd.DataFrame:
    """Dry run, lazily: each partition's requests (``custom_id`` global, ``params``, ``skipped``).

    The partitions' row counts are computed first, to number the rows across the frame.

    Examples
    --------
    >>> ddf.batch.requests(prompt="q", model="claude-haiku-4-5", max_tokens=8).compute()  # doctest: +SKIP
    """
    check_spec(spec)
    sizes = ddf.map_partitions(len).compute().tolist()
    offsets = np.cumsum([0, *sizes[:-1]]).tolist()
    meta = preview(build_requests(first_row(ddf), **spec), pd.RangeIndex(1)).iloc[:0]
    meta.index = make_meta(ddf).index[:0]
    return ddf.map_partitions(preview_partition, spec, offsets, meta=meta)


def preview_partition(part: pd.DataFrame, spec: dict[str, Any], offsets: list[int],
                      partition_info: dict[str, Any] | None = None) -> pd.DataFrame:
    """One partition's dry run, its custom_ids numbered from the partition's offset in the frame."""
    if len(part) == 0:
        return pd.DataFrame({"custom_id": [], "params": [], "skipped": np.zeros(0, bool)}, index=part.index)
    requests = build_requests(part, **spec)
    offset = offsets[partition_info["number"]] if partition_info else 0
    requests = dataclasses.replace(requests, custom_ids=custom_ids(requests.positions + offset))
    return preview(requests, part.index)
