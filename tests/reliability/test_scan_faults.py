"""Faults in the middle of a scan: the registry killed or paused, connections dropped, caches failing.

Each scenario ends with every row of the repository either right (the
fault-free scan's row) or marked with an ``error`` saying why; never a hang
(each has a time bound, and pytest-timeout backs it), never a silent gap: the
set of (tag, platform) rows is compared with what was pushed.

The registry here is this module's own, so killing it disturbs no other test.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from regdata import Credentials, Registry, TransportError
from regdata.cache import Cache
from regdata.cache.backends import MemoryBackend
from regdata.cache.backends.memcached import MemcachedBackend
from regdata.transport import RetryPolicy
from tests.support.builder import Builder, ImageSpec
from tests.support.proxy import Action, Seen, start_proxy
from tests.support.registry_server import RegistryServer, start_registry
from tests.test_backoff import dropped, get, make

from .support import CRASH, HANDLED, LOST, RAW, ROW, RawProxy, Tally, judge_exception, judge_marked

REPO = "reliability/faults"
TAGS = [f"t{i}" for i in range(10)]
MULTI = ["m0", "m1"]
QUICK = RetryPolicy(attempts=3, initial=0.05, maximum=0.2, total=10.0)
# Enough attempts that a request unlucky with every third connection still gets through.
PATIENT = RetryPolicy(attempts=8, initial=0.01, maximum=0.05, total=10.0)


@pytest.fixture(scope="module")
def server() -> Iterator[RegistryServer]:
    """A registry of this module's own, with 10 images and 2 two-platform indexes."""
    srv = start_registry()
    builder = Builder(srv.url)
    for i, tag in enumerate(TAGS):
        builder.push_image(REPO, ImageSpec(labels={"n": str(i)}), tags=[tag])
    for tag in MULTI:
        builder.push_multiarch(REPO, ["linux/amd64", "linux/arm64/v8"], tags=[tag], seed=tag)
    builder.close()
    yield srv
    srv.close()


@dataclass
class Scenario:
    """What one fault scenario needs: where to read, and the fault-free rows from there."""

    host: str
    baseline: pd.DataFrame


def _baseline(host: str) -> pd.DataFrame:
    with Registry(cache=None, credentials=Credentials.none()) as reg:
        frame = reg.get_repository(f"{host}/{REPO}")
    assert frame["error"].isna().all() and len(frame) == len(TAGS) + 2 * len(MULTI)
    return frame


def _running(server: RegistryServer) -> None:
    if not server.running:
        server.start()


def _scan(
    tally: Tally,
    group: str,
    name: str,
    reg: Registry,
    host: str,
    baseline: pd.DataFrame,
    bound: float,
    expect: tuple[str, ...] = (HANDLED, ROW),
) -> tuple[str, pd.DataFrame | None]:
    """One scan under a fault, judged and counted; it must end within ``bound`` seconds."""
    batch = tally.batch("fault", group)
    started = time.monotonic()
    frame = None
    try:
        frame = reg.get_repository(f"{host}/{REPO}")
    except Exception as exc:
        outcome, detail = judge_exception(exc)
        # The listing came through before the fault: a whole-repository failure is a gap.
        if outcome != CRASH:
            outcome = LOST
    else:
        outcome, detail = judge_marked(frame, baseline)
        errors = frame["error"].dropna()
        if len(errors):
            detail += f"; first: {errors.iloc[0][:200]}"
    elapsed = time.monotonic() - started
    batch.record(name, outcome, f"{detail} in {elapsed:.1f}s")
    batch.assert_clean()
    assert elapsed < bound, f"{name}: {elapsed:.1f}s"
    assert outcome in expect, (name, outcome, detail)
    return outcome, frame


def _on_request(nth: int, path_part: str, action: Callable[[], None]) -> Callable[[Seen], None]:
    """A fault that runs ``action`` once, at the ``nth`` request whose path holds ``path_part``."""
    seen = 0
    lock = threading.Lock()

    def fault(request: Seen) -> None:
        nonlocal seen
        if path_part not in request.path:
            return None
        with lock:
            seen += 1
            if seen != nth:
                return None
        action()
        return None

    return fault


# --------------------------------------------------------------------------- the registry killed


