"""The bottom of the chain: HTTP over pooled urllib3 connections, one pool per host.

This layer reads each body with a cap, maps every failure of the network to
our errors, and refuses plain HTTP to a host that is neither loopback nor
named insecure by the user (Docker's rule), whichever layer asked for it.

It speaks urllib3, the connection pool under requests, directly: a registry
reader needs none of what ``requests.Session.request`` does per call
(environment and cookie merging, hooks, a Response built twice), and that
machinery cost 840 µs of CPU per request against urllib3's 430 µs, which on
a scan of hundreds of small manifests is most of the client's time.  The TLS
context is made once per trust setting, not per connection: loading the CA
bundle takes 20 ms of CPU each time.
"""

from __future__ import annotations

import functools
import os
import ssl
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

import certifi
import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    NewConnectionError,
    ReadTimeoutError,
    SSLError as URLLib3SSLError,
)

from ..errors import InsecureRequest, MalformedContent, RequestTimeout, TLSError, TransportError
from ..reference import is_loopback_host
from .base import Request, Response, netloc

__all__ = ["HTTPTransport", "Timeouts"]

USER_AGENT = "regdata/0.1 (+https://github.com/regdata)"
_CHUNK = 64 * 1024
_FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Timeouts:
    """Connect and read timeouts of one request, in seconds.

    ``read`` bounds each wait for the server and also the whole body: a
    server trickling its answer cannot hold a request longer.
    """

    connect: float = 10.0
    read: float = 30.0


@functools.lru_cache(maxsize=8)
def tls_context(verify: bool | str) -> ssl.SSLContext:
    """The TLS context for a trust setting: True (certifi's CA bundle, as requests uses), a CA path, or False.

    Shared by every pool of the process: a context is safe to use from
    many threads, and loading a bundle is the expensive part.
    """
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    where = certifi.where() if verify is True else str(verify)
    if os.path.isdir(where):
        return ssl.create_default_context(capath=where)
    return ssl.create_default_context(cafile=where)


