"""A registry across a WAN, on loopback: a proxy that delays every request by a fixed time.

Kernel netem is not available here, so latency is injected in user space.
The proxy must not be what limits a contender, or every result through it
is the proxy's: it runs in a process of its own (no GIL shared with the
contenders), on asyncio (one thread serves any number of connections), and
keeps its connections to the registry open between requests.  The run
checks it: the floor through it at 32 threads must be close to 4x faster
than at 8.

``python -m bench.latency --upstream 127.0.0.1:5000 --delay 0.03`` prints
``LISTENING 127.0.0.1:<port>`` and serves until stdin closes.  ``--kind
threaded`` serves with the test bed's threaded FaultProxy instead, in the
same separate process, for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LatencyProxy", "serve", "start_latency_proxy"]

_HOP = {
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"transfer-encoding",
    b"te",
    b"trailer",
    b"upgrade",
}
MAX_HEADER = 64 * 1024
_BAD_REQUEST = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Connection: close\r\n\r\n400 Bad Request"
)
MAX_BODY = 64 * 1024 * 1024


class _Upstream:
    """A pool of kept-alive connections to the registry."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def get(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while self._idle:
            reader, writer = self._idle.pop()
            if not reader.at_eof() and not writer.is_closing():
                return reader, writer
            writer.close()
        return await asyncio.open_connection(self.host, self.port)

    def put(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        if len(self._idle) < 256:
            self._idle.append(conn)
        else:
            conn[1].close()


async def _read_head(
    reader: asyncio.StreamReader, prefix: bytes = b""
) -> tuple[bytes, list[tuple[bytes, bytes]]] | None:
    try:
        raw = prefix + await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    except asyncio.LimitOverrunError:
        raise ValueError("header too long") from None
    lines = raw[:-4].split(b"\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers.append((name.strip(), value.strip()))
    return lines[0], headers


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


async def _read_body(reader: asyncio.StreamReader, headers: list[tuple[bytes, bytes]]) -> bytes:
    if (_header(headers, b"transfer-encoding") or b"").lower() == b"chunked":
        chunks: list[bytes] = []
        total = 0
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers from a registry
                return b"".join(chunks)
            total += size
            if total > MAX_BODY:
                raise ValueError("body too large")
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = int(_header(headers, b"content-length") or b"0")
    if length > MAX_BODY:
        raise ValueError("body too large")
    return await reader.readexactly(length) if length else b""


def _message(first: bytes, headers: list[tuple[bytes, bytes]], body: bytes, keep_length: bool) -> bytes:
    out = [first]
    for name, value in headers:
        if name.lower() in _HOP or (name.lower() == b"content-length" and not keep_length):
            continue
        out.append(name + b": " + value)
    if not keep_length:
        out.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(out) + b"\r\n\r\n" + body


@dataclass
class LatencyProxy:
    """Forwards HTTP/1.1 to ``upstream`` (``host:port``), each request ``delay`` seconds late."""

    upstream: str
    delay: float

    def __post_init__(self) -> None:
        host, port = self.upstream.rsplit(":", 1)
        self._pool = _Upstream(host, int(port))
        # Requests being served now and the most at once: what the registry behind saw.
        # ``GET /_bench/inflight`` answers them (``?reset=1`` starts counting afresh).
        self.in_flight = self.max_in_flight = self.served = 0

    def _stats(self, first: bytes) -> bytes:
        body = json.dumps(
            {"in_flight": self.in_flight, "max_in_flight": self.max_in_flight, "served": self.served}
        ).encode()
        if b"reset=1" in first:
            self.max_in_flight, self.served = self.in_flight, 0
        return (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one client connection, request after request (keep-alive)."""
        try:
            while True:
                first_byte = await reader.read(1)
                if not first_byte:
                    return
                if not first_byte.isupper():
                    # Not HTTP (a TLS ClientHello from a client trying https first): answer
                    # as Distribution does, at once, so the client falls back to plain HTTP.
                    writer.write(_BAD_REQUEST)
                    await writer.drain()
                    return
                head = await _read_head(reader, first_byte)
                if head is None:
                    return
                first, headers = head
                method = first.split(b" ", 1)[0].upper()
                body = await _read_body(reader, headers)
                if first.split(b" ")[1].startswith(b"/_bench/inflight"):
                    writer.write(self._stats(first))
                    await writer.drain()
                    continue
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    if self.delay:
                        await asyncio.sleep(self.delay)
                    status, rheaders, rbody = await self._forward(first, headers, body, method)
                finally:
                    self.in_flight -= 1
                    self.served += 1
                close = (_header(headers, b"connection") or b"").lower() == b"close"
                # A HEAD answer keeps the upstream Content-Length (of the body it did not send).
                writer.write(_message(status, rheaders, rbody, keep_length=method == b"HEAD"))
                await writer.drain()
                if close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _forward(
        self, first: bytes, headers: list[tuple[bytes, bytes]], body: bytes, method: bytes
    ) -> tuple[bytes, list[tuple[bytes, bytes]], bytes]:
        for attempt in range(2):  # a kept-alive connection the registry closed: once more on a new one
            conn = await self._pool.get()
            reader, writer = conn
            try:
                writer.write(_message(first, headers, body, keep_length=False))
                await writer.drain()
                head = await _read_head(reader)
                if head is None:
                    raise ConnectionError("upstream closed")
                status, rheaders = head
                code = int(status.split(b" ")[1])
                no_body = method == b"HEAD" or code in (204, 304) or 100 <= code < 200
                rbody = b"" if no_body else await _read_body(reader, rheaders)
                if (_header(rheaders, b"connection") or b"").lower() == b"close":
                    writer.close()
                else:
                    self._pool.put(conn)
                return status, rheaders, rbody
            except (ConnectionError, asyncio.IncompleteReadError):
                writer.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")


async def serve(upstream: str, delay: float, ready: asyncio.Future[int] | None = None) -> None:
    """Serve on a free loopback port until cancelled; print ``LISTENING host:port``."""
    proxy = LatencyProxy(upstream, delay)
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0, backlog=1024, limit=MAX_HEADER)
    port = server.sockets[0].getsockname()[1]
    print(f"LISTENING 127.0.0.1:{port}", flush=True)
    if ready is not None:
        ready.set_result(port)
    async with server:
        await server.serve_forever()


def _serve_threaded(upstream: str, delay: float) -> None:
    from tests.support.proxy import start_proxy

    proxy = start_proxy(upstream, delay=delay)
    print(f"LISTENING {proxy.host}", flush=True)
    sys.stdin.read()  # until the parent closes our stdin (or dies)
    proxy.stop()


def main(argv: list[str] | None = None) -> None:
    """The proxy process."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="host:port of the registry (loopback only)")
    parser.add_argument("--delay", type=float, default=0.03, help="seconds added to every request")
    parser.add_argument("--kind", choices=("asyncio", "threaded"), default="asyncio")
    args = parser.parse_args(argv)
    if not args.upstream.startswith(("127.", "localhost:")):
        parser.error("the upstream must be on loopback")
    if args.kind == "threaded":
        _serve_threaded(args.upstream, args.delay)
        return
    loop = asyncio.new_event_loop()
    task = loop.create_task(serve(args.upstream, args.delay))

    def stdin_closed() -> None:
        sys.stdin.read()
        loop.call_soon_threadsafe(task.cancel)

    threading.Thread(target=stdin_closed, daemon=True).start()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        loop.run_until_complete(task)


@dataclass
class ProxyProcess:
    """A running proxy process; ``close()`` ends it."""

    process: subprocess.Popen[str]
    host: str

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{self.host}"

    def close(self) -> None:
        """Close its stdin (it exits), then make sure."""
        with contextlib.suppress(OSError):
            if self.process.stdin:
                self.process.stdin.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_latency_proxy(upstream: str, delay: float, kind: str = "asyncio") -> ProxyProcess:
    """Start the proxy in its own process and wait for its address."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.latency",
            "--upstream",
            upstream,
            "--delay",
            str(delay),
            "--kind",
            kind,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
        env=env,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("LISTENING "):
        process.kill()
        raise RuntimeError(f"latency proxy did not start: {line!r}")
    return ProxyProcess(process, line.split()[1])


if __name__ == "__main__":
    main()