@pytest.mark.parametrize("variant", ["killed, restarted", "killed, stays down", "killed, restarted, direct"])
def test_registry_killed_mid_scan(server: RegistryServer, tally: Tally, variant: str) -> None:
    _running(server)
    direct = variant.endswith("direct")
    proxy = None if direct else start_proxy(server.host, delay=0.02)
    host = server.host if direct else proxy.host  # type: ignore[union-attr]
    baseline = _baseline(host)
    restarted, finished = threading.Event(), threading.Event()
    helper: list[threading.Thread] = []

    def strike() -> None:
        server.kill()
        if "restarted" in variant:

            def later() -> None:
                time.sleep(0.3)
                server.start()
                restarted.set()
                # The server dies with the thread that started it (setpriv's parent-death
                # signal is per thread): this one lives until the test is over.
                finished.wait(60)

            helper.append(threading.Thread(target=later, daemon=True))
            helper[0].start()

    try:
        reg = Registry(cache=None, credentials=Credentials.none(), concurrency=4)
        if direct:
            # Nothing in between to strike from: kill on a timer, a moment into the scan.
            timer = threading.Timer(0.05, strike)
            timer.start()
            _scan(tally, "the registry killed mid-scan", variant, reg, host, baseline, bound=30)
            timer.join()
        else:
            assert proxy is not None
            proxy.add(_on_request(5, "/manifests/", strike))
            # Staying down, the breaker ends the scan in seconds, not every tag's retry schedule.
            bound = 25 if variant == "killed, stays down" else 30
            outcome, frame = _scan(
                tally, "the registry killed mid-scan", variant, reg, host, baseline, bound=bound
            )
            if variant == "killed, stays down":
                assert outcome == ROW and frame is not None
                assert frame["error"].dropna().str.startswith("TransportError").all()
        reg.close()
    finally:
        if proxy is not None:
            proxy.stop()
        finished.set()
        for thread in helper:
            thread.join(10)
        server.kill()
        server.start()


# --------------------------------------------------------------------------- connections dropped


def test_connections_dropped(server: RegistryServer, tally: Tally) -> None:
    _running(server)
    with start_proxy(server.host) as proxy:
        baseline = _baseline(proxy.host)
        count = 0
        lock = threading.Lock()

        def every_third(seen: Seen) -> Action | None:
            nonlocal count
            with lock:
                count += 1
                return Action(drop=True) if count % 3 == 0 else None

        proxy.add(every_third)
        with Registry(cache=None, credentials=Credentials.none(), retry=PATIENT) as reg:
            outcome, _ = _scan(
                tally,
                "connections dropped",
                "every third connection dropped",
                reg,
                proxy.host,
                baseline,
                bound=30,
            )
        assert outcome == HANDLED  # a dropped GET is retried: nothing is lost
        proxy.clear()
        proxy.add(lambda seen: Action(drop=True) if seen.path.endswith(("/t3", "/t7", "/m1")) else None)
        with Registry(cache=None, credentials=Credentials.none(), retry=QUICK) as reg:
            outcome, frame = _scan(
                tally,
                "connections dropped",
                "three tags' connections always dropped",
                reg,
                proxy.host,
                baseline,
                bound=30,
            )
        assert frame is not None and sorted(frame.loc[frame["error"].notna(), "tag"]) == ["m1", "t3", "t7"]


# --------------------------------------------------------------------------- a slow registry


def test_registry_paused_trips_the_read_timeout(server: RegistryServer, tally: Tally) -> None:
    _running(server)
    with start_proxy(server.host) as proxy:
        baseline = _baseline(proxy.host)
        # SIGSTOP at the 5th manifest: the port stays open, nothing answers, reads time out.
        proxy.add(_on_request(5, "/manifests/", server.pause))
        reg = Registry(
            cache=None,
            credentials=Credentials.none(),
            timeout=0.5,
            concurrency=4,
            retry=RetryPolicy(attempts=2, initial=0.05, total=5.0),
        )
        try:
            outcome, frame = _scan(
                tally,
                "a slow registry",
                "paused mid-scan (SIGSTOP), read timeout 0.5 s",
                reg,
                proxy.host,
                baseline,
                bound=30,
            )
        finally:
            server.resume()
            reg.close()
    assert outcome == ROW and frame is not None
    # Timed out, then (the breaker tripped) not sent at all.
    assert frame["error"].dropna().str.match(r"(RequestTimeout|TransportError): ").all()


@pytest.mark.parametrize("how", ["answers after 3 s", "trickles its body a byte at a time"])
def test_slow_answers_trip_the_read_timeout(server: RegistryServer, tally: Tally, how: str) -> None:
    _running(server)
    proxy = RawProxy(server.host)
    try:
        baseline = _baseline(proxy.host)

        def slow(seen: Seen) -> Action | None:
            if "/blobs/" not in seen.path or not seen.path.endswith(("1", "3", "5", "7", "9")):
                return None
            if how.startswith("answers after"):
                return Action(delay=3.0)

            def trickle(
                status: int, headers: dict[str, str], body: bytes
            ) -> tuple[int, dict[str, str], bytes]:
                return status, {**headers, RAW: "trickle:0.05"}, body

            return Action(transform=trickle)

        proxy.add(slow)
        with Registry(
            cache=None, credentials=Credentials.none(), timeout=1.0, retry=RetryPolicy(attempts=1)
        ) as reg:
            outcome, frame = _scan(
                tally,
                "a slow registry",
                f"a registry that {how}, read timeout 1 s",
                reg,
                proxy.host,
                baseline,
                bound=20,
            )
        assert outcome == ROW and frame is not None
        assert frame["error"].dropna().str.startswith("RequestTimeout").all()
    finally:
        proxy.stop()


