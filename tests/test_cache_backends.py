"""The cache backends: one suite run against each (memory, SQLite, the real memcached), then each one's own.

memcached's own: chunks over the item limit, servers that die or come back,
servers found by DNS SRV (a resolver injected, or a fake DNS server on
loopback: never the real DNS), and the record of every call.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from pymemcache.client.base import Client
from pymemcache.client.hash import HashClient
from pymemcache.exceptions import MemcacheUnexpectedCloseError

from regdata.cache import Cache
from regdata.cache.backends import Backend, BackendUnavailable, MemoryBackend
from regdata.cache.backends.memcached import MemcachedBackend, srv_name
from regdata.cache.backends.sqlite import TABLE, SQLiteBackend, default_path
from regdata.cache.instrument import CacheOperation, OperationLog
from regdata.cache.keys import MAX_KEY_LENGTH, make_key
from regdata.cache.open import open_cache
from regdata.cache.srv import (
    DNSError,
    ResolverConfig,
    SrvRecord,
    decode_srv_answer,
    encode_query,
    query_srv,
    read_resolv_conf,
)
from tests.support.registry_server import MemcachedServer

# --------------------------------------------------------------------------- helpers

# How a server that died shows: refused, reset, timed out, or closed mid-answer.
DOWN = (OSError, MemcacheUnexpectedCloseError)


def memcached_dump(address: tuple[str, int]) -> dict[str, bytes]:
    """Every key and value a memcached holds (``lru_crawler metadump``, then ``get``)."""
    keys: list[str] = []
    for _ in range(50):
        with socket.create_connection(address, timeout=5) as s:
            s.sendall(b"lru_crawler metadump all\r\n")
            data = b""
            while not (data.endswith(b"END\r\n") or data.startswith(b"BUSY") or data.startswith(b"ERROR")):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        if data.startswith(b"BUSY"):
            time.sleep(0.05)
            continue
        keys = [
            unquote(line.split()[0][4:]) for line in data.decode().splitlines() if line.startswith("key=")
        ]
        break
    client = Client(address, timeout=5)
    try:
        values = {k: client.get(k) for k in keys}
    finally:
        client.close()
    return {k: bytes(v) for k, v in values.items() if v is not None}


class Ticker:
    """A clock tests move by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


# --------------------------------------------------------------------------- the shared suite


