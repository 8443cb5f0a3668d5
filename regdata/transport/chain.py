"""Where the layers are stacked, in one place, so their order reads top to bottom."""

from __future__ import annotations

from ..credentials import Credential
from ..requestlog import RequestLog
from .auth import AuthTransport
from .base import Transport
from .http import HTTPTransport
from .log import LogTransport
from .redirect import RedirectTransport
from .retry import Clock, RetryPolicy, RetryTransport, SystemClock

__all__ = ["base_stack", "for_host"]


def base_stack(
    http: HTTPTransport,
    log: RequestLog,
    policy: RetryPolicy | None = None,
    clock: Clock | None = None,
) -> RetryTransport:
    """Retry over log over HTTP: shared by every host of a factory, and by token requests.

    Sharing it is what makes connection pools and backoff state per host
    rather than per repository.
    """
    return RetryTransport(
        LogTransport(http, log), policy=policy or RetryPolicy(), clock=clock or SystemClock()
    )


def for_host(host: str, credential: Credential, base: Transport) -> Transport:
    """The full chain for one registry host: redirects over auth over the shared base."""
    return RedirectTransport(AuthTransport(base, host, credential, token_transport=base))