def test_budget_and_cancel_mark_what_is_left(server: RegistryServer, tally: Tally) -> None:
    _running(server)
    with start_proxy(server.host, delay=0.1) as proxy:
        baseline = _baseline(proxy.host)
        with Registry(cache=None, credentials=Credentials.none(), budget=0.6, concurrency=2) as reg:
            outcome, frame = _scan(
                tally, "a slow registry", "a scan over its time budget", reg, proxy.host, baseline, bound=10
            )
        assert outcome == ROW and frame is not None and frame["error"].str.contains("timed out").any()
        reg = Registry(cache=None, credentials=Credentials.none(), concurrency=2)
        threading.Timer(0.4, reg.cancel).start()
        outcome, frame = _scan(
            tally, "a slow registry", "cancelled from another thread", reg, proxy.host, baseline, bound=10
        )
        assert outcome == ROW and frame is not None and frame["error"].str.contains("cancelled").any()
        reg.close()


# --------------------------------------------------------------------------- registry errors mid-scan


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_mid_scan(server: RegistryServer, tally: Tally, status: int) -> None:
    _running(server)
    with start_proxy(server.host) as proxy:
        baseline = _baseline(proxy.host)
        count = 0
        lock = threading.Lock()

        def third(seen: Seen) -> Action | None:
            nonlocal count
            if "/tags/" in seen.path:
                return None
            with lock:
                count += 1
                fail = count % 3 == 0
            return (
                Action(
                    status=status,
                    body=b'{"errors":[{"code":"UNKNOWN"}]}',
                    headers={"Content-Type": "application/json"},
                )
                if fail
                else None
            )

        proxy.add(third)
        with Registry(cache=None, credentials=Credentials.none(), retry=PATIENT) as reg:
            outcome, _ = _scan(
                tally,
                "registry errors mid-scan",
                f"every third answer a {status}",
                reg,
                proxy.host,
                baseline,
                bound=30,
            )
        # 500 and 503 are retried, as go-containerregistry retries them, and pass.
        assert outcome == HANDLED


# --------------------------------------------------------------------------- caches failing


@pytest.mark.parametrize("fault", ["killed", "paused"])
def test_memcached_fails_mid_scan(
    server: RegistryServer, server_factory: Any, tally: Tally, fault: str
) -> None:
    _running(server)
    mc = server_factory.memcached()
    with start_proxy(server.host, delay=0.01) as proxy:
        baseline = _baseline(proxy.host)
        proxy.add(_on_request(5, "/manifests/", mc.kill if fault == "killed" else mc.pause))
        cache = Cache(MemcachedBackend([mc.address], timeout=0.2, connect_timeout=0.2))
        try:
            with Registry(cache=cache, credentials=Credentials.none(), concurrency=4) as reg:
                outcome, _ = _scan(
                    tally,
                    "a cache failing mid-scan",
                    f"memcached {fault} mid-scan",
                    reg,
                    proxy.host,
                    baseline,
                    bound=30,
                )
                assert outcome == HANDLED  # a cache failure is a miss, never a row lost
                outcome, _ = _scan(
                    tally,
                    "a cache failing mid-scan",
                    f"memcached {fault}, the next scan",
                    reg,
                    proxy.host,
                    baseline,
                    bound=30,
                )
                assert outcome == HANDLED
            assert cache.errors > 0
        finally:
            if fault == "paused":
                mc.resume()


def _unwritable(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "a-file").write_text("")
    (tmp_path / "a-dir.sqlite").mkdir()
    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"this is not a database" * 100)
    return {
        "a path under a file (root cannot write it either)": f"sqlite://{tmp_path}/a-file/cache.sqlite",
        "a path in /proc": "sqlite:///proc/self/regdata-cache.sqlite",
        "a file that is not a database": f"sqlite://{corrupt}",
        "a directory where the file should be": f"sqlite://{tmp_path}/a-dir.sqlite",
    }


def test_sqlite_cache_unwritable(server: RegistryServer, tmp_path: Path, tally: Tally) -> None:
    _running(server)
    baseline = _baseline(server.host)
    for name, spec in _unwritable(tmp_path).items():
        with Registry(cache=spec, credentials=Credentials.none()) as reg:
            for attempt in ("first scan", "second scan"):
                outcome, _ = _scan(
                    tally,
                    "a cache failing mid-scan",
                    f"SQLite cache: {name}, {attempt}",
                    reg,
                    server.host,
                    baseline,
                    bound=30,
                )
                assert outcome == HANDLED
            assert reg.cache is not None and reg.cache.errors > 0