@dataclass
class HTTPTransport:
    """Sends requests over one connection pool per host (scheme, host and port).

    ``pool_size`` is the number of connections kept per host: it should match
    the host's concurrency so no request waits for a socket.
    """

    timeouts: Timeouts = field(default_factory=Timeouts)
    verify: bool | str = True
    insecure_hosts: frozenset[str] = frozenset()
    pool_size: int = 8
    _pools: dict[str, urllib3.HTTPConnectionPool] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def pool(self, url: str) -> urllib3.HTTPConnectionPool:
        """The connection pool for this URL's host, made on first use."""
        parts = urlsplit(url)
        key = f"{parts.scheme}://{netloc(url)}"
        pool = self._pools.get(key)
        if pool is not None:
            return pool
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                host, port = parts.hostname or "", parts.port
                # No proxies or netrc from the environment: a pool speaks to its host only.
                if parts.scheme == "https":
                    pool = urllib3.HTTPSConnectionPool(
                        host, port, maxsize=self.pool_size, block=False, retries=False,
                        ssl_context=_trust(self.verify),
                        cert_reqs="CERT_NONE" if self.verify is False else "CERT_REQUIRED",
                        assert_hostname=False if self.verify is False else None,
                    )
                else:
                    pool = urllib3.HTTPConnectionPool(
                        host, port, maxsize=self.pool_size, block=False, retries=False
                    )
                self._pools[key] = pool
            return pool

    def close(self) -> None:
        """Close every pooled connection."""
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()

    def allows_plain_http(self, host: str) -> bool:
        """Plain HTTP is for loopback and the hosts the user named insecure."""
        return is_loopback_host(host) or host.lower() in self.insecure_hosts

    def send(self, request: Request) -> Response:
        """Send and read the body, at most ``request.max_bytes`` of it."""
        request.context.check()
        parts = urlsplit(request.url)
        if parts.scheme not in ("http", "https"):
            raise InsecureRequest(f"refusing a request on scheme {parts.scheme!r}")
        if parts.scheme == "http" and not self.allows_plain_http(parts.netloc):
            raise InsecureRequest(
                f"refusing plain HTTP to {parts.netloc}: name it in insecure hosts to allow it"
            )
        read = self.timeouts.read
        left = request.context.remaining()
        if left is not None:
            read = max(0.001, min(read, left))
        where = f"{request.method} {parts.scheme}://{parts.netloc}{parts.path}"
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip", **request.headers}
        body = None
        if request.data is not None:
            body = urlencode(request.data)
            headers["Content-Type"] = _FORM
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        try:
            raw = self.pool(request.url).urlopen(
                request.method,
                target,
                body=body,
                headers=headers,
                retries=False,
                redirect=False,
                assert_same_host=False,
                timeout=urllib3.Timeout(connect=min(self.timeouts.connect, read), read=read),
                preload_content=False,
            )
        except URLLib3SSLError as exc:
            raise TLSError(f"TLS failure for {where}: {_reason(exc)}",
                           verify_failed=_verify_failed(exc)) from None
        except NewConnectionError as exc:  # before the timeouts: urllib3 makes it a ConnectTimeoutError
            raise TransportError(f"connection failed for {where}: {_reason(exc)}") from None
        except (ConnectTimeoutError, ReadTimeoutError, urllib3.exceptions.TimeoutError, TimeoutError):
            raise RequestTimeout(f"timed out: {where}") from None
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise TransportError(f"connection failed for {where}: {_reason(exc)}") from None
        try:
            content = self._read(raw, request, where, read)
        except BaseException:
            raw.close()  # a body left half read must not go back to the pool
            raise
        finally:
            raw.release_conn()
        return Response(status=raw.status, headers=raw.headers, body=content, url=request.url,
                        request=request)

    @staticmethod
    def _read(raw: urllib3.BaseHTTPResponse, request: Request, where: str, seconds: float) -> bytes:
        """The body, at most ``max_bytes`` of it, in at most ``seconds`` all told.

        The socket's read timeout alone bounds each read, not the body: a
        server sending a byte a second would hold the request for as long as
        it liked.  So the body is read as it arrives (``read1``) and the
        whole of it must come within the read timeout.  A body not read to
        its end leaves its connection unusable: it is closed, not pooled.
        """
        if request.method == "HEAD":
            return b""
        declared = raw.headers.get("Content-Length")
        if declared and declared.isascii() and declared.isdigit() and int(declared) > request.max_bytes:
            raw.close()
            raise MalformedContent(
                f"{where}: body of {declared} bytes is over the {request.max_bytes}-byte cap"
            )
        deadline = time.monotonic() + seconds
        parts: list[bytes] = []
        total = 0
        try:
            while True:
                chunk = raw.read1(_CHUNK, decode_content=True)
                if not chunk:
                    break
                total += len(chunk)
                if total > request.max_bytes:
                    raw.close()
                    raise MalformedContent(
                        f"{where}: body is over the {request.max_bytes}-byte cap"
                    )
                parts.append(chunk)
                if time.monotonic() > deadline:
                    raw.close()
                    raise RequestTimeout(f"timed out reading {where}: the body took over {seconds:g}s")
        except (ReadTimeoutError, urllib3.exceptions.TimeoutError, TimeoutError):
            raw.close()
            raise RequestTimeout(f"timed out reading {where}") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raw.close()
            raise TransportError(f"connection broke reading {where}: {_reason(exc)}") from None
        return b"".join(parts)


def _verify_failed(exc: BaseException) -> bool:
    """True when a TLS failure is the certificate's (not a server that speaks no TLS)."""
    causes = [exc, *exc.args, exc.__context__]
    return any(isinstance(c, (ssl.SSLCertVerificationError, ssl.CertificateError)) for c in causes) or (
        "CERTIFICATE_VERIFY_FAILED" in str(exc) or "certificate verify failed" in str(exc))


def _trust(verify: bool | str) -> ssl.SSLContext:
    """:func:`tls_context`, or an error that says the CA bundle is the problem (no retry mends it)."""
    try:
        return tls_context(verify)
    except (OSError, ssl.SSLError) as exc:
        error = TransportError(f"cannot load the CA certificates {verify!r}: {_reason(exc)}")
        error.temporary = False
        raise error from None


def _reason(exc: BaseException) -> str:
    """A short reason, with nothing of the URL's query string in it."""
    text = str(exc.__context__ or exc) if not str(exc) else str(exc)
    text = text.split("?", 1)[0]
    return text[:200]
