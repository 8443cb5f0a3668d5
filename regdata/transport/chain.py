"""Where the layers are stacked, in one place, so their order reads top to bottom."""

from __future__ import annotations

from collections.abc import Callable

from regdata.credentials import Credential
from regdata.instrument.requestlog import RequestLog
from regdata.transport.auth import AuthTransport
from regdata.transport.base import Transport
from regdata.transport.http import HTTPTransport
from regdata.transport.limits import Limiters, LimitTransport
from regdata.transport.log import LogTransport
from regdata.transport.redirect import RedirectTransport
from regdata.transport.retry import Clock, RetryPolicy, RetryTransport, SystemClock

__all__ = ["base_stack", "for_host"]


def base_stack(
    http: HTTPTransport,
    log: RequestLog,
    policy: RetryPolicy | None = None,
    clock: Clock | None = None,
    limiters: Limiters | None = None,
    observe: Callable[[str, bool, float], None] | None = None,
) -> RetryTransport:
    """Retry over limit over log over HTTP: shared by every host of a factory, and by token requests.

    Sharing it is what makes connection pools, backoff state and limiters
    per host rather than per repository.  The limit layer sits below retry,
    so a request waiting out its backoff holds no slot, and above the log,
    so a row's duration is the HTTP exchange alone.  ``observe`` is told of
    every attempt (kind, success, seconds), as the metrics want it.
    """
    inner: Transport = LogTransport(http, log, limiters, proxy_for=http.proxy_for, observe=observe)
    if limiters is not None:
        inner = LimitTransport(inner, limiters)
    return RetryTransport(inner, policy=policy or RetryPolicy(), clock=clock or SystemClock())


def for_host(host: str, credential: Credential, base: Transport) -> Transport:
    """The full chain for one registry host: redirects over auth over the shared base."""
    return RedirectTransport(AuthTransport(base, host, credential, token_transport=base))