POISON: dict[str, bytes] = {
    "nested 100,000 deep": b"[" * 100_000 + b"]" * 100_000,
    "a lone surrogate": b'{"v": "\\ud800", "t": 1}',
    "a time too big for a float": b'{"v": [], "t": ' + b"9" * 400 + b"}",
    "a time from the future": json.dumps({"v": ["t0"], "t": 4e12}).encode(),
    "a tag list of numbers": json.dumps({"v": [1, 2], "t": time.time()}).encode(),
    "random bytes": bytes(range(256)) * 4,
    "empty": b"",
    "4 MB of zeros": b"\x00" * 4_000_000,
}


def test_every_cache_entry_poisoned(server: RegistryServer, tally: Tally) -> None:
    """A shared cache is untrusted: whatever sits under regdata's keys, the rows are the registry's."""
    _running(server)
    baseline = _baseline(server.host)
    backend = MemoryBackend()
    with Registry(cache=Cache(backend), credentials=Credentials.none()) as reg:
        reg.get_repository(f"{server.host}/{REPO}")  # fills the cache: now its keys are known
    keys = backend.keys()
    assert keys
    for name, garbage in POISON.items():
        for key in keys:
            backend.set(key, garbage)
        with Registry(cache=Cache(backend), credentials=Credentials.none()) as reg:
            outcome, _ = _scan(
                tally,
                "a cache failing mid-scan",
                f"every cache entry holds {name}",
                reg,
                server.host,
                baseline,
                bound=30,
            )
        assert outcome == HANDLED


# --------------------------------------------------------------------------- the token server failing


def test_token_server_fails_mid_scan(server_factory: Any, tally: Tally) -> None:
    token_server = server_factory.token_server(lifetime=0)  # expires_in 0: a token per request
    srv = server_factory.registry(token_server=token_server)
    builder = server_factory.builder(srv, "pusher")
    for tag in ("a", "b", "c", "d", "e", "f"):
        builder.push_image("public/faults", ImageSpec(labels={"t": tag}), tags=[tag])
    credentials = Credentials.from_mapping({srv.host: ("alice", srv.users["alice"])})
    with Registry(cache=None, credentials=credentials) as reg:
        baseline = reg.get_repository(f"{srv.host}/public/faults")
    assert baseline["error"].isna().all()
    with start_proxy(srv.host, delay=0.02) as proxy:
        proxy.add(_on_request(3, "/manifests/", lambda: token_server.fail_next(500, count=1000)))
        with Registry(
            cache=None,
            credentials=Credentials.from_mapping({proxy.host: ("alice", srv.users["alice"])}),
            concurrency=2,
            retry=QUICK,
        ) as reg:
            baseline = baseline.assign(registry=proxy.host)
            batch = tally.batch("fault", "the token server failing mid-scan")
            started = time.monotonic()
            try:
                frame = reg.get_repository(f"{proxy.host}/public/faults")
            except Exception as exc:
                batch.exception("token server answering 500 from the 3rd manifest on", exc)
            else:
                batch.record(
                    "token server answering 500 from the 3rd manifest on", *judge_marked(frame, baseline)
                )
            assert time.monotonic() - started < 30
    batch.assert_clean()
    assert batch.cases[-1].outcome == ROW, batch.cases[-1]


# --------------------------------------------------------------------------- the breaker, on a fake clock


def test_the_breaker_fails_fast_on_a_host_that_stopped_answering(tally: Tally) -> None:
    """After ``breaker`` requests in a row got no answer, the next ones are not sent (nor retried)
    until ``maximum`` seconds after the last failure; then one is tried, and an answer closes it."""
    transport, script, clock = make([dropped()] * 12 + [200], attempts=3, initial=0.1, maximum=5.0, breaker=6)
    failed = []
    for _ in range(3):  # three requests, three attempts each: the breaker trips on the 6th failure
        with pytest.raises(TransportError):
            transport.send(get())
        failed.append(len(script.sent))
    assert failed == [3, 6, 6]  # the third request was not sent at all
    with pytest.raises(TransportError, match="not sent"):
        transport.send(get())
    assert len(script.sent) == 6
    clock.now += 5.0  # the cooldown is over: one attempt, no retry while the host looks down
    with pytest.raises(TransportError):
        transport.send(get())
    assert len(script.sent) == 7
    clock.now += 5.0
    script.outcomes = [200]
    assert transport.send(get()).status == 200  # an answer: the breaker is closed again
    assert transport.host(get().url).streak == 0
    tally.batch("fault", "the registry killed mid-scan").record(
        "the breaker on a fake clock: trips, fails fast, probes, closes", HANDLED
    )
