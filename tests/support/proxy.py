"""A fault-injecting HTTP proxy of our own, in front of the real registry.

For the fault shapes a real registry cannot be made to produce: 429 with
Retry-After, dropped connections, delays (a WAN), redirects to a second
host, corrupted bodies, foreign Link headers.  Each fault is a function
``(request) -> Action | None`` installed with :meth:`FaultProxy.add`; the
first that returns an action wins, otherwise the request passes through.

It listens on 127.0.0.1 only.  Everything it sees is recorded (method, path,
whether an Authorization header came, and the header itself for the
secret-leak tests).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Seen:
    """One request the proxy received."""

    method: str
    path: str
    authorization: str | None
    host_header: str | None


@dataclass
class Action:
    """What to do instead of (or on top of) passing a request through.

    ``status`` set: answer with it, ``body`` and ``headers``, without asking
    upstream.  ``drop``: close the connection with no answer.  ``delay``:
    wait first.  ``transform``: pass through, then rewrite
    (status, headers, body) on the way back.
    """

    status: int | None = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    delay: float = 0.0
    transform: Callable[[int, dict[str, str], bytes], tuple[int, dict[str, str], bytes]] | None = None


Fault = Callable[[Seen], Action | None]


class _Server(ThreadingHTTPServer):
    # socketserver's backlog of 5 makes the 6th of 32 simultaneous connections wait
    # for a SYN retransmit (1 s): a client's concurrency must not be capped here.
    request_queue_size = 128


_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
}


class FaultProxy:
    """A threaded reverse proxy to ``upstream`` (``host:port``) on a free loopback port."""

    def __init__(self, upstream: str, delay: float = 0.0) -> None:
        self.upstream = upstream
        self.delay = delay
        self.faults: list[Fault] = []
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: without this, Nagle and delayed
            # ACKs add ~40 ms to every answer and every latency figure would be the proxy's.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                proxy._serve(self)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT`` of the proxy."""
        return f"127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}"

    def add(self, fault: Fault) -> None:
        """Install a fault (tried in the order added)."""
        with self._lock:
            self.faults.append(fault)

    def clear(self) -> None:
        """Remove every fault and forget what was seen."""
        with self._lock:
            self.faults.clear()
            self.seen.clear()

    def stop(self) -> None:
        """Stop listening."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- serving ------------------------------------------------------------------

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        seen = Seen(h.command, h.path, h.headers.get("Authorization"), h.headers.get("Host"))
        with self._lock:
            self.seen.append(seen)
            faults = list(self.faults)
        action = None
        for fault in faults:
            action = fault(seen)
            if action is not None:
                break
        wait = self.delay + (action.delay if action else 0.0)
        if wait:
            time.sleep(wait)
        if action is not None and action.drop:
            h.close_connection = True
            with contextlib.suppress(OSError):
                h.connection.shutdown(socket.SHUT_RDWR)
            return
        if action is not None and action.status is not None:
            self._answer(h, action.status, action.headers, action.body)
            return
        status, headers, payload = self._forward(h, body)
        if action is not None and action.transform is not None:
            status, headers, payload = action.transform(status, headers, payload)
        self._answer(h, status, headers, payload)

    def _forward(self, h: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict[str, str], bytes]:
        host, port = self.upstream.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        headers = {k: v for k, v in h.headers.items() if k.lower() not in _HOP}
        headers["Host"] = self.upstream
        try:
            conn.request(h.command, h.path, body=body or None, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
            out = {k: v for k, v in resp.getheaders() if k.lower() not in _HOP}
            return resp.status, out, payload
        finally:
            conn.close()

    @staticmethod
    def _answer(h: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes) -> None:
        try:
            h.send_response(status)
            sent_length = False
            for key, value in headers.items():
                if key.lower() == "content-length":
                    sent_length = True
                    if h.command != "HEAD":
                        value = str(len(body))
                h.send_header(key, value)
            if not sent_length:
                h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            if h.command != "HEAD":
                h.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


def start_proxy(upstream: str, delay: float = 0.0) -> FaultProxy:
    """A running proxy in front of ``upstream``."""
    return FaultProxy(upstream, delay)


class RecordingServer:
    """A bare HTTP server that answers 200 ``{}`` and records what it was sent.

    Stands for a second host (blob storage, say) that must never see a credential.
    """

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                owner.seen.append(
                    Seen(self.command, self.path, self.headers.get("Authorization"), self.headers.get("Host"))
                )
                body = owner.body
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.body = b"{}"
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        """Stop listening."""
        self._server.shutdown()
        self._server.server_close()
