"""The instrumented layer: records every HTTP attempt in the request log."""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import RegdataError
from ..requestlog import RequestLog, RequestRecord
from .base import Request, Response, Transport

__all__ = ["LogTransport"]


@dataclass
class LogTransport:
    """Times each request and writes a row to ``log``; passes everything through."""

    inner: Transport
    log: RequestLog

    def send(self, request: Request) -> Response:
        """Send through ``inner`` and record the outcome, success or not."""
        request.context.check()  # a request never sent is not a row
        started = time.time()
        clock = time.perf_counter()
        host = urlsplit(request.url).netloc
        try:
            response = self.inner.send(request)
        except RegdataError as exc:
            self._write(request, host, started, clock, None, None, str(exc))
            raise
        error = None if response.ok or response.status in (301, 302, 303, 307, 308) else (
            f"HTTP {response.status}"
        )
        self._write(request, host, started, clock, response.status, len(response.body), error)
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
    ) -> None:
        self.log.record(
            RequestRecord(
                started=started,
                host=host,
                repository=request.repository,
                kind=request.kind,
                method=request.method,
                status=status,
                duration_s=time.perf_counter() - clock,
                bytes=size,
                attempt=request.attempt,
                cache=request.cache,
                error=error,
            )
        )
