"""The one wave scheduler: which unsent shards of a job may be sent now. Pure: manifest in, shards out.

A job sends its shards in waves when its manifest has ``"waves"`` (``budget_usd``, ``max_in_flight``,
``prime``); without it every unsent shard goes at once, as before. Shards are considered in order, and the
first that may not go holds back the ones after it, so a job advances front to back:

* ``max_in_flight``: the requests of the shards queued at the provider (``creating`` or ``submitted``)
  plus the shard's own stay within it;
* ``budget_usd``: the spent cost (harvested shards: their priced cost, or their worst case when no price
  is known) plus the committed worst case (shards sent and not harvested) plus the shard's worst case
  (``worst_usd``, recorded at submit) stay within the cap;
* ``prime``: the other shards of attempt 1 wait until its shard 0 (one request that writes the prompt
  cache) has ended.

Shards held back stay ``planned``; ``Job.send_unsent`` (called by ``wait()`` and by each ``refresh()`` of
a job with waves) sends them as earlier ones end.
"""

from __future__ import annotations

from typing import Any

from batchframe.jobs.manifest import COMMITTED, Spend, iter_shards, spend
from batchframe.jobs.states import SENDABLE, ShardState, state_of

__all__ = ["Spend", "next_wave", "spend", "stalled"]

#: Shards whose batch is queued at the provider.
_QUEUED = frozenset({ShardState.CREATING, ShardState.SUBMITTED})


def next_wave(manifest: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """The unsent shards (``planned`` or ``failed``) that may be sent now, as ``(attempt, shard)``.

    Examples
    --------
    >>> shard = lambda i, state: {"index": i, "n_requests": 10, "state": state}
    >>> m = {"waves": {"max_in_flight": 10}, "attempts": [{"attempt": 1, "shards": [
    ...     shard(0, "submitted"), shard(1, "planned"), shard(2, "planned")]}]}
    >>> next_wave(m)
    []
    >>> m["attempts"][0]["shards"][0]["state"] = "ended"
    >>> [s["index"] for _, s in next_wave(m)]
    [1]
    """
    unsent = [(a, s) for a, s in iter_shards(manifest) if state_of(s) in SENDABLE]
    rules = manifest.get("waves")
    if not rules:
        return unsent
    queued = sum(s["n_requests"] for _, s in iter_shards(manifest) if state_of(s) in _QUEUED)
    money = spend(manifest)
    committed = money.spent + money.committed
    wave = []
    for attempt, shard in unsent:
        if rules.get("prime") and attempt == 1 and shard["index"] > 0 and not _primed(manifest):
            break
        if rules.get("max_in_flight") is not None and queued + shard["n_requests"] > rules["max_in_flight"]:
            break
        worst = float(shard.get("worst_usd") or 0.0)
        if money.cap is not None and committed + worst > money.cap + 1e-12:
            break
        wave.append((attempt, shard))
        queued += shard["n_requests"]
        committed += worst
    return wave


def stalled(manifest: dict[str, Any]) -> bool:
    """True when unsent shards wait and nothing is in flight that could free room: only the budget can
    hold them, and it never will (raise the cap to go on).

    Examples
    --------
    >>> m = {"waves": {"budget_usd": 0.5}, "attempts": [{"attempt": 1, "shards": [
    ...     {"index": 0, "n_requests": 1, "state": "harvested", "cost_usd": 0.4},
    ...     {"index": 1, "n_requests": 1, "state": "planned", "worst_usd": 0.4}]}]}
    >>> stalled(m)
    True
    """
    if not manifest.get("waves") or next_wave(manifest):
        return False
    states = [state_of(s) for _, s in iter_shards(manifest)]
    return any(s in SENDABLE for s in states) and not any(s in COMMITTED for s in states)


def _primed(manifest: dict[str, Any]) -> bool:
    first = manifest["attempts"][0]["shards"][0]
    return state_of(first) in (ShardState.ENDED, ShardState.HARVESTED)
