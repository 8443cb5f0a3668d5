"""Shared cache: memcached through pymemcache, for several processes or machines at once.

Servers come from a plain list (``memcached://h:p,h:p``) or, like Flux v1's
memcache client, from the DNS SRV records ``_memcached._tcp.<service>``
(``memcached+srv://service``), looked up again every ``update_interval``
seconds, so servers that come and go (a Kubernetes StatefulSet scaled up)
are followed.

Keys go to servers by rendezvous hashing, the hash of pymemcache's
``HashClient`` (``murmur3_32("<host>:<port>-<key>")``), so another
pymemcache user over the same list finds the same keys where we put them.
The ring is our own rather than a ``HashClient`` because ``HashClient``
answers a miss in silence while a failed server waits for its retry (the
cache could not count the failure), keeps its failure bookkeeping without
a lock (the scan calls from many threads), and cannot take a new server
list at once (the SRV refresh).  A server that fails is left out for
``dead_timeout`` seconds, its keys going to the others; with no server up,
every call fails at once, without waiting on the network.

Values over memcached's item limit (1 MiB by default) are split into
chunks stored under keys derived from the entry's key and content; the
entry then holds a small head naming them, checked by length and SHA-256
on the way out, so a torn or half-evicted value is a miss, never a wrong
answer.  A value needing more than ``max_chunks`` chunks is skipped and
counted in ``oversize``: never an error.

Every call to a server is recorded (method, server, duration, outcome) in
an :class:`~regdata.cache.instrument.OperationLog`; :meth:`MemcachedBackend.stats`
sums it up.

(Over 500 lines, formatted: one backend's hash ring, value chunking and
failure handling change together; the SRV lookup is apart, in ``cache/srv.py``.)
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from pymemcache.client.base import PooledClient
from pymemcache.client.murmur3 import murmur3_32
from pymemcache.exceptions import MemcacheError, MemcacheServerError, MemcacheUnexpectedCloseError

from regdata.cache.backends.base import BackendUnavailable
from regdata.cache.instrument import CacheOperation, OperationLog
from regdata.cache.srv import SrvRecord, query_srv

__all__ = [
    "DEFAULT_UPDATE_INTERVAL",
    "ITEM_LIMIT",
    "MAX_CHUNKS",
    "MemcachedBackend",
    "SrvResolver",
    "srv_name",
]

log = logging.getLogger("regdata.cache.memcached")

T = TypeVar("T")

# memcached's default item limit is 1 MiB for key, value and an item header of
# about 50 bytes; a value of at most this many bytes always fits.
ITEM_LIMIT = 1024 * 1024 - 2048
# 32 chunks of 1 MiB: beyond any manifest (4 MiB cap) or config (16 MiB cap) we read.
MAX_CHUNKS = 32
# Flux v1 looked its SRV records up again every minute.
DEFAULT_UPDATE_INTERVAL = 60.0
DEFAULT_DEAD_TIMEOUT = 5.0
# memcached reads an expiry over 30 days as an absolute Unix time.
_RELATIVE_EXPIRY_MAX = 30 * 24 * 3600
_CHUNK_HEAD = b"RDCHUNK1\n"

#: Looks up SRV records by full name (``_memcached._tcp.<service>``).
SrvResolver = Callable[[str], Sequence[SrvRecord]]

# Failures that say the server is gone or stuck (refused, reset, timed out, closed
# mid-answer), as opposed to one bad request: only these put a server aside.
_DOWN = (OSError, MemcacheUnexpectedCloseError)
# Connections per server at most: one per thread asking at once.  pymemcache's pool refuses
# one more (a RuntimeError, so a miss and a lost write); get_repositories runs about a hundred
# threads (16 repositories per host, each scan a few): with 32, the likely cause of a second
# run's 47 requests in one benchmark run under load.
MAX_POOL_SIZE = 256


def srv_name(service: str) -> str:
    """``_memcached._tcp.<service>``, the name Flux v1 looked up."""
    return f"_memcached._tcp.{service.strip('.')}"


def _node(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _chunk_keys(key: str, sha: str, count: int) -> list[str]:
    # The entry's key is in the hash: chunks of one credential's entry are never
    # another's, even for the same content.
    base = hashlib.sha256(f"{key}\x00{sha}".encode()).hexdigest()[:40]
    return [f"rdchunk:{base}:{i}" for i in range(count)]


class MemcachedBackend:
    """A byte store over one or more memcached servers (see the module docs).

    Args:
        servers: ``(host, port)`` pairs; or
        service: a DNS name whose ``_memcached._tcp`` SRV records list the servers.
        srv_resolver: looks SRV records up (default: :func:`regdata.cache.srv.query_srv`;
            tests give their own).
        update_interval: seconds between SRV lookups.
        timeout, connect_timeout: seconds per call and per connection.
        dead_timeout: seconds a failed server is left out.
        item_limit: the largest value stored as one item; larger ones are chunked.
        max_chunks: the most chunks one value may take; larger values are skipped.
        operations: where calls are recorded (a new ring by default).
        on_operation: called with each :class:`~regdata.cache.instrument.CacheOperation`.
    """

    name = "memcached"

    def __init__(
        self,
        servers: Iterable[tuple[str, int]] | None = None,
        *,
        service: str | None = None,
        srv_resolver: SrvResolver | None = None,
        update_interval: float = DEFAULT_UPDATE_INTERVAL,
        timeout: float = 0.5,
        connect_timeout: float = 0.5,
        dead_timeout: float = DEFAULT_DEAD_TIMEOUT,
        item_limit: int = ITEM_LIMIT,
        max_chunks: int = MAX_CHUNKS,
        max_pool_size: int = MAX_POOL_SIZE,
        operations: OperationLog | None = None,
        on_operation: Callable[[CacheOperation], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (servers is None) == (service is None):
            raise ValueError("MemcachedBackend needs servers or a service, not both")
        if item_limit < 1 or max_chunks < 1:
            raise ValueError("item_limit and max_chunks must be positive")
        self.service = service
        self._fixed = None if servers is None else [(h, int(p)) for h, p in servers]
        if self._fixed is not None and not self._fixed:
            raise ValueError("MemcachedBackend needs at least one server")
        self._resolve_srv: SrvResolver = srv_resolver or query_srv
        self.update_interval = update_interval
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.dead_timeout = dead_timeout
        self.item_limit = item_limit
        self.max_chunks = max_chunks
        self.max_pool_size = max_pool_size
        self.operations = operations if operations is not None else OperationLog()
        if on_operation is not None:
            self.operations.on_operation = on_operation
        self._clock = clock
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._clients: dict[str, PooledClient] = {}
        self._addresses: dict[str, tuple[str, int]] = {}
        self._dead: dict[str, float] = {}
        self._next_refresh = 0.0
        self._refresh_failing = False
        #: Values skipped as too large, chunked values stored, chunked reads found torn.
        self.oversize = 0
        self.chunked = 0
        self.torn = 0
        #: SRV lookups done and failed.
        self.refreshes = 0
        self.refresh_errors = 0
        if self._fixed is not None:
            self._install(self._fixed)

    # -- servers ----------------------------------------------------------------

    @property
    def servers(self) -> list[tuple[str, int]]:
        """The servers in use now."""
        with self._lock:
            return sorted(self._addresses.values())

    def _install(self, servers: Sequence[tuple[str, int]]) -> None:
        wanted = {_node(h, p): (h, p) for h, p in servers}
        with self._lock:
            gone = [self._clients.pop(n) for n in list(self._clients) if n not in wanted]
            for name in list(self._addresses):
                if name not in wanted:
                    del self._addresses[name]
                    self._dead.pop(name, None)
            for name, address in wanted.items():
                if name not in self._clients:
                    self._clients[name] = PooledClient(
                        address,
                        timeout=self.timeout,
                        connect_timeout=self.connect_timeout,
                        max_pool_size=self.max_pool_size,
                        no_delay=True,
                    )
                    self._addresses[name] = address
        for client in gone:
            client.close()

    def refresh(self) -> list[tuple[str, int]]:
        """Look the SRV records up now and use the servers they name; raises when that fails.

        On failure the servers in use stay as they were.  A plain server list
        has nothing to look up.
        """
        if self.service is None:
            return self.servers
        started, clock = time.time(), time.perf_counter()
        name = srv_name(self.service)
        try:
            records = list(self._resolve_srv(name))
            found = sorted({(r.target.rstrip("."), r.port) for r in records if r.target.strip(".")})
            if not found:
                raise BackendUnavailable(f"no memcached servers in the SRV records of {name}")
        except Exception as exc:
            self._count("refresh_errors")
            self._record(started, clock, None, "refresh", "error", key=name, error=exc)
            raise
        self._count("refreshes")
        self._record(started, clock, None, "refresh", "ok", keys=len(found), key=name)
        before = self.servers
        self._install(found)
        if found != before:
            log.info("memcached servers of %s: %s", name, ", ".join(_node(h, p) for h, p in found))
        return found

    def _maybe_refresh(self) -> None:
        if self.service is None or self._clock() < self._next_refresh:
            return
        # The first lookup is waited for; later ones are done by one caller while the
        # others go on with the servers they have.
        with self._lock:
            have = bool(self._clients)
        if not self._refresh_lock.acquire(blocking=not have):
            return
        try:
            if self._clock() < self._next_refresh:
                return
            try:
                self.refresh()
                self._next_refresh = self._clock() + self.update_interval
                if self._refresh_failing:
                    log.info("memcached SRV lookup of %s works again", self.service)
                self._refresh_failing = False
            except Exception as exc:
                # Retry sooner than the interval: a failed lookup may leave no server at all.
                self._next_refresh = self._clock() + min(self.update_interval, self.dead_timeout)
                if not self._refresh_failing:
                    log.warning(
                        "memcached SRV lookup of %s failed (%s); keeping %d server(s)",
                        srv_name(self.service),
                        exc,
                        len(self.servers),
                    )
                self._refresh_failing = True
        finally:
            self._refresh_lock.release()

    def _pick(self, key: str) -> tuple[str, PooledClient]:
        """The server for ``key`` among those up: rendezvous hashing, as HashClient does."""
        self._maybe_refresh()
        now = self._clock()
        with self._lock:
            best: tuple[int, str] | None = None
            for name in self._clients:
                until = self._dead.get(name)
                if until is not None:
                    if until > now:
                        continue
                    del self._dead[name]  # its time out is over: try it again
                score = (murmur3_32(f"{name}-{key}"), name)
                if best is None or score > best:
                    best = score
            if best is None:
                where = self.service or ",".join(self._addresses) or "no servers"
                raise BackendUnavailable(f"no memcached server is up ({where})")
            return best[1], self._clients[best[1]]

    def _down(self, name: str) -> None:
        with self._lock:
            client = self._clients.get(name)
            if client is not None and name not in self._dead:
                log.debug("memcached %s left out for %.0fs", name, self.dead_timeout)
            self._dead[name] = self._clock() + self.dead_timeout
        if client is not None:
            # Its idle sockets died with it (a restart): drop them all, not one per failure.
            client.close()

    # -- instrumented calls ---------------------------------------------------------

    def _record(
        self,
        started: float,
        clock: float,
        server: str | None,
        method: str,
        outcome: str,
        *,
        keys: int = 1,
        size: int = 0,
        key: str | None = None,
        error: BaseException | None = None,
    ) -> None:
        self.operations.record(
            CacheOperation(
                started=started,
                backend=self.name,
                server=server,
                method=method,
                outcome=outcome,
                duration_s=time.perf_counter() - clock,
                keys=keys,
                bytes=size,
                key=key,
                error=None if error is None else f"{type(error).__name__}: {error}"[:200],
            )
        )

    def _call(
        self,
        server: str,
        method: str,
        call: Callable[[], T],
        outcome: Callable[[T], tuple[str, int]],
        *,
        keys: int = 1,
        key: str | None = None,
    ) -> T:
        started, clock = time.time(), time.perf_counter()
        try:
            result = call()
        except _DOWN as exc:
            self._down(server)
            self._record(started, clock, server, method, "error", keys=keys, key=key, error=exc)
            raise
        except MemcacheError as exc:
            self._record(started, clock, server, method, "error", keys=keys, key=key, error=exc)
            raise
        what, size = outcome(result)
        self._record(started, clock, server, method, what, keys=keys, size=size, key=key)
        return result

    # -- the Backend interface --------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        """The value, or None; a chunked value is put back together and checked."""
        server, client = self._pick(key)
        value = self._call(
            server,
            "get",
            lambda: client.get(key),
            lambda v: ("miss", 0) if v is None else ("hit", len(v)),
            key=key,
        )
        if value is None:
            return None
        data = bytes(value)
        if data.startswith(_CHUNK_HEAD):
            return self._get_chunks(key, data)
        return data

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store, for ``ttl`` seconds or with no expiry; too large a value is skipped."""
        expire = self._expire(ttl)
        if len(value) <= self.item_limit:
            self._set_one(key, value, expire)
            return
        count = math.ceil(len(value) / self.item_limit)
        if count > self.max_chunks:
            self._skip(key, len(value))
            return
        sha = hashlib.sha256(value).hexdigest()
        names = _chunk_keys(key, sha, count)
        chunks = {
            name: value[i * self.item_limit : (i + 1) * self.item_limit] for i, name in enumerate(names)
        }
        for server, client, part in self._by_server(chunks):
            failed = self._set_many(server, client, part, expire)
            if failed:
                raise MemcacheServerError(f"memcached did not store {len(failed)} chunk(s)")
        head = json.dumps({"n": count, "len": len(value), "sha256": sha}).encode()
        self._set_one(key, _CHUNK_HEAD + head, expire)
        self._count("chunked")

    def delete(self, key: str) -> None:
        """Remove ``key`` (its chunks, if any, expire or are evicted on their own)."""
        server, client = self._pick(key)
        self._call(
            server,
            "delete",
            lambda: client.delete(key, noreply=False),
            lambda found: ("ok" if found else "miss", 0),
            key=key,
        )

    def close(self) -> None:
        """Close the sockets (they open again if the backend is used again)."""
        with self._lock:
            clients = list(self._clients.values())
        for client in clients:
            client.close()

    # -- helpers ----------------------------------------------------------------------

    def _count(self, counter: str) -> None:
        with self._lock:
            setattr(self, counter, getattr(self, counter) + 1)

    def _set_one(self, key: str, value: bytes, expire: int) -> None:
        server, client = self._pick(key)
        try:
            self._call(
                server,
                "set",
                lambda: client.set(key, value, expire=expire, noreply=False),
                lambda ok: ("ok" if ok else "error", len(value)),
                key=key,
            )
        except MemcacheServerError as exc:
            # A server started with a smaller item limit (-I) than ours: skipped, not an error.
            if "too large" not in str(exc).lower():
                raise
            self._skip(key, len(value))

    def _skip(self, key: str, size: int) -> None:
        self._count("oversize")
        log.debug("memcached: %d bytes under %s not stored (over the item limit)", size, key)
        # An older value must not go on standing for the one not stored.
        self.delete(key)

    def _get_chunks(self, key: str, head: bytes) -> bytes | None:
        try:
            doc = json.loads(head[len(_CHUNK_HEAD) :])
            count, length, sha = int(doc["n"]), int(doc["len"]), str(doc["sha256"])
        except (ValueError, KeyError, TypeError, OverflowError, RecursionError):  # any bytes at all
            self._count("torn")
            return None
        if not 0 < count <= self.max_chunks:
            self._count("torn")
            return None
        names = _chunk_keys(key, sha, count)
        found: dict[str, bytes] = {}
        for server, client, part in self._by_server(dict.fromkeys(names, b"")):
            got = self._get_many(server, client, list(part))
            found.update({k.decode() if isinstance(k, bytes) else k: bytes(v) for k, v in got.items()})
        if len(found) != count:
            self._count("torn")
            return None
        data = b"".join(found[name] for name in names)
        if len(data) != length or hashlib.sha256(data).hexdigest() != sha:
            self._count("torn")
            return None
        return data

    def _set_many(self, server: str, client: PooledClient, part: dict[str, bytes], expire: int) -> list[Any]:
        size = sum(len(v) for v in part.values())

        def call() -> list[Any]:
            return list(client.set_many(part, expire=expire, noreply=False) or [])

        return self._call(
            server,
            "set_many",
            call,
            lambda failed: ("error" if failed else "ok", size),
            keys=len(part),
            key=next(iter(part)),
        )

    def _get_many(self, server: str, client: PooledClient, names: list[str]) -> dict[Any, Any]:
        def call() -> dict[Any, Any]:
            return dict(client.get_many(names))

        def outcome(got: dict[Any, Any]) -> tuple[str, int]:
            return ("hit" if len(got) == len(names) else "miss", sum(len(v) for v in got.values()))

        return self._call(server, "get_many", call, outcome, keys=len(names), key=names[0])

    def _by_server(self, items: dict[str, bytes]) -> list[tuple[str, PooledClient, dict[str, bytes]]]:
        groups: dict[str, tuple[PooledClient, dict[str, bytes]]] = {}
        for name, value in items.items():
            server, client = self._pick(name)
            groups.setdefault(server, (client, {}))[1][name] = value
        return [(server, client, part) for server, (client, part) in groups.items()]

    @staticmethod
    def _expire(ttl: float | None) -> int:
        """memcached's expiry: 0 for never, seconds up to 30 days, else a Unix time."""
        if ttl is None:
            return 0
        seconds = max(1, math.ceil(ttl))
        if seconds > _RELATIVE_EXPIRY_MAX:
            return int(time.time()) + seconds
        return seconds

    def stats(self) -> dict[str, Any]:
        """Servers, counters and per-method totals of the calls made (Flux v1's metrics)."""
        now = self._clock()
        with self._lock:
            down = sorted(n for n, until in self._dead.items() if until > now)
            up = sorted(n for n in self._clients if n not in down)
        return {
            "backend": self.name,
            "service": self.service,
            "servers": up,
            "down": down,
            "oversize": self.oversize,
            "chunked": self.chunked,
            "torn": self.torn,
            "refreshes": self.refreshes,
            "refresh_errors": self.refresh_errors,
            "operations": self.operations.summary(),
        }

    def __repr__(self) -> str:
        if self.service is not None:
            return f"MemcachedBackend(service={self.service!r})"
        return f"MemcachedBackend({self._fixed!r})"
