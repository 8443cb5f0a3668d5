"""The bottom of the chain: requests over pooled, per-host ``requests.Session`` objects.

This layer reads each body with a cap, maps every failure of the network to
our errors, and refuses plain HTTP to a host that is neither loopback nor
named insecure by the user (Docker's rule), whichever layer asked for it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from ..errors import InsecureRequest, MalformedContent, RequestTimeout, TransportError
from ..reference import is_loopback_host
from .base import Request, Response, netloc

__all__ = ["HTTPTransport", "Timeouts"]

USER_AGENT = "regdata/0.1 (+https://github.com/regdata)"
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Timeouts:
    """Connect and read timeouts of one request, in seconds.

    ``read`` bounds each wait for the server and also the whole body: a
    server trickling its answer cannot hold a request longer.
    """

    connect: float = 10.0
    read: float = 30.0


@dataclass
class HTTPTransport:
    """Sends requests over one pooled session per host (scheme, host and port).

    ``pool_size`` is the number of connections kept per host: it should match
    the host's concurrency so no request waits for a socket.
    """

    timeouts: Timeouts = field(default_factory=Timeouts)
    verify: bool | str = True
    insecure_hosts: frozenset[str] = frozenset()
    pool_size: int = 8
    _sessions: dict[str, requests.Session] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def session(self, url: str) -> requests.Session:
        """The session for this URL's host, made on first use."""
        parts = urlsplit(url)
        key = f"{parts.scheme}://{netloc(url)}"
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                session = requests.Session()
                session.trust_env = False  # no proxies or netrc credentials from the environment
                adapter = HTTPAdapter(pool_connections=1, pool_maxsize=self.pool_size, max_retries=0)
                session.mount(f"{parts.scheme}://", adapter)
                session.headers["User-Agent"] = USER_AGENT
                session.verify = self.verify
                self._sessions[key] = session
            return session

    def close(self) -> None:
        """Close every pooled connection."""
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            session.close()

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
        try:
            raw = self.session(request.url).request(
                request.method,
                request.url,
                headers=dict(request.headers),
                data=request.data,
                timeout=(min(self.timeouts.connect, read), read),
                allow_redirects=False,
                stream=True,
            )
        except requests.exceptions.SSLError as exc:
            error = TransportError(f"TLS failure for {where}: {_reason(exc)}")
            error.temporary = False
            raise error from None
        except requests.exceptions.Timeout:
            raise RequestTimeout(f"timed out: {where}") from None
        except requests.exceptions.RequestException as exc:
            raise TransportError(f"connection failed for {where}: {_reason(exc)}") from None
        try:
            body = self._read(raw, request, where, read)
        finally:
            raw.close()
        return Response(
            status=raw.status_code,
            headers=CaseInsensitiveDict(raw.headers),
            body=body,
            url=request.url,
            request=request,
        )

    @staticmethod
    def _read(raw: requests.Response, request: Request, where: str, seconds: float) -> bytes:
        """The body, at most ``max_bytes`` of it, in at most ``seconds`` all told.

        The socket's read timeout alone bounds each read, not the body: a
        server sending a byte a second would hold the request for as long as
        it liked.  So the body is read as it arrives (``read1``) and the
        whole of it must come within the read timeout.
        """
        if request.method == "HEAD":
            return b""
        declared = raw.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > request.max_bytes:
            raise MalformedContent(
                f"{where}: body of {declared} bytes is over the {request.max_bytes}-byte cap"
            )
        deadline = time.monotonic() + seconds
        read1 = getattr(raw.raw, "read1", None)  # urllib3 2; 1.x reads in whole chunks
        chunks = iter(()) if read1 is not None else raw.iter_content(_CHUNK)
        parts: list[bytes] = []
        total = 0
        try:
            while True:
                chunk = read1(_CHUNK, decode_content=True) if read1 is not None else next(chunks, b"")
                if not chunk:
                    break
                total += len(chunk)
                if total > request.max_bytes:
                    raise MalformedContent(
                        f"{where}: body is over the {request.max_bytes}-byte cap"
                    )
                parts.append(chunk)
                if time.monotonic() > deadline:
                    raise RequestTimeout(f"timed out reading {where}: the body took over {seconds:g}s")
        except (requests.exceptions.Timeout, urllib3.exceptions.TimeoutError, TimeoutError):
            raise RequestTimeout(f"timed out reading {where}") from None
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise TransportError(f"connection broke reading {where}: {_reason(exc)}") from None
        return b"".join(parts)


def _reason(exc: BaseException) -> str:
    """A short reason, with nothing of the URL's query string in it."""
    text = str(exc.__context__ or exc) if not str(exc) else str(exc)
    text = text.split("?", 1)[0]
    return text[:200]
