"""Named, append-only steps that bring a manifest written by an older batchframe to :data:`FORMAT`.

A manifest is migrated when it is read (:meth:`batchframe.jobs.store.Store.read_manifest`) and stored in
the new format at the next write. A manifest newer than this code is refused: guessing could lose a batch id.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from batchframe.errors import JobError
from batchframe.jobs.outcomes import Reader, latest_results, previous_counts, requests_file


def _neutral_remote_state(manifest: dict[str, Any], read: Reader | None) -> None:
    """Format 2: a shard's remote snapshot is provider-neutral (``remote_state``, not Anthropic's
    ``processing_status``)."""
    for attempt in manifest.get("attempts") or ():
        for shard in attempt.get("shards") or ():
            if "processing_status" in shard:
                shard["remote_state"] = shard.pop("processing_status")


def _retry_replaces(manifest: dict[str, Any], read: Reader | None) -> None:
    """Format 3: every retry attempt says which states its rows replace (``replaces``), so that the job's
    row counts come from the manifest alone. Jobs retried before it was recorded get it from their files."""
    attempts = manifest.get("attempts") or ()
    missing = [i for i, a in enumerate(attempts) if a["attempt"] > 1 and "replaces" not in a]
    if not missing:
        return
    if read is None:
        raise JobError(f"job {manifest.get('name')!r}: its retries predate row counts; open it from its store")
    for i in missing:
        before = latest_results({**manifest, "attempts": attempts[:i]}, read)
        sent = read(requests_file(attempts[i]["attempt"]), ["position", "shard"])
        positions = sent.column("position").to_numpy()[sent.column("shard").to_numpy() >= 0]
        attempts[i]["replaces"] = previous_counts(before, positions)


#: ``(format it produces, name, step)``, in order. Append only; never edit a step that has shipped.
MIGRATIONS: tuple[tuple[int, str, Callable[[dict[str, Any], Reader | None], None]], ...] = (
    (2, "neutral-remote-state", _neutral_remote_state),
    (3, "retry-replaces", _retry_replaces),
)
#: The manifest format this code writes.
FORMAT = MIGRATIONS[-1][0]


def migrate(manifest: dict[str, Any], read: Reader | None = None) -> dict[str, Any]:
    """``manifest`` brought to :data:`FORMAT` in place (and returned); ``read`` opens the job's files for a
    step that needs them (see :func:`batchframe.jobs.outcomes.store_reader`).

    Examples
    --------
    >>> m = migrate({"format": 1, "name": "j", "attempts": [{"attempt": 1,
    ...                                                       "shards": [{"processing_status": "ended"}]}]})
    >>> m["format"], m["attempts"][0]["shards"][0]
    (3, {'remote_state': 'ended'})
    """
    found = int(manifest.get("format") or 1)
    if found > FORMAT:
        raise JobError(
            f"job {manifest.get('name')!r} was written by a newer batchframe (manifest format {found}, this "
            f"version reads up to {FORMAT}); upgrade batchframe to open it"
        )
    for produces, _name, step in MIGRATIONS:
        if found < produces:
            step(manifest, read)
            manifest["format"] = found = produces
    return manifest
