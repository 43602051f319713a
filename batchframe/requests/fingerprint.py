"""Fingerprints: of a job (what would be paid for, so that sending the same requests again finds the job)
and of each request (what the ledger matches, whatever row or job carries it).

The job fingerprint is sha256 over the provider identity, then every request line exactly as it is sent,
in order; a request digest is blake2b-128 over the identity and the request's parameters alone.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Sequence

#: Lines hashed per call of :func:`fingerprint`.
_CHUNK = 4096


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
    # The same bytes (each line, then a newline) fed a few thousand lines at a time: one call per line would
    # cost more than the hashing itself.
    rest = iter(lines)
    while chunk := list(itertools.islice(rest, _CHUNK)):
        digest.update(b"\n".join(chunk))
        digest.update(b"\n")
    return digest.hexdigest()


def request_digests(identity: str, params: Sequence[bytes]) -> list[bytes]:
    """The 16-byte identity of each request: who answers it (``identity``) and every parameter it sends.

    Row labels, positions and custom_ids play no part, so the same prompt under another index, name or
    frame has the same digest; that is what the store's ledger (:mod:`batchframe.jobs.ledger`) matches.
    ``params`` are the serialized Messages parameters, documents and images inline, so a changed
    attachment is a changed request.

    Examples
    --------
    >>> a, b = request_digests("local:svc", [b'{"model":"m"}', b'{"model":"m"}'])
    >>> a == b, len(a)
    (True, 16)
    >>> request_digests("other", [b'{"model":"m"}'])[0] == a
    False
    """
    prefix = hashlib.blake2b(identity.encode() + b"\0", digest_size=16)
    out = []
    for body in params:
        h = prefix.copy()
        h.update(body)
        out.append(h.digest())
    return out
