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

import logging
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    NewConnectionError,
    ReadTimeoutError,
    SSLError as URLLib3SSLError,
)

from regdata.errors import InsecureRequest, MalformedContent, RequestTimeout, TLSError, TransportError
from regdata.oci.reference import is_loopback_host
from regdata.transport.base import Request, Response, host_key
from regdata.transport.proxy import Proxies, proxy_host, split_credentials
from regdata.transport.trust import HostTrust, Trust, tls_context

__all__ = ["HTTPTransport", "Timeouts", "tls_context"]

logger = logging.getLogger("regdata.transport")

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


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    """An HTTPS pool that leaves warnings to us: an insecure host is named once, not per request."""

    def _validate_conn(self, conn: Any) -> None:
        urllib3.HTTPConnectionPool._validate_conn(self, conn)
        if conn.is_closed:
            conn.connect()


@dataclass
class HTTPTransport:
    """Sends requests over one connection pool per host (scheme, host and port).

    ``pool_size`` is the number of connections kept per host: it should match
    the host's concurrency so no request waits for a socket.  ``trust`` says
    how each host's certificate is checked and which client certificate it
    is shown (default: ``verify`` and ``insecure_hosts`` over the system
    store, certifi and certs.d); ``proxies`` which forward proxy, if any, a
    request goes through (default: none; the Registry reads the environment).
    """

    timeouts: Timeouts = field(default_factory=Timeouts)
    verify: bool | str = True
    insecure_hosts: frozenset[str] = frozenset()
    pool_size: int = 8
    trust: Trust | None = None
    proxies: Proxies | None = None
    _pools: dict[str, urllib3.HTTPConnectionPool] = field(default_factory=dict, repr=False)
    _managers: dict[str, urllib3.ProxyManager] = field(default_factory=dict, repr=False)
    _warned: set[str] = field(default_factory=set, repr=False)
    _routes: dict[str, str | None] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.trust is None:
            self.trust = Trust(verify=self.verify, insecure=self.insecure_hosts)

    def proxy_for(self, url: str) -> str | None:
        """``host:port`` of the proxy a request to ``url`` goes through (no credentials), or None."""
        proxy = self._route(url)
        return proxy_host(proxy) if proxy else None

    def _route(self, url: str) -> str | None:
        """The proxy URL for ``url``'s scheme and host, decided once per host (NO_PROXY costs 20 µs)."""
        if not self.proxies:
            return None
        origin = url.split("/", 3)[2] if url.count("/") >= 2 else url
        key = url.partition(":")[0] + "://" + origin
        if key not in self._routes:
            self._routes[key] = self.proxies.proxy_for(url)
        return self._routes[key]

    def pool(self, url: str) -> urllib3.HTTPConnectionPool:
        """The connection pool for this URL's host, made on first use."""
        parts = urlsplit(url)
        proxy = self._route(url)
        key = f"{parts.scheme}://{host_key(url)}" + (f" via {proxy_host(proxy)}" if proxy else "")
        pool = self._pools.get(key)
        if pool is not None:
            return pool
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                host, port = parts.hostname or "", parts.port
                assert self.trust is not None
                kw: dict[str, object] = {"maxsize": self.pool_size, "block": False, "retries": False}
                if parts.scheme == "https":
                    trust = self.trust.for_host(parts.netloc)
                    kw.update(
                        ssl_context=_trust(trust),
                        cert_reqs="CERT_NONE" if trust.verify is False else "CERT_REQUIRED",
                        assert_hostname=False if trust.verify is False else None,
                    )
                if proxy:
                    pool = self._manager(proxy).connection_from_host(host, port, parts.scheme, pool_kwargs=kw)
                elif parts.scheme == "https":
                    pool = _HTTPSPool(host, port, **kw)  # type: ignore[arg-type]
                else:
                    pool = urllib3.HTTPConnectionPool(host, port, **kw)  # type: ignore[arg-type]
                self._pools[key] = pool
            return pool

    def _manager(self, proxy: str) -> urllib3.ProxyManager:
        """One ProxyManager per proxy; its credentials go in ``Proxy-Authorization`` and nowhere else."""
        manager = self._managers.get(proxy)
        if manager is None:
            bare, userinfo = split_credentials(proxy)
            headers = urllib3.make_headers(proxy_basic_auth=userinfo) if userinfo else None
            manager = urllib3.ProxyManager(bare, num_pools=64, proxy_headers=headers)
            manager.pool_classes_by_scheme = {"http": urllib3.HTTPConnectionPool, "https": _HTTPSPool}
            self._managers[proxy] = manager
        return manager

    def close(self) -> None:
        """Close every pooled connection."""
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
            managers, self._managers = list(self._managers.values()), {}
        for pool in pools:
            pool.close()
        for manager in managers:
            manager.clear()

    def allows_plain_http(self, host: str) -> bool:
        """Plain HTTP is for loopback and the hosts the user named insecure."""
        return is_loopback_host(host) or host.lower() in self.insecure_hosts

    def warn_insecure(self, host: str) -> None:
        """Say once per host that an insecure registry is read unverified (Docker says it at start)."""
        if host.lower() not in self.insecure_hosts:
            return
        with self._lock:
            if host.lower() in self._warned:
                return
            self._warned.add(host.lower())
        logger.warning(
            "%s is an insecure registry: its TLS certificate is not verified and plain HTTP is allowed", host
        )

    def _tls_error(self, exc: BaseException, where: str, host: str) -> TLSError:
        """The TLSError of a failed handshake, in words: a server asking for a client certificate says so."""
        text = _reason(exc)
        upper = text.upper()
        # The server's alert, after our half of the handshake: it wants a (different) client certificate.
        if "ALERT" in upper and any(
            a in upper for a in ("CERTIFICATE_REQUIRED", "BAD_CERTIFICATE", "UNKNOWN_CA", "HANDSHAKE_FAILURE")
        ):
            assert self.trust is not None
            if self.trust.for_host(host).cert is None:
                text = f"the server requires a client certificate and none is set for {host} ({text})"
            else:
                text = f"the server refused the client certificate set for {host} ({text})"
            return TLSError(f"TLS failure for {where}: {text}", client_certificate=True)
        return TLSError(f"TLS failure for {where}: {text}", verify_failed=_verify_failed(exc))

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
        pool = self.pool(request.url)
        if parts.scheme == "http" and getattr(pool, "proxy", None) is not None:
            target = f"http://{parts.netloc}{target}"  # a forward proxy takes the absolute form
        try:
            raw = pool.urlopen(
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
            raise self._tls_error(exc, where, parts.netloc) from None
        except urllib3.exceptions.ProxyError as exc:
            if _is_tls(exc):
                raise self._tls_error(exc, where, parts.netloc) from None
            via = self.proxy_for(request.url)
            cause = getattr(exc, "original_error", None) or exc
            raise TransportError(f"proxy {via} failed for {where}: {_reason(cause)}") from None
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
        return Response(
            status=raw.status, headers=raw.headers, body=content, url=request.url, request=request
        )

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
                    raise MalformedContent(f"{where}: body is over the {request.max_bytes}-byte cap")
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
        "CERTIFICATE_VERIFY_FAILED" in str(exc) or "certificate verify failed" in str(exc)
    )


def _is_tls(exc: BaseException) -> bool:
    causes = [exc, *exc.args, exc.__context__, exc.__cause__]
    return any(isinstance(c, ssl.SSLError | URLLib3SSLError) for c in causes)


def _trust(trust: HostTrust) -> ssl.SSLContext:
    """:func:`tls_context`, or an error that says the CA bundle is the problem (no retry mends it)."""
    try:
        return tls_context(trust)
    except (OSError, ssl.SSLError) as exc:
        what = (
            ", ".join(
                [str(trust.verify)] * (trust.verify not in (True, False))
                + list(trust.cas)
                + list(trust.cert or ())
            )
            or "(the system store)"
        )
        which = "CA certificates or the client certificate" if trust.cert else "CA certificates"
        error = TransportError(f"cannot load the {which} {what}: {_reason(exc)}")
        error.temporary = False
        raise error from None


def _reason(exc: BaseException) -> str:
    """A short reason, with nothing of the URL's query string in it."""
    text = str(exc.__context__ or exc) if not str(exc) else str(exc)
    text = text.split("?", 1)[0]
    return text[:200]
