"""The job fingerprint: what would be paid for, so that sending the same requests again finds the job.

sha256 over the provider identity, then every request line exactly as it is sent, in order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def fingerprint(identity: str, lines: Iterable[bytes]) -> str:
    """The hex sha256 of ``identity`` and ``lines``.

    Examples
    --------
    >>> fingerprint("anthropic:https://api.anthropic.com", [b'{"custom_id":"r0"}'])[:12]
    'cbedf1084040'
    >>> fingerprint("a", [b"x"]) != fingerprint("b", [b"x"])
    True
    """
    digest = hashlib.sha256(identity.encode() + b"\0")
    for line in lines:
        digest.update(line)
        digest.update(b"\n")
    return digest.hexdigest()
