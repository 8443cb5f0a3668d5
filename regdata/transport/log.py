"""The instrumented layer: records every HTTP attempt in the request log.

It sits below the retry and limit layers, so each attempt is its own row
(``attempt`` counts them), its ``duration_s`` is the HTTP exchange alone (no
backoff wait, no wait for a slot), and ``concurrency`` is what the host's
limiter allowed when it went out.  Only the host is recorded of the URL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from regdata.errors import RegdataError
from regdata.instrument.requestlog import RequestLog, RequestRecord
from regdata.transport.base import Request, Response, Transport, host_key
from regdata.transport.redirect import REDIRECTS

__all__ = ["LogTransport", "announces_quota", "is_pull"]

# The headers by which a host announces a request quota (Docker Hub: ``ratelimit-limit: 100;w=21600``).
_QUOTA_HEADERS = ("RateLimit-Limit", "X-RateLimit-Limit", "RateLimit")


def announces_quota(headers: Mapping[str, str]) -> bool:
    """Whether an answer's headers announce a quota (headers are case-insensitive)."""
    return any(headers.get(name) for name in _QUOTA_HEADERS)


def is_pull(request: Request, response: Response) -> bool:
    """A manifest GET served by a host that announces a quota: what Docker Hub counts as a pull.

    HEADs, tag lists and blobs are not pulls; nor is an answer refused (4xx, 5xx).
    """
    return (
        request.method == "GET"
        and request.kind == "manifest"
        and response.status < 400
        and announces_quota(response.headers)
    )


class ConcurrencySource(Protocol):
    """What the log asks of the limiters: the concurrency allowed now at a host."""

    def concurrency(self, host: str) -> int | None: ...


@dataclass
class LogTransport:
    """Times each request and writes a row to ``log``; passes everything through."""

    inner: Transport
    log: RequestLog
    limiters: ConcurrencySource | None = None
    #: ``url -> "host:port"`` of the proxy a request goes through, or None (the HTTP layer's).
    proxy_for: Callable[[str], str | None] | None = None
    #: Told of every attempt as ``observe(kind, success, seconds)``: the factory passes
    #: :func:`regdata.instrument.metrics.observe_request`, so this layer needs no metrics of its own.
    observe: Callable[[str, bool, float], None] | None = None

    def send(self, request: Request) -> Response:
        """Send through ``inner`` and record the outcome, success or not."""
        request.context.check()  # a request never sent is not a row
        host = host_key(request.url)
        concurrency = self.limiters.concurrency(host) if self.limiters is not None else None
        started = time.time()
        clock = time.perf_counter()
        try:
            response = self.inner.send(request)
        except RegdataError as exc:
            self._write(request, host, started, clock, None, None, str(exc), concurrency)
            raise
        error = None if response.ok or response.status in REDIRECTS else f"HTTP {response.status}"
        self._write(
            request,
            host,
            started,
            clock,
            response.status,
            len(response.body),
            error,
            concurrency,
            is_pull(request, response),
        )
        return response

    def _write(
        self,
        request: Request,
        host: str,
        started: float,
        clock: float,
        status: int | None,
        size: int | None,
        error: str | None,
        concurrency: int | None,
        pull: bool = False,
    ) -> None:
        duration = time.perf_counter() - clock
        self.log.record(
            RequestRecord(
                started=started,
                host=host,
                repository=request.repository,
                kind=request.kind,
                method=request.method,
                status=status,
                duration_s=duration,
                bytes=size,
                attempt=request.attempt,
                cache=request.cache,
                error=error,
                concurrency=concurrency,
                proxy=self.proxy_for(request.url) if self.proxy_for is not None else None,
                pull=pull,
            )
        )
        if self.observe is not None:
            self.observe(request.kind, error is None, duration)
