"""The transport: small layers, each with one job and an ``inner``, stacked in :func:`build`.

Read top to bottom, a request goes::

    RedirectTransport   follows redirects; every hop goes through auth again
    AuthTransport       Authorization for the registry's own host only; 401 → token → once more
    RetryTransport      backoff on 429/502/503/504 and dropped connections, shared per host
    LimitTransport      per-host adaptive concurrency, requests per second, quota floor
    LogTransport        one request-log row per attempt
    HTTPTransport       a urllib3 connection pool per host; body caps; plain-HTTP policy

Auth sits above retry, so a flake is retried below it and a 401 fetches a
token once, above.  Token requests take the lower three layers only.

Beside the stack: :mod:`regdata.transport.scheme` probes once per host
whether a host allowed plain HTTP speaks TLS.  The submodules import one
another, never this package, which only re-exports.
"""

from __future__ import annotations

from regdata.transport.auth import AuthTransport, Challenge, TokenCache, parse_challenge
from regdata.transport.base import Request, Response, Transport
from regdata.transport.http import HTTPTransport, Timeouts
from regdata.transport.log import LogTransport
from regdata.transport.redirect import RedirectTransport
from regdata.transport.retry import (
    Clock,
    HostBackoff,
    RetryPolicy,
    RetryTransport,
    SystemClock,
    parse_retry_after,
)

__all__ = [
    "AuthTransport",
    "Challenge",
    "Clock",
    "HTTPTransport",
    "HostBackoff",
    "LogTransport",
    "RedirectTransport",
    "Request",
    "Response",
    "RetryPolicy",
    "RetryTransport",
    "SystemClock",
    "Timeouts",
    "TokenCache",
    "Transport",
    "parse_challenge",
    "parse_retry_after",
]
