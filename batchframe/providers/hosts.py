"""Where a key may go: only to a host the user chose, and never in clear text over a network.

The user chooses a host by the environment (``ANTHROPIC_BASE_URL``, or the provider's default host when
it is unset) or by passing ``base_url=`` to a call of this process. A job's stored files are not a choice:
a job folder copied from elsewhere may name any host, so a stored host the user did not choose is refused
before anything is sent (:func:`check_stored_host`). Plain ``http://`` is refused except to a loopback
address (a local service).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from batchframe.errors import ConfigError

# Hosts passed as base_url= in this process: the user named them, so a job stored with one may use it.
_CHOSEN: set[str] = set()


def origin(url: str) -> str:
    """``scheme://host:port`` of a URL, lower-cased, with the scheme's default port made explicit.

    Examples
    --------
    >>> origin("HTTPS://API.Anthropic.com/"), origin("http://127.0.0.1:8765/v1")
    ('https://api.anthropic.com:443', 'http://127.0.0.1:8765')
    """
    parts = urlsplit(url.strip())
    scheme = (parts.scheme or "https").lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


def is_loopback(url: str) -> bool:
    """Whether the URL's host is this machine (``localhost``, 127.0.0.0/8 or ``::1``).

    Examples
    --------
    >>> is_loopback("http://127.0.0.1:8765"), is_loopback("http://10.0.0.5:8765")
    (True, False)
    """
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_transport(url: str) -> str:
    """``url``, refused (ConfigError) when it would carry a key in clear text to another machine.

    Examples
    --------
    >>> check_transport("http://127.0.0.1:8765")
    'http://127.0.0.1:8765'
    >>> check_transport("http://api.example.com")
    Traceback (most recent call last):
    ...
    batchframe.errors.ConfigError: refusing plain http:// to api.example.com: the API key would cross ...
    """
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise ConfigError(f"base URL {url!r} must start with https:// (or http:// for a loopback address)")
    if parts.scheme.lower() == "http" and not is_loopback(url):
        raise ConfigError(
            f"refusing plain http:// to {parts.hostname}: the API key would cross the network in clear text; "
            "use https://, or a loopback address for a local service"
        )
    return url


def choose(url: str) -> None:
    """Record that the user passed ``url`` as ``base_url=`` in this process.

    Examples
    --------
    >>> choose("https://gateway.example.com"); chosen("https://gateway.example.com/", environment=None)
    True
    """
    _CHOSEN.add(origin(url))


def chosen(url: str, *, environment: str | None) -> bool:
    """Whether the user chose ``url``: it is the environment's (or default) host, or was passed in this process.

    Examples
    --------
    >>> chosen("https://api.anthropic.com", environment="https://api.anthropic.com/")
    True
    """
    return origin(url) in _CHOSEN or (environment is not None and origin(url) == origin(environment))


def check_stored_host(job: str, stored: str, *, environment: str, variable: str) -> None:
    """Refuse a job's stored host that the user did not choose; the error says how to proceed.

    Examples
    --------
    >>> check_stored_host("j", "https://api.anthropic.com", environment="https://api.anthropic.com",
    ...                   variable="ANTHROPIC_BASE_URL")
    """
    if not chosen(stored, environment=environment):
        raise ConfigError(
            f"job {job!r} was sent to {stored}, but your API key goes only to {environment} ({variable} or the "
            f"default host) or to a base_url= you pass. Nothing was sent. If {stored} is a host you trust, "
            f"open the job with batchframe.open_job({job!r}, base_url={stored!r})"
        )
