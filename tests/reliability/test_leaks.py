"""Fifty scans in a row leak no threads, no sockets and no memory.

Counted from the process itself: live threads (``threading.enumerate``),
open file descriptors (``/proc/self/fd``: sockets, the SQLite file, pipes)
and memory (``tracemalloc``, what Python allocated and still holds).  A
few warm-up scans come first, so what is made once (pools of the cache, the
first import of a codec) is not taken for a leak; the figures after the
fifty are compared with those after the warm-up.
"""

from __future__ import annotations

import gc
import os
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from regdata import Credentials, RegdataError, Registry
from regdata.transport import RetryPolicy
from tests.support.builder import Builder, ImageSpec
from tests.support.registry_server import MemcachedServer, RegistryServer, free_port

from .support import HANDLED, HELD, Tally

REPO = "reliability/leaks"
SCANS = 50
WARM_UP = 5
# Bytes Python may hold more after the fifty than after the warm-up: small caches of the
# standard library and of pandas, not a per-scan leak (a per-scan leak of even 20 KB is 1 MB).
MEMORY_SLACK = 1_000_000


@pytest.fixture(scope="module")
def repo(registry: RegistryServer, builder: Builder) -> str:
    for i in range(3):
        builder.push_image(REPO, ImageSpec(labels={"n": str(i)}), tags=[f"t{i}"])
    builder.push_multiarch(REPO, ["linux/amd64", "linux/arm64/v8"], tags=["multi"])
    return f"{registry.host}/{REPO}"


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _threads() -> list[str]:
    """Live threads but this process's test servers' (their handlers come and go on their own)."""
    return sorted(
        t.name
        for t in threading.enumerate()
        if "process_request_thread" not in t.name and "serve_forever" not in t.name
    )


def _settle(threads: int, fds: int) -> None:
    """Give threads and sockets a moment to end: a pool's workers exit just after its
    shutdown returns, and the test's own proxy closes a connection after its client did."""
    deadline = time.monotonic() + 3.0
    while (len(_threads()) > threads or _fds() > fds) and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.fixture
def measure(tally: Tally) -> Iterator[Callable[[str, Callable[[], Any]], None]]:
    """Run a scan WARM_UP times, then SCANS times; count what it left behind."""
    tracemalloc.start()

    def run(name: str, scan: Callable[[], Any], close: Callable[[], Any] | None = None) -> None:
        """``close``, when given, ends what the scans shared before the figures are taken."""
        batch = tally.batch("fault", f"{SCANS} repeated scans")
        for _ in range(WARM_UP):
            scan()
        gc.collect()
        threads, fds = _threads(), _fds()
        memory = tracemalloc.get_traced_memory()[0]
        for _ in range(SCANS):
            scan()
        if close is not None:
            close()
        _settle(len(threads), fds)
        gc.collect()
        grown = {
            "threads": len(_threads()) - len(threads),
            "file descriptors": _fds() - fds,
            "bytes": tracemalloc.get_traced_memory()[0] - memory,
        }
        held = grown["threads"] > 0 or grown["file descriptors"] > 0 or grown["bytes"] > MEMORY_SLACK
        detail = ", ".join(f"{k} {v:+,}" for k, v in grown.items())
        if grown["threads"] > 0:
            detail += f"; new threads: {sorted(set(_threads()) - set(threads))}"
        batch.record(name, HELD if held else HANDLED, detail)
        batch.assert_clean()

    yield run
    tracemalloc.stop()


def _scan_with(repo: str, **options: Any) -> Callable[[], None]:
    def scan() -> None:
        with Registry(credentials=Credentials.none(), **options) as reg:
            frame = reg.get_repository(repo)
            assert len(frame) == 5

    return scan


def test_a_new_registry_per_scan_with_sqlite(
    repo: str, tmp_path: Path, measure: Callable[[str, Callable[[], Any]], None]
) -> None:
    measure(
        "a Registry made and closed per scan, SQLite cache",
        _scan_with(repo, cache=f"sqlite://{tmp_path}/cache.sqlite"),
    )


def test_one_registry_for_every_scan(repo: str, memcached: MemcachedServer, measure: Any) -> None:
    # The request log is a bounded ring: kept small here, so its filling up is not taken for a leak.
    # Its connection pools may grow with the limiter (up to max_concurrency per host): the
    # figures are taken once it is closed.
    reg = Registry(
        cache=f"memcached://{memcached.host}", credentials=Credentials.none(), request_log_size=100
    )
    measure(
        "one Registry for every scan, memcached, closed at the end",
        lambda: reg.get_repository(repo),
        close=reg.close,
    )


def test_scans_that_fail_leak_nothing(server_factory: Any, measure: Callable[..., None]) -> None:
    """Not found, refused, timed out: the error paths give back what they took.

    The faults come from other processes (a registry with a blob deleted, a
    port nobody listens on, a registry stopped with SIGSTOP), so no thread
    or socket of a test server of this process is counted as regdata's.
    """
    broken = server_factory.registry()
    builder = server_factory.builder(broken)
    pushed = builder.push_image(REPO, ImageSpec(labels={"n": "gone"}), tags=["gone"])
    builder.push_image(REPO, ImageSpec(labels={"n": "here"}), tags=["here"])
    assert pushed.config is not None
    builder.delete_blob(REPO, pushed.config.digest)
    paused = server_factory.registry()
    paused.pause()
    closed = f"127.0.0.1:{free_port()}"

    def scan() -> None:
        with Registry(cache=None, credentials=Credentials.none(), retry=RetryPolicy(attempts=1)) as reg:
            frame = reg.get_repository(f"{broken.host}/{REPO}")
            assert frame["error"].notna().sum() == 1
            with pytest.raises(RegdataError):
                reg.get_repository(f"{closed}/{REPO}")
        with (
            Registry(
                cache=None, credentials=Credentials.none(), timeout=0.05, retry=RetryPolicy(attempts=1)
            ) as reg,
            pytest.raises(RegdataError),
        ):
            reg.get_repository(f"{paused.host}/{REPO}")

    try:
        measure("a Registry per scan: a blob missing, a port refused, a registry stopped", scan)
    finally:
        paused.resume()
