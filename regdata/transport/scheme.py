"""Which scheme a registry host speaks: ``https``, or ``http`` for a host allowed plain HTTP that has no TLS.

Like Docker, a host allowed plain HTTP (loopback, or named insecure) is
tried with TLS first; only a server that does not speak TLS at all falls
back to HTTP.  A TLS server whose certificate fails verification is an
error, not a fall-back.  The answer is probed once per host and kept by
the :class:`~regdata.client.remote.RemoteFactory`, so a Remote made again
after a cancel does not probe again.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from regdata.context import Context
from regdata.errors import TLSError, TransportError, printable
from regdata.instrument.requestlog import RequestLog, RequestRecord
from regdata.oci.reference import is_loopback_host
from regdata.transport.base import Request, Transport
from regdata.transport.http import HTTPTransport

__all__ = ["PROBE_ATTEMPTS", "SchemeProbe"]

# The logger the probe has always written to (users' logging configuration names it).
logger = logging.getLogger("regdata.client.remote")

# Tries when the host does not answer at all (the probe goes below the retry layer).
PROBE_ATTEMPTS = 3


@dataclass
class SchemeProbe:
    """The scheme of one API host, probed on first use and then kept.

    ``http`` is the factory's HTTP layer (which knows the plain-HTTP policy and
    the proxies); without it only loopback may use plain HTTP and the probe
    goes through ``transport``.
    """

    api_host: str
    transport: Transport = field(repr=False)
    log: RequestLog = field(repr=False)
    http: HTTPTransport | None = field(default=None, repr=False)
    _scheme: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def known(self) -> str | None:
        """The scheme once probed; None before, or after a probe that failed (asked again next time)."""
        return self._scheme

    def scheme(self, context: Context | None = None) -> str:
        """``https`` or ``http``, probing the host the first time.

        A TLS hello refused is no HTTP exchange and not a row of the request
        log (it would read as a failed request on every scan of a local
        registry); the ``regdata.client.remote`` logger says it at INFO.
        """
        if self._scheme is not None:
            return self._scheme
        with self._lock:
            if self._scheme is None:
                self._scheme = self._probe(context or Context())
            return self._scheme

    def _probe(self, context: Context) -> str:
        allowed = self.http.allows_plain_http(self.api_host) if self.http else is_loopback_host(self.api_host)
        if not allowed:
            return "https"
        if self.http:
            self.http.warn_insecure(self.api_host)
        request = Request("GET", f"https://{self.api_host}/v2/", "ping", context=context)
        for attempt in range(1, PROBE_ATTEMPTS + 1):
            started, clock = time.time(), time.perf_counter()
            try:
                # Straight to HTTP: any answer at all, 401 included, says the host speaks TLS.
                response = self.http.send(request) if self.http else self.transport.send(request)
                break
            except TLSError as exc:
                if exc.verify_failed or exc.client_certificate:  # a TLS server: an error, never plain
                    raise
                logger.info(
                    "%s does not speak TLS (%s): using plain HTTP", self.api_host, printable(str(exc), 200)
                )
                return "http"
            except TransportError as exc:
                # A timeout or a reset says nothing about TLS (nor a CA file that will not load).
                if not exc.temporary or attempt == PROBE_ATTEMPTS:
                    raise
                request.context.sleep(0.2 * attempt)
        if self.http:
            # Sent below the log layer, so its row is written here; /v2/ answers 401 to ask
            # for credentials: an answer, not a failure.
            failed = not (response.ok or response.status == 401)
            self.log.record(
                RequestRecord(
                    started=started,
                    host=self.api_host,
                    repository=None,
                    kind="ping",
                    method="GET",
                    status=response.status,
                    duration_s=time.perf_counter() - clock,
                    bytes=len(response.body),
                    attempt=1,
                    cache="none",
                    error=f"HTTP {response.status}" if failed else None,
                    proxy=self.http.proxy_for(request.url),
                )
            )
        return "https"
