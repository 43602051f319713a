"""Fault injection for the local service: off by default, switched on by tests and CLI options.

A :class:`Faults` value says what goes wrong; a :class:`FaultInjector` holds the current value (it can be
swapped while the service runs) and draws the random decisions from seeded generators.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

from .errors import ServiceRequestError

_HTTP_ERRORS = {
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit (injected fault)."),
    500: ("api_error", "Internal server error (injected fault)."),
    503: ("overloaded_error", "Service unavailable (injected fault)."),
    529: ("overloaded_error", "Overloaded (injected fault)."),
}


@dataclass(frozen=True)
class Faults:
    """What the local service gets wrong on purpose.

    Parameters
    ----------
    http_error_rate : float
        Fraction of API calls answered with an error status instead of being served.
    http_error_statuses : tuple of int
        The statuses drawn from, uniformly (429 carries ``retry-after``).
    http_errors_after_processing : bool
        Serve the call first, then answer with the injected error anyway, as when a response is lost
        after the server acted: a create that "failed" did create a batch. Tests that a client never
        submits twice.
    request_error_rate : float
        Fraction of batch requests that become errored lines of ``request_error_type``.
    request_error_type : str
        Inner error type of those lines, e.g. ``"overloaded_error"`` or ``"api_error"``.
    cut_results_after_bytes : int or None
        The results stream breaks off (connection dropped) after this many bytes. The three results
        faults also hit OpenAI file downloads (``GET /v1/files/{id}/content``); every other fault applies
        to the OpenAI routes as to the Anthropic ones (request errors become error-file lines).
    slow_seconds : float
        Every API call waits this long before it is served.
    results_crlf : bool
        Results lines end with ``\r\n`` instead of ``\n`` (some servers and proxies do; a reader that
        splits 64-byte chunks on ``\n`` then sees stray ``\r``).
    results_no_content_type : bool
        The results response has no ``content-type`` header (as the live API once did).
    seed : int or None
        Seed of the random draws, for repeatable runs.
    retry_after_seconds : float
        Value of ``retry-after`` (and ``retry-after-ms``) on injected 429s.

    Examples
    --------
    >>> Faults(http_error_rate=0.5, http_error_statuses=(429,), seed=1).active
    True
    >>> Faults().active
    False
    """

    http_error_rate: float = 0.0
    http_error_statuses: tuple[int, ...] = (429, 529, 500)
    http_errors_after_processing: bool = False
    request_error_rate: float = 0.0
    request_error_type: str = "api_error"
    cut_results_after_bytes: int | None = None
    slow_seconds: float = 0.0
    results_crlf: bool = False
    results_no_content_type: bool = False
    seed: int | None = None
    retry_after_seconds: float = 1.0

    def __post_init__(self) -> None:
        for name in ("http_error_rate", "request_error_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        unknown = set(self.http_error_statuses) - set(_HTTP_ERRORS)
        if unknown:
            raise ValueError(f"http_error_statuses: unsupported {sorted(unknown)}; "
                             f"use {sorted(_HTTP_ERRORS)}")

    @property
    def active(self) -> bool:
        return bool(self.http_error_rate or self.request_error_rate or self.slow_seconds
                    or self.cut_results_after_bytes is not None or self.results_crlf
                    or self.results_no_content_type)


class FaultInjector:
    """The service's current faults, replaceable at run time with :meth:`set`.

    API calls and batch requests draw from two generators seeded from ``Faults.seed``, so with a seed the
    sequence of injected errors repeats from run to run.
    """

    def __init__(self, faults: Faults | None = None):
        self._lock = threading.Lock()
        self.set(faults or Faults())

    def set(self, faults: Faults) -> None:
        """Switch to new faults (takes effect on the next call and the next request processed)."""
        with self._lock:
            seed = faults.seed
            self._http_rng = random.Random(None if seed is None else f"{seed}-http")
            self._request_rng = random.Random(None if seed is None else f"{seed}-requests")
            self.faults = faults

    def http_error(self) -> ServiceRequestError | None:
        """The injected error for this API call, or None to serve it."""
        f = self.faults
        if not f.http_error_rate:
            return None
        with self._lock:
            if self._http_rng.random() >= f.http_error_rate:
                return None
            status = self._http_rng.choice(f.http_error_statuses)
        error_type, message = _HTTP_ERRORS[status]
        headers = {}
        if status == 429:
            headers = {"retry-after": str(max(1, round(f.retry_after_seconds))),
                       "retry-after-ms": str(int(f.retry_after_seconds * 1000))}
        return ServiceRequestError(message, status=status, error_type=error_type, headers=headers)

    def request_error(self) -> tuple[str, str] | None:
        """(error_type, message) for a batch request to fail with, or None to process it."""
        f = self.faults
        if not f.request_error_rate:
            return None
        with self._lock:
            if self._request_rng.random() >= f.request_error_rate:
                return None
        return f.request_error_type, f"Injected {f.request_error_type} for this request."
