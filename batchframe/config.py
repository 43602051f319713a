"""Every ``BATCHFRAME_*`` setting batchframe reads from the environment, in one place, read at call time.

==========================  =========================================================================
``BATCHFRAME_STORE``        the job store folder (default: ``jobs`` in the per-user data folder)
``BATCHFRAME_PROVIDER``     the provider when none is named (default ``anthropic``)
``BATCHFRAME_DATA_DIR``     the local service's data folder (default: a per-user folder)
``BATCHFRAME_NO_PROGRESS``  ``1`` turns bars and widgets off (text is printed once instead)
``BATCHFRAME_ORPHANS``      ``ask``: never adopt an orphan batch without the user's choice
==========================  =========================================================================

A provider's own settings (``ANTHROPIC_API_KEY``, ``ANTHROPIC_BASE_URL``) are read by that provider.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import platformdirs

log = logging.getLogger("batchframe")

_TRUE = ("1", "true", "yes")


def store_root() -> Path:
    """``$BATCHFRAME_STORE``, else ``jobs`` in the per-user data folder (``platformdirs.user_data_dir``,
    which honours ``$XDG_DATA_HOME`` on Linux), so every working directory shares one store and one
    notebook run from two folders pays once.

    A ``./.batchframe`` store left by an older batchframe is still used (with a warning on the
    ``batchframe`` logger) rather than silently ignored: its jobs would otherwise be paid again.

    Examples
    --------
    >>> str(store_root()).endswith("jobs")  # doctest: +SKIP
    True
    """
    env = os.environ.get("BATCHFRAME_STORE")
    if env:
        return Path(env)
    legacy = Path(".batchframe")
    if any(legacy.glob("*/manifest.json")):
        log.warning("using the job store %s of an older batchframe; move it to %s (or set BATCHFRAME_STORE) to "
                    "share it across working directories", legacy.resolve(), _user_store())
        return legacy
    return _user_store()


def _user_store() -> Path:
    return Path(platformdirs.user_data_dir("batchframe")) / "jobs"


def default_provider(provider: str | None = None) -> str:
    """``provider``, else ``$BATCHFRAME_PROVIDER``, else ``"anthropic"``.

    Examples
    --------
    >>> default_provider("local")
    'local'
    """
    return provider or os.environ.get("BATCHFRAME_PROVIDER") or "anthropic"


def local_data_dir() -> str | None:
    """``$BATCHFRAME_DATA_DIR``, or None (the local service then picks its per-user folder).

    Examples
    --------
    >>> local_data_dir()  # doctest: +SKIP
    '/home/me/.local/share/batchframe/service'
    """
    return os.environ.get("BATCHFRAME_DATA_DIR") or None


def progress_enabled() -> bool:
    """False when ``BATCHFRAME_NO_PROGRESS`` is set to a true value.

    Examples
    --------
    >>> isinstance(progress_enabled(), bool)
    True
    """
    return os.environ.get("BATCHFRAME_NO_PROGRESS", "").lower() not in _TRUE


def orphans_ask() -> bool:
    """True when ``BATCHFRAME_ORPHANS=ask``: a single candidate orphan batch is asked about, not adopted.

    Examples
    --------
    >>> isinstance(orphans_ask(), bool)
    True
    """
    return os.environ.get("BATCHFRAME_ORPHANS", "adopt") == "ask"
