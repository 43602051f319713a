"""Structured output in a job: typed columns on its results, parse counts on its shards, and re-asking the rows
whose answer did not parse.

The job's manifest records the answer's schema and how it was asked for (``request.structured``, see
:mod:`batchframe.requests.structured`); every function here reads it from there, so a job re-opened in another
process parses exactly as the one that submitted it. Parsing itself is :mod:`batchframe.results.typed`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from batchframe.errors import InputError
from batchframe.jobs.handle import JobHandle
from batchframe.jobs.harvest import stored_results
from batchframe.jobs.manifest import iter_shards
from batchframe.jobs.resubmit import resend
from batchframe.jobs.states import ShardState, state_of
from batchframe.jobs.store import Store
from batchframe.results.typed import PARSE_STATUSES, parse_counts, typed_frame

#: The result columns parsing reads.
ANSWER_COLUMNS = ("status", "stop_reason", "text", "tool_use")


def spec_of(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The job's structured-output record, or None for a job without a schema.

    Examples
    --------
    >>> spec_of({"request": {"structured": {"via": "tool"}}})
    {'via': 'tool'}
    >>> spec_of({}) is None
    True
    """
    return (manifest.get("request") or {}).get("structured")


def with_typed(frame: pd.DataFrame, manifest: dict[str, Any], prefix: str) -> pd.DataFrame:
    """The result columns ``frame`` plus, for a job with a schema, ``parse_status``, ``parse_error``, ``json``
    and the typed columns (all under ``prefix``); ``frame`` itself otherwise.

    Examples
    --------
    >>> with_typed(job.results(), job.manifest, "llm_").columns[-1]  # doctest: +SKIP
    'llm_stars'
    """
    spec = spec_of(manifest)
    if spec is None:
        return frame
    answers = pa.table({name: pa.array(frame[prefix + name].array) for name in ANSWER_COLUMNS})
    return pd.concat([frame, typed_frame(answers, spec, frame.index, prefix)], axis=1)


def shard_parse_counts(store: Store, manifest: dict[str, Any], results_file: str) -> dict[str, Any]:
    """The fields a harvested shard records for a job with a schema: ``parse_counts`` by parse status.

    Examples
    --------
    >>> shard_parse_counts(job.store, job.manifest, "results/a1-s0000.parquet")  # doctest: +SKIP
    {'parse_counts': {'ok': 38, 'truncated': 2}}
    """
    spec = spec_of(manifest)
    if spec is None:
        return {}
    table = store.read_table(store.job_dir(manifest["name"]) / results_file, columns=list(ANSWER_COLUMNS))
    return {"parse_counts": parse_counts(table, spec)}


def count_linked(store: Store, manifest: dict[str, Any]) -> bool:
    """Record ``parse_counts`` on harvested shards that lack them (answers copied from another job of the
    store, :mod:`batchframe.jobs.links`); returns whether any changed (then save the manifest).

    Examples
    --------
    >>> count_linked(job.store, job.manifest)  # doctest: +SKIP
    False
    """
    if spec_of(manifest) is None:
        return False
    changed = False
    for _, shard in iter_shards(manifest):
        if state_of(shard) is ShardState.HARVESTED and "parse_counts" not in shard and shard.get("results_file"):
            shard.update(shard_parse_counts(store, manifest, shard["results_file"]))
            changed = True
    return changed


def parse_statuses(store: Store, manifest: dict[str, Any]) -> np.ndarray:
    """Each row's parse status at its latest attempt (object array, None where nothing was parsed).

    Examples
    --------
    >>> parse_statuses(job.store, job.manifest)[:3]  # doctest: +SKIP
    array(['ok', 'truncated', None], dtype=object)
    """
    results = with_typed(stored_results(store, manifest, price_for=lambda _model: None, prefix=""), manifest, "")
    return results["parse_status"].to_numpy(dtype=object, na_value=None)


def failed_positions(statuses: np.ndarray, outcome: dict[str, np.ndarray]) -> np.ndarray:
    """Positions of the rows that carry their own request and whose latest, harvested answer did not parse
    (a row answered through an identical row's request gets the new answer when that row is resent).

    Examples
    --------
    >>> outcome = {"harvested": np.array([True, True, True]), "attempt": np.array([1, 1, 0])}
    >>> failed_positions(np.array(["ok", "truncated", "truncated"], dtype=object), outcome).tolist()
    [1]
    """
    failed = np.isin(statuses.astype(str), [s for s in PARSE_STATUSES if s != "ok"])
    own = outcome["harvested"] & (outcome["attempt"] > 0)
    return np.flatnonzero(failed & own)


def resubmit_parse_failures(job: JobHandle, *, max_tokens: int | None = None) -> int:
    """Send again, as a new attempt, only the rows whose answer did not parse; returns how many.

    ``max_tokens`` replaces each request's limit (e.g. for rows ``truncated``). The attempt records
    ``reason: "parse_failures"``, the new ``max_tokens`` and, in ``replaces_parse``, the parse statuses it
    takes back. See :meth:`batchframe.Job.retry`.

    Examples
    --------
    >>> resubmit_parse_failures(job, max_tokens=256)  # doctest: +SKIP
    2
    """
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int | np.integer)
                                   or max_tokens < 1):
        raise InputError(f"max_tokens must be a whole number >= 1, got {max_tokens!r}")
    job.refresh()
    if spec_of(job.manifest) is None:
        raise InputError(f"job {job.name!r} has no schema, so no answer is parsed; use retry() for failed requests")

    def choose(manifest: dict[str, Any], outcome: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, Any]]:
        statuses = parse_statuses(job.store, manifest)
        positions = failed_positions(statuses, outcome)
        values, counts = np.unique(statuses[positions].astype(str), return_counts=True)
        return positions, {"replaces_parse": {str(v): int(c) for v, c in zip(values, counts, strict=True)}}

    return resend(job, choose, max_tokens=max_tokens, reason="parse_failures")
