"""What the driver checks of a Dask frame before any work on the workers, and the dry run of its requests.

**Nothing here brings a request body to the driver but the frame's first row's.** The driver refuses the
arguments that cannot follow a frame's partitions (:func:`check_spec`) and builds the first row's requests
(:func:`first_row`) to check the others, before the workers stage every partition
(:mod:`batchframe.dask.stage`); ``ddf.batch.requests`` previews each partition's requests lazily, numbered
across the frame.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd
from dask.dataframe.utils import make_meta

from batchframe.errors import InputError
from batchframe.requests.build import build_requests, preview
from batchframe.requests.keys import custom_ids


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
