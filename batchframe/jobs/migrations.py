"""Named, append-only steps that bring a manifest written by an older batchframe to :data:`FORMAT`.

A manifest is migrated when it is read (:meth:`batchframe.jobs.store.Store.read_manifest`) and stored in
the new format at the next write. A manifest newer than this code is refused: guessing could lose a batch id.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from batchframe.errors import JobError


def _neutral_remote_state(manifest: dict[str, Any]) -> None:
    """Format 2: a shard's remote snapshot is provider-neutral (``remote_state``, not Anthropic's
    ``processing_status``)."""
    for attempt in manifest.get("attempts") or ():
        for shard in attempt.get("shards") or ():
            if "processing_status" in shard:
                shard["remote_state"] = shard.pop("processing_status")


#: ``(format it produces, name, step)``, in order. Append only; never edit a step that has shipped.
MIGRATIONS: tuple[tuple[int, str, Callable[[dict[str, Any]], None]], ...] = (
    (2, "neutral-remote-state", _neutral_remote_state),
)
#: The manifest format this code writes.
FORMAT = MIGRATIONS[-1][0]


def migrate(manifest: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` brought to :data:`FORMAT` in place (and returned).

    Examples
    --------
    >>> m = migrate({"format": 1, "name": "j", "attempts": [{"shards": [{"processing_status": "ended"}]}]})
    >>> m["format"], m["attempts"][0]["shards"][0]
    (2, {'remote_state': 'ended'})
    """
    found = int(manifest.get("format") or 1)
    if found > FORMAT:
        raise JobError(
            f"job {manifest.get('name')!r} was written by a newer batchframe (manifest format {found}, this "
            f"version reads up to {FORMAT}); upgrade batchframe to open it"
        )
    for produces, _name, step in MIGRATIONS:
        if found < produces:
            step(manifest)
            manifest["format"] = found = produces
    return manifest