@pytest.fixture(params=["memory", "sqlite", "memcached"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    made: Backend
    if request.param == "memory":
        made = MemoryBackend()
    elif request.param == "sqlite":
        made = SQLiteBackend(tmp_path / "cache.sqlite")
    else:
        server: MemcachedServer = request.getfixturevalue("memcached")
        made = MemcachedBackend([server.address])
    yield made
    made.close()


def test_missing_key_is_none(backend: Backend) -> None:
    assert backend.get(unique()) is None


def test_set_get_overwrite_delete(backend: Backend) -> None:
    key = unique()
    backend.set(key, b"one")
    assert backend.get(key) == b"one"
    backend.set(key, b"two", 3600)
    assert backend.get(key) == b"two"
    backend.delete(key)
    assert backend.get(key) is None
    backend.delete(key)  # deleting what is not there is no error
    backend.delete(unique())


def test_values_are_bytes_exactly(backend: Backend) -> None:
    # Every byte value, protocol look-alikes included, and the empty value.
    for value in (bytes(range(256)) * 4, b"\r\nEND\r\nVALUE x 0 1\r\n", b"", b"\x00"):
        key = unique()
        backend.set(key, value)
        assert backend.get(key) == value


def test_entries_expire(backend: Backend) -> None:
    short, lasting = unique(), unique()
    backend.set(short, b"gone soon", 1)
    backend.set(lasting, b"kept", None)
    deadline = time.monotonic() + 5.0  # memcached counts whole seconds
    while backend.get(short) is not None:
        assert time.monotonic() < deadline, "an entry with a 1 s TTL outlived 5 s"
        time.sleep(0.1)
    assert backend.get(lasting) == b"kept"


def test_longest_keys_work(backend: Backend) -> None:
    repo = "org/" + "r" * 240
    key = make_key("manifest", "registry.example.com:5000", repo, "sha256:" + "a" * 64, "a1", "f" * 16)
    assert len(key.encode()) == MAX_KEY_LENGTH
    backend.set(key, b"v")
    assert backend.get(key) == b"v"


def test_large_values_round_trip(backend: Backend) -> None:
    # 2.5 MiB: past memcached's 1 MiB item limit (chunked there), a 16 MiB config cap allows it.
    value = hashlib.sha256(b"seed").digest() * (80 * 1024 + 7)
    key = unique()
    backend.set(key, value)
    assert backend.get(key) == value


def test_threads_share_a_backend(backend: Backend) -> None:
    keys = [unique() for _ in range(8)]
    errors: list[BaseException] = []

    def work(key: str) -> None:
        try:
            for i in range(25):
                backend.set(key, f"{key}:{i}".encode())
                assert backend.get(key) == f"{key}:{i}".encode()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_closed_backend_opens_again(backend: Backend) -> None:
    key = unique()
    backend.set(key, b"v")
    backend.close()
    assert backend.get(key) == b"v"  # closing drops connections, not what is stored
    backend.set(key, b"w")
    assert backend.get(key) == b"w"


def test_policy_over_backend(backend: Backend) -> None:
    """The Cache policy over each backend: moving entries age by its clock, not the backend's."""
    clock = Ticker(time.time())
    cache = Cache(backend, ttl=60, clock=clock)
    tags, tag = unique(), unique()
    cache.put_tags(tags, "h", ["a", "b"])
    cache.put_tag(tag, "h", "sha256:" + "1" * 64)
    assert cache.get_tags(tags, "h") == ["a", "b"]
    assert cache.get_tag(tag, "h") == ("sha256:" + "1" * 64, None)
    clock.advance(61)
    assert cache.get_tags(tags, "h") is None
    assert cache.get_tag(tag, "h") == (None, "sha256:" + "1" * 64)


# --------------------------------------------------------------------------- keys


def test_keys_name_everything_and_fit() -> None:
    base = ("manifest", "127.0.0.1:5000", "team/app", "v1", "a1", "anonymous")
    key = make_key(*base)
    assert key.startswith("rd1:manifest:127.0.0.1:5000/team/app@v1:")
    variants = set()
    for i in range(len(base)):
        parts = list(base)
        parts[i] = "x" + parts[i]
        variants.add(make_key(*parts))
    assert key not in variants and len(variants) == len(base)
    # Cut short to fit, two long names still differ.
    long_a = make_key("blob", "h", "a/" + "x" * 300 + "1", "sha256:" + "0" * 64, "a1", "i")
    long_b = make_key("blob", "h", "a/" + "x" * 300 + "2", "sha256:" + "0" * 64, "a1", "i")
    assert long_a != long_b and len(long_a) == len(long_b) == MAX_KEY_LENGTH
    # Whatever a manifest says a digest is, the key holds no space, quote or control character.
    odd = make_key("blob", "h", "r", "sha256:x' OR '1'='1\r\n y\x00", "a1", "i")
    assert all(ch.isalnum() or ch in "._:/@-" for ch in odd), odd
    assert odd != make_key("blob", "h", "r", "sha256:x__OR__1___1____y_", "a1", "i")


# --------------------------------------------------------------------------- memcached: chunks


def test_memcached_chunks_values_over_the_item_limit(memcached: MemcachedServer) -> None:
    mc = MemcachedBackend([memcached.address], item_limit=1000)
    key, value = unique(), bytes(range(256)) * 15  # 3840 bytes: 4 chunks
    mc.set(key, value)
    assert mc.chunked == 1
    assert mc.get(key) == value
    raw = Client(memcached.address)
    head = raw.get(key)
    assert head.startswith(b"RDCHUNK1\n") and len(head) < 200
    mc.close()


def test_memcached_torn_chunks_are_a_miss(memcached: MemcachedServer) -> None:
    mc = MemcachedBackend([memcached.address], item_limit=1000)
    key, value = unique(), b"x" * 2500
    mc.set(key, value)
    dump = memcached_dump(memcached.address)
    chunk_keys = [k for k, v in dump.items() if k.startswith("rdchunk:") and v == b"x" * 500]
    assert len(chunk_keys) == 1  # the last chunk, 500 bytes
    raw = Client(memcached.address)
    raw.set(chunk_keys[0], b"y" * 500)  # another writer, or a half-evicted value
    assert mc.get(key) is None and mc.torn == 1
    raw.delete(chunk_keys[0])
    assert mc.get(key) is None and mc.torn == 2
    raw.set(key, b"RDCHUNK1\nnot json")  # a head that is not ours
    assert mc.get(key) is None and mc.torn == 3
    mc.set(key, value)  # written again, whole again
    assert mc.get(key) == value
    mc.close()


def test_memcached_too_large_values_are_skipped_and_counted(memcached: MemcachedServer) -> None:
    mc = MemcachedBackend([memcached.address], item_limit=1000, max_chunks=2)
    key = unique()
    mc.set(key, b"old")
    mc.set(key, b"z" * 2001)  # three chunks needed: skipped, never an error
    assert mc.oversize == 1
    assert mc.get(key) is None  # the old value does not stand in for the one not stored
    assert mc.stats()["oversize"] == 1
    mc.close()


def test_memcached_real_item_limit_is_respected(memcached: MemcachedServer) -> None:
    """With the default limit, memcached (1 MiB items) stores every chunk: nothing is refused."""
    mc = MemcachedBackend([memcached.address])
    key, value = unique(), b"q" * (3 * 1024 * 1024 + 5)
    mc.set(key, value)
    assert mc.chunked == 1 and mc.oversize == 0
    assert mc.get(key) == value
    errors = [op for op in mc.operations.records() if op.outcome == "error"]
    assert not errors
    mc.close()


def test_memcached_expiry_past_thirty_days_is_absolute() -> None:
    assert MemcachedBackend._expire(None) == 0
    assert MemcachedBackend._expire(0.2) == 1
    assert MemcachedBackend._expire(300) == 300
    week_and_ttl = 7 * 86400 + 300
    assert MemcachedBackend._expire(week_and_ttl) == week_and_ttl
    forty_days = 40 * 86400
    absolute = MemcachedBackend._expire(forty_days)
    assert abs(absolute - (time.time() + forty_days)) < 5


# --------------------------------------------------------------------------- memcached: servers


def test_memcached_spreads_keys_like_hashclient(memcached: MemcachedServer, server_factory: Any) -> None:
    other = server_factory.memcached()
    servers = [memcached.address, other.address]
    mc = MemcachedBackend(servers)
    keys = [unique() for _ in range(40)]
    for k in keys:
        mc.set(k, k.encode())
    on_first = sum(Client(memcached.address).get(k) is not None for k in keys)
    assert 0 < on_first < len(keys)  # both servers hold some
    # pymemcache's own HashClient over the same list finds every key where we put it.
    hc = HashClient(servers)
    assert all(hc.get(k) == k.encode() for k in keys)
    hc.close()
    mc.close()


def test_memcached_dead_server_is_left_out_then_retried(server_factory: Any) -> None:
    a, b = server_factory.memcached(), server_factory.memcached()
    clock = Ticker()
    mc = MemcachedBackend([a.address, b.address], dead_timeout=10, clock=clock)
    keys = [unique() for _ in range(30)]
    a_node = f"127.0.0.1:{a.port}"
    on_a = [k for k in keys if mc._pick(k)[0] == a_node]
    assert on_a
    a.kill()
    with pytest.raises(DOWN):
        mc.set(on_a[0], b"v")  # the failure is seen, not hidden as a miss
    assert mc.stats()["down"] == [a_node]
    for k in on_a:  # a's keys go to b meanwhile
        mc.set(k, b"v")
        assert mc.get(k) == b"v"
    assert Client(b.address).get(on_a[0]) == b"v"
    a.start()
    clock.advance(11)
    assert mc._pick(on_a[0])[0] == a_node  # back in the ring after its time out
    assert mc.get(on_a[0]) is None  # restarted empty, as memcached comes back
    assert mc.stats()["down"] == []
    mc.close()


def test_memcached_all_down_fails_at_once(server_factory: Any) -> None:
    a = server_factory.memcached()
    clock = Ticker()
    mc = MemcachedBackend([a.address], dead_timeout=30, clock=clock)
    mc.set("k", b"v")
    a.kill()
    with pytest.raises(DOWN):
        mc.get("k")
    before = len(mc.operations)
    with pytest.raises(BackendUnavailable, match="no memcached server is up"):
        mc.get("k")
    assert len(mc.operations) == before  # nothing was sent
    mc.close()


def test_memcached_paused_server_times_out(server_factory: Any) -> None:
    a = server_factory.memcached()
    mc = MemcachedBackend([a.address], timeout=0.2, connect_timeout=0.2)
    mc.set("k", b"v")
    a.pause()
    try:
        with pytest.raises(DOWN):
            mc.get("k")
        with pytest.raises(BackendUnavailable):
            mc.get("k")
    finally:
        a.resume()
        mc.close()


# --------------------------------------------------------------------------- memcached: SRV


def test_memcached_srv_servers_refreshed_on_interval(
    server_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = server_factory.memcached(), server_factory.memcached()
    answers: dict[str, Any] = {"records": [SrvRecord(0, 0, a.port, "127.0.0.1.")]}
    asked: list[str] = []

    def resolver(name: str) -> list[SrvRecord]:
        asked.append(name)
        found = answers["records"]
        if isinstance(found, Exception):
            raise found
        return list(found)

    clock = Ticker()
    mc = MemcachedBackend(service="memcached.flux", srv_resolver=resolver, update_interval=60, clock=clock)
    assert asked == []  # nothing is looked up before the first use
    mc.set("k", b"on a")
    assert asked == ["_memcached._tcp.memcached.flux"] == [srv_name("memcached.flux")]
    assert mc.servers == [("127.0.0.1", a.port)]
    answers["records"] = [SrvRecord(0, 0, b.port, "127.0.0.1.")]
    clock.advance(30)
    assert mc.get("k") == b"on a" and len(asked) == 1  # within the interval: no lookup
    clock.advance(31)
    assert mc.get("k") is None  # looked up again: now b, which never saw k
    assert len(asked) == 2 and mc.servers == [("127.0.0.1", b.port)]
    mc.set("k", b"on b")
    assert Client(b.address).get("k") == b"on b"

    # A failed lookup keeps the servers in use; one warning for a run of failures.
    answers["records"] = DNSError("SERVFAIL")
    with caplog.at_level(logging.WARNING, logger="regdata.cache.memcached"):
        for _ in range(3):
            clock.advance(61)
            assert mc.get("k") == b"on b"
    assert mc.refresh_errors == 3 and mc.servers == [("127.0.0.1", b.port)]
    assert len([r for r in caplog.records if "SRV lookup" in r.getMessage()]) == 1
    answers["records"] = []  # an empty answer is a failure too, not "no servers"
    clock.advance(61)
    assert mc.get("k") == b"on b" and mc.refresh_errors == 4
    stats = mc.stats()
    assert stats["refreshes"] == 2 and stats["service"] == "memcached.flux"
    assert [op.outcome for op in mc.operations.records() if op.method == "refresh"] == [
        "ok",
        "ok",
        "error",
        "error",
        "error",
        "error",
    ]
    mc.close()


def test_memcached_srv_first_lookup_failing_means_no_cache() -> None:
    def resolver(name: str) -> list[SrvRecord]:
        raise DNSError("NXDOMAIN")

    cache = Cache(MemcachedBackend(service="nowhere", srv_resolver=resolver))
    assert cache.get_blob("k") is None
    cache.put_blob("k", b"v")
    assert cache.errors == 2 and cache.hits == 0


# --------------------------------------------------------------------------- memcached: instrumentation


def test_memcached_every_call_is_recorded(memcached: MemcachedServer) -> None:
    seen: list[CacheOperation] = []
    mc = MemcachedBackend([memcached.address], on_operation=seen.append)
    key = unique()
    assert mc.get(key) is None
    mc.set(key, b"12345")
    assert mc.get(key) == b"12345"
    mc.delete(key)
    mc.delete(key)
    ops = mc.operations.records()
    assert ops == seen
    assert [(o.method, o.outcome, o.bytes) for o in ops] == [
        ("get", "miss", 0),
        ("set", "ok", 5),
        ("get", "hit", 5),
        ("delete", "ok", 0),
        ("delete", "miss", 0),
    ]
    assert all(
        o.server == f"127.0.0.1:{memcached.port}"
        and o.duration_s >= 0
        and o.key == key
        and o.backend == "memcached"
        for o in ops
    )
    summary = mc.stats()["operations"]
    assert summary["get"]["calls"] == 2 and summary["get"]["hit"] == 1 and summary["get"]["miss"] == 1
    assert summary["set"]["ok"] == 1 and summary["delete"]["calls"] == 2
    frame = mc.operations.frame()
    assert list(frame["method"]) == ["get", "set", "get", "delete", "delete"]
    mc.close()


def test_operation_log_is_bounded_and_survives_a_bad_callback() -> None:
    def broken(op: CacheOperation) -> None:
        raise RuntimeError("observer bug")

    ops = OperationLog(capacity=3, on_operation=broken)
    for i in range(5):
        ops.record(CacheOperation(0.0, "memcached", None, "get", "hit" if i % 2 else "miss", 0.001))
    assert len(ops) == 3
    assert ops.summary()["get"]["calls"] == 5  # totals outlive the ring
    ops.clear()
    assert len(ops) == 0 and ops.summary() == {}


# --------------------------------------------------------------------------- SQLite


def test_sqlite_default_path_in_the_user_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_path() == tmp_path / "xdg" / "regdata" / "cache.sqlite"
    backend = SQLiteBackend()
    assert backend.path == default_path()
    assert not backend.path.exists()  # opened on first use only
    backend.set("k", b"v")
    assert backend.path.is_file()
    backend.close()


def test_sqlite_file_is_requests_cache_format(tmp_path: Path) -> None:
    from requests_cache.backends.sqlite import SQLiteDict

    path = tmp_path / "c.sqlite"
    backend = SQLiteBackend(path)
    backend.set("rd1:blob:h/r@sha256:x:abc", b"payload", None)
    backend.set("expiring", b"e", 60)
    backend.close()
    other: Any = SQLiteDict(str(path), table_name=TABLE, serializer=None)
    assert bytes(other["rd1:blob:h/r@sha256:x:abc"]) == b"payload"
    other.close()


def test_sqlite_path_without_suffix_gets_one(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "cache")
    backend.set("k", b"v")
    assert backend.path == tmp_path / "cache.sqlite" and backend.path.is_file()
    backend.close()


def test_sqlite_two_handles_share_one_file(tmp_path: Path) -> None:
    one, two = SQLiteBackend(tmp_path / "c.sqlite"), SQLiteBackend(tmp_path / "c.sqlite")
    one.set("k", b"from one")
    assert two.get("k") == b"from one"
    two.delete("k")
    assert one.get("k") is None
    one.close()
    two.close()


def test_sqlite_expired_rows_are_pruned_on_open(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    backend = SQLiteBackend(path)
    backend.set("short", b"s", 0.01)
    backend.set("forever", b"f")
    backend.close()
    time.sleep(0.02)
    again = SQLiteBackend(path)
    assert sorted(again.keys()) == ["forever"]
    again.close()


def test_sqlite_file_stays_within_its_bound_forgetting_the_oldest_writes(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "c.sqlite", max_bytes=10_000)
    for i in range(30):
        backend.set(f"k{i}", bytes(1000))
        if i == 5:
            backend.set("k0", bytes(1000))  # written again: now among the recent
    stats = backend.stats()
    assert stats["bytes"] <= 10_000 and stats["pruned"] > 0
    kept = set(backend.keys())
    assert {"k29", "k28", "k27"} <= kept and "k1" not in kept and "k0" not in kept
    assert len(kept) * 1000 <= 10_000
    # Another process's writes count too: the total is counted again before pruning.
    other = SQLiteBackend(tmp_path / "c.sqlite", max_bytes=10_000)
    for i in range(5):
        other.set(f"o{i}", bytes(1000))
    backend.set("last", bytes(1000))
    assert sum(len(backend.get(k) or b"") for k in backend.keys()) <= 10_000  # noqa: SIM118 - not a dict
    assert backend.get("last") == bytes(1000)
    backend.close()
    other.close()


def test_sqlite_bound_from_the_url(tmp_path: Path) -> None:
    cache = open_cache(f"sqlite://{tmp_path}/c.sqlite?max_mb=0.5")
    assert cache is not None and cache.backend.max_bytes == 512 * 1024  # type: ignore[attr-defined]
    for bad in ("max_mb=0", "max_mb=lots", "size=3"):
        with pytest.raises(ValueError, match="max_mb"):
            open_cache(f"sqlite://{tmp_path}/c.sqlite?{bad}")


@pytest.fixture
def immutable(tmp_path: Path) -> Iterator[Callable[[Path], None]]:
    """Makes a path immutable (chattr +i), which even root cannot write; undone afterwards."""
    done: list[Path] = []

    def make(path: Path) -> None:
        result = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            pytest.fail(f"chattr +i {path} failed: {result.stderr.strip()}")
        done.append(path)

    yield make
    for path in done:
        subprocess.run(["chattr", "-i", str(path)], check=False)


@pytest.mark.parametrize(
    "how", ["parent is a file", "path is a directory", "not a database", "read-only directory"]
)
def test_sqlite_unwritable_is_a_warning_once_and_misses(
    how: str,
    tmp_path: Path,
    immutable: Callable[[Path], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    if how == "parent is a file":
        (tmp_path / "file").write_text("x")
        path = tmp_path / "file" / "cache.sqlite"
    elif how == "path is a directory":
        path = tmp_path / "dir.sqlite"
        path.mkdir()
    elif how == "not a database":
        path = tmp_path / "garbage.sqlite"
        path.write_bytes(b"this is not a SQLite file at all, " * 100)
    else:
        path = tmp_path / "ro" / "cache.sqlite"
        path.parent.mkdir()
        immutable(path.parent)
    cache = Cache(SQLiteBackend(path))
    with caplog.at_level(logging.WARNING, logger="regdata.cache"):
        for i in range(5):
            cache.put_blob(f"k{i}", b"v")
            assert cache.get_blob(f"k{i}") is None
    assert cache.errors == 10 and cache.hits == 0
    warnings = [r for r in caplog.records if r.name == "regdata.cache"]
    assert len(warnings) == 1 and "sqlite" in warnings[0].getMessage()


def test_sqlite_file_made_read_only_after_writing(
    tmp_path: Path, immutable: Callable[[Path], None], caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "ro" / "cache.sqlite"
    first = SQLiteBackend(path)
    first.set("k", b"kept")
    first.close()
    for p in path.parent.iterdir():
        immutable(p)
    immutable(path.parent)
    cache = Cache(SQLiteBackend(path))
    with caplog.at_level(logging.WARNING, logger="regdata.cache"):
        cache.put_blob("new", b"v")
        cache.get_blob("k")
    assert cache.errors >= 1
    assert len([r for r in caplog.records if r.name == "regdata.cache"]) == 1


# --------------------------------------------------------------------------- DNS SRV, by hand


def _name(text: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in text.rstrip(".").split(".") if p) + b"\x00"


class FakeDNS:
    """A DNS server on loopback (UDP and TCP on one port) answering SRV queries from a table.

    ``answers`` maps a query name to records, or to an rcode (3: NXDOMAIN, 2: SERVFAIL).
    With ``truncate`` set, UDP answers carry the TC bit and no records, as for a big answer.
    """

    def __init__(self, answers: dict[str, Any], truncate: bool = False) -> None:
        self.answers = answers
        self.truncate = truncate
        self.asked: list[tuple[str, str]] = []
        # UDP and TCP must share a port number; a free UDP port's TCP twin may be taken or
        # in TIME_WAIT, so try a few and let TIME_WAIT be reused.
        for _ in range(50):
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind(("127.0.0.1", 0))
            self.port = self.udp.getsockname()[1]
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.tcp.bind(("127.0.0.1", self.port))
                break
            except OSError:
                self.udp.close()
                self.tcp.close()
        else:
            raise RuntimeError("no port free for both UDP and TCP")
        self.tcp.listen(4)
        self._stop = False
        for target in (self._serve_udp, self._serve_tcp):
            threading.Thread(target=target, daemon=True).start()

    def _answer(self, query: bytes, proto: str) -> bytes:
        ident = query[:2]
        end = 12
        labels = []
        while query[end]:
            labels.append(query[end + 1 : end + 1 + query[end]].decode())
            end += 1 + query[end]
        question = query[12 : end + 5]
        name = ".".join(labels)
        self.asked.append((proto, name))
        found = self.answers.get(name, 3)
        if isinstance(found, int):
            return ident + struct.pack("!HHHHH", 0x8180 | found, 1, 0, 0, 0) + question
        if proto == "udp" and self.truncate:
            return ident + struct.pack("!HHHHH", 0x8380, 1, 0, 0, 0) + question
        body = b""
        for prio, weight, port, target in found:
            rdata = struct.pack("!HHH", prio, weight, port) + _name(target)
            # The owner name is a pointer to the question's name (offset 12): compression.
            body += b"\xc0\x0c" + struct.pack("!HHIH", 33, 1, 60, len(rdata)) + rdata
        return ident + struct.pack("!HHHHH", 0x8180, 1, len(found), 0, 0) + question + body

    def _serve_udp(self) -> None:
        while not self._stop:
            try:
                query, peer = self.udp.recvfrom(4096)
            except OSError:
                return
            self.udp.sendto(self._answer(query, "udp"), peer)

    def _serve_tcp(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            with conn:
                length = struct.unpack("!H", conn.recv(2))[0]
                query = b""
                while len(query) < length:
                    query += conn.recv(length - len(query))
                answer = self._answer(query, "tcp")
                conn.sendall(struct.pack("!H", len(answer)) + answer)

    def close(self) -> None:
        self._stop = True
        self.udp.close()
        self.tcp.close()


@pytest.fixture
def fake_dns() -> Iterator[Callable[..., FakeDNS]]:
    made: list[FakeDNS] = []

    def make(answers: dict[str, Any], truncate: bool = False) -> FakeDNS:
        server = FakeDNS(answers, truncate)
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()


def test_srv_query_follows_search_domains(fake_dns: Callable[..., FakeDNS]) -> None:
    name = "_memcached._tcp.memcached.flux"
    dns = fake_dns(
        {
            f"{name}.svc.cluster.local": [
                (0, 5, 11211, "memcached-1.memcached.flux.svc.cluster.local"),
                (0, 5, 11211, "memcached-0.memcached.flux.svc.cluster.local"),
            ]
        }
    )
    config = ResolverConfig(
        nameservers=(("127.0.0.1", dns.port),),
        search=("flux.svc.cluster.local", "svc.cluster.local"),
        ndots=5,
        timeout=2,
    )
    records = query_srv(name, config)
    assert records == [
        SrvRecord(0, 5, 11211, "memcached-0.memcached.flux.svc.cluster.local"),
        SrvRecord(0, 5, 11211, "memcached-1.memcached.flux.svc.cluster.local"),
    ]
    # Fewer dots than ndots: the search domains first, in order, as a stub resolver does.
    assert [n for _, n in dns.asked] == [f"{name}.flux.svc.cluster.local", f"{name}.svc.cluster.local"]


def test_srv_query_retries_truncated_answers_over_tcp(fake_dns: Callable[..., FakeDNS]) -> None:
    name = "_memcached._tcp.cache.example"
    dns = fake_dns({name: [(10, 0, 11211, "a.example"), (20, 0, 11212, "b.example")]}, truncate=True)
    config = ResolverConfig(nameservers=(("127.0.0.1", dns.port),), ndots=1, timeout=2)
    assert query_srv(name, config) == [
        SrvRecord(10, 0, 11211, "a.example"),
        SrvRecord(20, 0, 11212, "b.example"),
    ]
    assert dns.asked == [("udp", name), ("tcp", name)]


def test_srv_query_failures(fake_dns: Callable[..., FakeDNS]) -> None:
    dns = fake_dns({"_memcached._tcp.broken": 2})
    config = ResolverConfig(nameservers=(("127.0.0.1", dns.port),), ndots=1, timeout=1)
    with pytest.raises(DNSError, match="no SRV records"):
        query_srv("_memcached._tcp.absent", config)
    with pytest.raises(DNSError, match="rcode 2"):
        query_srv("_memcached._tcp.broken", config)
    # No server listening: a timeout, reported as a DNSError.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        silent = ResolverConfig(nameservers=(s.getsockname(),), timeout=0.2)
        with pytest.raises(DNSError, match="failed"):
            query_srv("_memcached._tcp.x", silent)


def test_srv_answer_parsing_rejects_bad_packets() -> None:
    query = encode_query("_memcached._tcp.a", 0x1234)
    assert query[:2] == b"\x12\x34" and query.endswith(b"\x00\x00\x21\x00\x01")
    header = struct.pack("!HHHHHH", 0x1234, 0x8180, 0, 1, 0, 0)
    loop = header + b"\xc0\x0c"  # a name that points at itself
    with pytest.raises(DNSError, match="loop"):
        decode_srv_answer(loop, 0x1234)
    with pytest.raises(DNSError, match="does not answer"):
        decode_srv_answer(header, 0x9999)
    with pytest.raises(DNSError, match="cut short"):
        decode_srv_answer(header + _name("a") + struct.pack("!HHIH", 33, 1, 0, 50) + b"\x00", 0x1234)
    with pytest.raises(DNSError, match="shorter"):
        decode_srv_answer(b"\x12", 0x1234)
    # A target of "." means "not offered here": no record.
    rdata = struct.pack("!HHH", 0, 0, 1) + b"\x00"
    empty = header + _name("a") + struct.pack("!HHIH", 33, 1, 0, len(rdata)) + rdata
    assert decode_srv_answer(empty, 0x1234) == (0, False, [])


def test_resolv_conf_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCALDOMAIN", raising=False)
    conf = tmp_path / "resolv.conf"
    conf.write_text(
        "# comment\nnameserver 10.0.0.10\nnameserver fe80::1%eth0\n"
        "search flux.svc.cluster.local svc.cluster.local\noptions ndots:5 timeout:3\n"
    )
    config = read_resolv_conf(conf)
    assert config.nameservers == (("10.0.0.10", 53), ("fe80::1", 53))
    assert config.search == ("flux.svc.cluster.local", "svc.cluster.local")
    assert config.ndots == 5 and config.timeout == 3
    assert read_resolv_conf(tmp_path / "missing").nameservers == (("127.0.0.1", 53),)
    assert ResolverConfig(search=("a",), ndots=1).candidates("x.y") == ["x.y.", "x.y.a."]
    assert ResolverConfig(search=("a",), ndots=1).candidates("x.") == ["x."]
