"""A throttled, flaky, slow registry: our fault proxy in front of the real one.

The proxy answers 429 with Retry-After, drops connections, delays, and
counts a Docker-Hub-like quota, so the retry layer, the per-host limiter,
the scan's budget and cancel are seen end to end, through ``get_repository``
and the request log.  The limiter's adaptation rules are also checked
directly, on synthetic answers.  Nothing here asserts a speed: time bounds
are deadlines the library promises (a budget, a cancel), with room to spare.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pandas as pd
import pytest

import regdata
from regdata.context import Context
from regdata.instrument.requestlog import RequestLog
from regdata.transport import RetryPolicy
from regdata.transport.limits import (
    BASELINE_WINDOWS,
    MIN_WINDOW,
    HostLimiter,
    Limiters,
    Limits,
    QuotaFloorReached,
    parse_rate_limit,
)
from tests.support.builder import Builder, ImageSpec
from tests.support.hubproxy import Throttle
from tests.support.proxy import Action, FaultProxy, Seen, start_proxy
from tests.support.registry_server import RegistryServer
from tests.test_backoff import FakeClock

REPO = "throttle/app"
TAGS = 36
# Quick retries: the schedule itself is tested on a fake clock (test_backoff.py).
QUICK = RetryPolicy(attempts=6, initial=0.01, maximum=0.05, jitter=0.5, total=30.0)


def client(**kwargs: object) -> regdata.Registry:
    kwargs.setdefault("cache", None)
    kwargs.setdefault("credentials", regdata.Credentials.none())
    kwargs.setdefault("retry", QUICK)
    return regdata.Registry(**kwargs)  # type: ignore[arg-type]


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """A frame read through the proxy, minus the one column that names the host it came through."""
    return frame.drop(columns=["registry"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def app(registry: RegistryServer, builder: Builder) -> pd.DataFrame:
    """A repository of single images (some sharing a digest) and two multi-platform tags;
    returns its frame read straight from the registry, the truth to compare with."""
    for i in range(TAGS):
        j = i - 1 if i % 6 == 5 else i  # every sixth tag shares the image of the tag before
        builder.push_image(
            REPO,
            ImageSpec(labels={"n": str(j)}, created=f"2024-01-{1 + j % 28:02d}T00:00:00Z"),
            tags=[f"v{i}"],
        )
    builder.push_multiarch(REPO, ["linux/amd64", "linux/arm64/v8", "linux/arm/v7"], tags=["multi", "latest"])
    truth = client().get_repository(f"{registry.host}/{REPO}")
    assert truth["error"].isna().all() and len(truth) == TAGS + 6
    return truth


@pytest.fixture
def proxy(registry: RegistryServer) -> Iterator[FaultProxy]:
    with start_proxy(registry.host) as p:
        yield p


@dataclass
class PathFaults:
    """Fails the first visits of some paths, chosen by a hash of the path: deterministic per run."""

    retry_after: str = "0"
    visits: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def plan(self, path: str) -> list[str]:
        return {0: ["429"], 1: ["drop"], 2: ["429", "drop"], 3: ["drop", "503", "429"]}.get(
            zlib.crc32(path.encode()) % 10, []
        )

    def __call__(self, seen: Seen) -> Action | None:
        with self.lock:
            visit = self.visits[seen.path]
            self.visits[seen.path] += 1
        plan = self.plan(seen.path)
        if visit >= len(plan):
            return None
        if plan[visit] == "drop":
            return Action(drop=True)
        status = int(plan[visit])
        return Action(
            status=status,
            headers={"Retry-After": self.retry_after, "Content-Type": "application/json"},
            body=b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}',
        )


# -- a full read through 429s and dropped connections --------------------------------------


def test_full_repository_through_429s_and_drops(proxy: FaultProxy, app: pd.DataFrame) -> None:
    faults = PathFaults()
    proxy.add(faults)
    reg = client()
    df = reg.get_repository(f"{proxy.host}/{REPO}")

    pd.testing.assert_frame_equal(comparable(df), comparable(app))
    assert (df["registry"] == proxy.host).all()

    log = reg.requests
    faulted = [p for p in faults.visits if faults.plan(p)]
    assert len(faulted) >= 8, "the hash should fault a good share of the paths"
    retried = log[log["attempt"] > 1]
    assert len(retried) >= len(faulted)
    assert (log["status"] == 429).sum() >= 1 and (log["status"] == 503).sum() >= 1
    drops = log[log["status"].isna() & log["error"].notna() & (log["kind"] != "ping")]  # not the TLS probe
    assert len(drops) >= 1 and drops["error"].str.contains("connection").all()
    assert log["attempt"].max() >= 3  # a path failed twice before it passed
    # Every failed attempt was followed, for the same kind of request, by one that succeeded.
    assert (log[log["error"].isna()]["status"] < 300).all()


def test_a_registry_that_says_when_to_come_back_is_waited_for(proxy: FaultProxy, app: pd.DataFrame) -> None:
    # Every third request 429 with Retry-After: 1, every 17th connection dropped, at default settings.
    throttle = Throttle(every=3, retry_after="1", drop=17)
    proxy.add(throttle)
    reg = client(retry=RetryPolicy())
    start = time.monotonic()
    df = reg.get_repository(f"{proxy.host}/{REPO}")
    elapsed = time.monotonic() - start

    pd.testing.assert_frame_equal(comparable(df), comparable(app))  # no error row, nothing lost
    assert throttle.throttled >= 10 and throttle.dropped >= 2
    # The time is the waits the registry asked for (the host held by them), not much more.
    held = sum(state.held_s for state in reg.factory.base._hosts.values())  # type: ignore[attr-defined]
    assert held >= 1.0 and elapsed <= 2 * held + 1.0, f"{elapsed:.1f} s for {held:.1f} s of waits"
    # A 429 that says when to come back does not halve the concurrency: the hold paces the host.
    assert not (reg.limiter_log["event"] == "halve").any()


def test_tiny_attempt_limit_marks_the_failing_rows_and_completes_the_others(
    proxy: FaultProxy, app: pd.DataFrame
) -> None:
    broken = {"v3", "v7", "multi"}
    proxy.add(
        lambda s: (
            Action(status=429, headers={"Retry-After": "0"})
            if s.path.rsplit("/", 1)[-1] in broken and "/manifests/" in s.path
            else None
        )
    )
    reg = client(retry=RetryPolicy(attempts=1))
    df = reg.get_repository(f"{proxy.host}/{REPO}")

    failed = df[df["error"].notna()]
    assert set(failed["tag"]) == broken and len(failed) == len(broken)
    assert failed["error"].str.startswith("TooManyRequests: 429").all()
    good = comparable(df[df["error"].isna()])
    expected = comparable(app[~app["tag"].isin(broken)])
    pd.testing.assert_frame_equal(good, expected)
    log = reg.requests
    assert (log["attempt"] == 1).all()  # one attempt each: nothing retried


# -- the budget and cancel -----------------------------------------------------------------------


def test_a_budget_shorter_than_the_scan_returns_on_time_with_rows_marked(
    proxy: FaultProxy, app: pd.DataFrame
) -> None:
    proxy.delay = 0.15  # ~42 tags x 2 requests at 2 at a time: ~6 s of work for a 1.5 s budget
    reg = client(budget=1.5, concurrency=2, max_concurrency=2)
    start = time.monotonic()
    df = reg.get_repository(f"{proxy.host}/{REPO}")
    elapsed = time.monotonic() - start
    assert elapsed < 1.5 + 1.0, f"the scan overran its budget: {elapsed:.2f} s"

    timed_out = df["error"].fillna("").str.startswith("timed out")
    assert timed_out.any() and (~timed_out).any()
    assert df[~timed_out]["error"].isna().all()
    key = ["tag", "manifest_digest"]
    done = comparable(df[~timed_out]).set_index(key)
    truth = comparable(app).set_index(key)
    pd.testing.assert_frame_equal(done, truth.loc[done.index])  # what was done is right
    # Every tag has its rows: done or marked.
    assert set(df["tag"]) == set(app["tag"])


def test_cancel_from_another_thread_returns_rows_done_and_sends_nothing_more(
    proxy: FaultProxy, app: pd.DataFrame
) -> None:
    arrivals: list[float] = []
    proxy.add(lambda s: arrivals.append(time.monotonic()))  # type: ignore[func-returns-value]
    proxy.delay = 0.1
    reg = client(concurrency=2, max_concurrency=2)
    cancelled_at: list[float] = []

    def cancel_soon() -> None:
        time.sleep(0.8)
        cancelled_at.append(time.monotonic())
        reg.cancel()

    threading.Thread(target=cancel_soon, daemon=True).start()
    df = reg.get_repository(f"{proxy.host}/{REPO}")
    returned = time.monotonic()
    seen = len(proxy.seen)
    time.sleep(0.5)

    assert len(proxy.seen) == seen, "requests went out after the scan returned"
    assert returned - cancelled_at[0] < 1.0
    late = [t for t in arrivals if t > cancelled_at[0] + 0.05]
    assert late == [], f"{len(late)} requests arrived after cancel()"
    cancelled = df["error"].fillna("") == "cancelled"
    assert cancelled.any() and (~cancelled).any()
    assert df[~cancelled]["error"].isna().all()
    assert set(df["tag"]) == set(app["tag"])


# -- per-host limits --------------------------------------------------------------------------


def test_requests_per_second_are_respected(registry: RegistryServer, app: pd.DataFrame) -> None:
    rps = 40.0
    reg = client(rps=rps)
    df = reg.get_repository(f"{registry.host}/{REPO}")
    assert df["error"].isna().all()
    log = reg.requests.sort_values("started")
    starts = (log["started"] - log["started"].min()).dt.total_seconds().to_numpy()
    n = len(starts)
    assert n > 40
    # With a burst of 1, the n-th request cannot start before (n - 1) / rps. Only this lower
    # bound is asserted: a loaded machine may bunch the log's timestamps after the limiter
    # let requests go, so windows are the fake-clock unit tests' business, not this one's.
    assert starts[-1] >= (n - 1) / rps - 0.05


def test_rate_limit_headers_are_parsed_and_the_floor_stops_the_scan(
    proxy: FaultProxy, app: pd.DataFrame
) -> None:
    quota = {"left": 40}
    lock = threading.Lock()

    def docker_hub(seen: Seen) -> Action | None:
        # Docker Hub counts manifest GETs (not HEADs) and reports what is left on the answer.
        if seen.method != "GET" or "/manifests/" not in seen.path:
            return None
        with lock:
            quota["left"] -= 1

        def headers(status: int, h: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
            with lock:
                left = quota["left"]
            return (
                status,
                {
                    **h,
                    "RateLimit-Limit": "100;w=21600",
                    "RateLimit-Remaining": f"{left};w=21600",
                    "Docker-RateLimit-Source": "127.0.0.1",
                },
                body,
            )

        return Action(transform=headers)

    proxy.add(docker_hub)
    floor = 25
    reg = client(quota_floor=floor)
    df = reg.get_repository(f"{proxy.host}/{REPO}")

    assert quota["left"] >= floor, "the scan spent quota below the floor"
    stopped = df["error"].fillna("").str.startswith("stopped: pull quota:")
    assert stopped.any() and (~stopped).any()
    assert df[~stopped]["error"].isna().all()
    assert set(df["tag"]) == set(app["tag"])
    limits = reg.rate_limits
    assert set(limits) == {proxy.host}
    seen = limits[proxy.host]
    assert (seen.limit, seen.window_s) == (100, 21600.0)
    assert seen.remaining is not None and floor <= seen.remaining <= 40
    assert seen.observed.tzinfo is not None


# -- adaptive concurrency, end to end ------------------------------------------------------------


@dataclass
class InFlight:
    """Counts requests in flight at the proxy (arrival to answer)."""

    now: int = 0
    peak: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, seen: Seen) -> Action:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

        def done(status: int, h: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
            with self.lock:
                self.now -= 1
            return status, h, body

        return Action(transform=done)


def test_concurrency_grows_on_a_registry_that_keeps_up(proxy: FaultProxy, app: pd.DataFrame) -> None:
    counter = InFlight()
    proxy.add(counter)
    proxy.delay = 0.03  # a WAN: latency that does not grow with load
    reg = client(concurrency=2, max_concurrency=12)
    df = reg.get_repository(f"{proxy.host}/{REPO}")
    pd.testing.assert_frame_equal(comparable(df), comparable(app))

    events = reg.limiter_log
    mine = events[events["host"] == proxy.host]
    assert mine["event"].iloc[0] == "start" and mine["concurrency"].iloc[0] == 2
    grows = mine[mine["event"] == "grow"]
    assert len(grows) >= 2
    assert (grows["concurrency"] > grows["concurrency_before"]).all()
    assert mine["concurrency"].max() == 12  # up to the bound set, and never past it
    assert counter.peak <= 12
    # The request log shows it too: later requests went out under a higher limit.
    log = reg.factory.log.frame(concurrency=True)
    sent = log[log["host"] == proxy.host].sort_values("started")
    assert sent["concurrency"].iloc[0] == 2 and sent["concurrency"].iloc[-1] > 2
    assert sent["concurrency"].max() == 12
    assert "halve" not in set(mine["event"])  # no 429, no cut


def test_concurrency_halves_on_429(proxy: FaultProxy, app: pd.DataFrame) -> None:
    proxy.delay = 0.02
    arrivals = {"n": 0}
    lock = threading.Lock()

    def burst_of_429s(seen: Seen) -> Action | None:
        with lock:
            arrivals["n"] += 1
            n = arrivals["n"]
        if 50 <= n < 54:
            return Action(status=429, headers={"Retry-After": "0"})
        return None

    proxy.add(burst_of_429s)
    reg = client(concurrency=8, max_concurrency=16, min_concurrency=2)
    df = reg.get_repository(f"{proxy.host}/{REPO}")
    pd.testing.assert_frame_equal(comparable(df), comparable(app))

    events = reg.limiter_log
    halves = events[(events["host"] == proxy.host) & (events["event"] == "halve")]
    assert len(halves) >= 1
    assert (halves["concurrency"] == (halves["concurrency_before"] // 2).clip(lower=2)).all()
    assert len(halves) <= 4  # at most once per 429, and a burst sent together counts once
    assert halves["reason"].str.contains("429").all()
    log = reg.factory.log.frame(concurrency=True)
    sent = log[log["host"] == proxy.host].sort_values("started")
    first_429 = sent[sent["status"] == 429]["started"].min()
    after = sent[sent["started"] > first_429]
    assert (after["concurrency"] < halves["concurrency_before"].iloc[0]).any()


# -- the scan's result does not depend on timing --------------------------------------------------


def test_rows_come_back_in_ref_order_whatever_order_requests_finish() -> None:
    import random

    from regdata.client.scan import ScanOptions, scan
    from regdata.oci.reference import parse_reference, parse_repository
    from regdata.testing import MockRegistry, image, index

    mock = MockRegistry()
    for i in range(12):
        mock.push(
            f"example.com/app:t{i}", image(created=f"2024-01-{i + 1:02d}T00:00:00Z", labels={"i": str(i % 5)})
        )
    mock.push(
        "example.com/app:multi",
        index(
            image(platform="linux/amd64", layers=[1]),
            image(platform="linux/arm64/v8", layers=[2]),
            image(platform="linux/arm/v7", layers=[3]),
        ),
    )
    mock.fail("example.com/app:t4")
    refs = [parse_reference(f"example.com/app:{t}") for t in [*(f"t{i}" for i in range(12)), "multi"]]
    repo = parse_repository("example.com/app")

    class Jittery:
        """The mock's Remote, each answer delayed by a random few milliseconds."""

        def __init__(self, seed: int) -> None:
            self.inner = mock.factory().remote("example.com")
            self.rand = random.Random(seed)
            self.lock = threading.Lock()

        def _nap(self) -> None:
            with self.lock:
                pause = self.rand.random() * 0.01
            time.sleep(pause)

        def tags(self, repo, context=None):  # type: ignore[no-untyped-def]
            return self.inner.tags(repo, context)

        def manifest(self, ref, context=None):  # type: ignore[no-untyped-def]
            self._nap()
            return self.inner.manifest(ref, context)

        def blob(self, repo, digest, context=None):  # type: ignore[no-untyped-def]
            self._nap()
            return self.inner.blob(repo, digest, context)

        def config(self, repo, digest, context=None):  # type: ignore[no-untyped-def]
            self._nap()
            return self.inner.config(repo, digest, context)

        def known_manifest(self, ref, hits=None):  # type: ignore[no-untyped-def]
            return None  # the scan's Protocol asks; a jittery remote holds nothing

        def known_config(self, repo, digest, hits=None):  # type: ignore[no-untyped-def]
            return None

    def rows(seed: int) -> list[tuple[object, ...]]:
        result = scan(Jittery(seed), repo, refs, ScanOptions(concurrency=6), Context())
        return [
            (r["tag"], r.get("platform"), r.get("manifest_digest"), r.get("error")) for r in result.images
        ]

    first = rows(1)
    assert [r[0] for r in first] == [f"t{i}" for i in range(12)] + ["multi"] * 3
    assert [r[1] for r in first[-3:]] == ["linux/amd64", "linux/arm64/v8", "linux/arm/v7"]  # index order
    for seed in (2, 3, 4):
        assert rows(seed) == first


# -- the limiter's rules, on synthetic answers -------------------------------------------------


def window(limiter: HostLimiter, latency: float, status: int = 200) -> None:
    """A full window: rounds of as many requests as the limit, all in flight at once, then
    answered, until the window has its MIN_WINDOW answers."""
    limit = limiter.concurrency
    for _ in range(-(-MIN_WINDOW // limit)):
        tickets = [limiter.acquire(Context()) for _ in range(limit)]
        for ticket in tickets:
            limiter.release(ticket, status, latency)


def events_of(log: RequestLog) -> list[tuple[str, int | None, int]]:
    return [(e.event, e.concurrency_before, e.concurrency) for e in log.events()]


def test_slow_start_doubles_then_additive_growth_after_a_cut() -> None:
    log = RequestLog()
    lim = Limiters(Limits(concurrency=2, max_concurrency=20), log).for_host("h:443")
    for _ in range(4):
        window(lim, 0.030)
    assert lim.concurrency == 20  # 2 -> 4 -> 8 -> 16 -> 20 (capped)
    ticket = lim.acquire(Context())
    lim.release(ticket, 429, 0.030)
    assert lim.concurrency == 10
    window(lim, 0.030)
    window(lim, 0.030)
    assert lim.concurrency == 12  # one more per window once pushed back
    assert events_of(log) == [
        ("start", None, 2),
        ("grow", 2, 4),
        ("grow", 4, 8),
        ("grow", 8, 16),
        ("grow", 16, 20),
        ("halve", 20, 10),
        ("grow", 10, 11),
        ("grow", 11, 12),
    ]


def test_rising_latency_holds_the_limit() -> None:
    log = RequestLog()
    lim = Limiters(Limits(concurrency=4, max_concurrency=64), log).for_host("h")
    window(lim, 0.030)
    assert lim.concurrency == 8
    window(lim, 0.100)  # over 2 x 30 ms + 5 ms: queueing
    window(lim, 0.100)
    assert lim.concurrency == 8
    assert [e.event for e in log.events()].count("hold") == 1  # logged once, not per window
    window(lim, 0.040)  # back within bounds: growth resumes, one at a time now
    assert lim.concurrency == 9
    hold = next(e for e in log.events() if e.event == "hold")
    assert hold.latency_s == pytest.approx(0.1) and hold.baseline_s == pytest.approx(0.03)


def test_the_baseline_forgets_a_lucky_window() -> None:
    lim = HostLimiter("h", Limits(concurrency=8, max_concurrency=64, latency_slack=0.0))
    window(lim, 0.001)  # one window of unusually fast answers
    assert lim.concurrency == 16
    for _ in range(BASELINE_WINDOWS - 1):
        window(lim, 0.030)  # the usual latency reads as queueing, while the lucky one is remembered
    assert lim.concurrency == 16
    window(lim, 0.030)  # ... until it drops out of the filter
    assert lim.concurrency == 17


def test_a_burst_of_429s_from_one_round_halves_once() -> None:
    lim = HostLimiter("h", Limits(concurrency=16, max_concurrency=16))
    tickets = [lim.acquire(Context()) for _ in range(16)]
    for ticket in tickets:
        lim.release(ticket, 429, 0.01)
    assert lim.concurrency == 8
    ticket = lim.acquire(Context())  # sent after the cut: its 429 is news
    lim.release(ticket, 429, 0.01)
    assert lim.concurrency == 4


def test_the_bounds_hold_both_ways() -> None:
    lim = HostLimiter("h", Limits(concurrency=8, min_concurrency=3, max_concurrency=9))
    for _ in range(6):
        lim.release(lim.acquire(Context()), 429, 0.01)
    assert lim.concurrency == 3
    for _ in range(20):
        window(lim, 0.01)
    assert lim.concurrency == 9
    pinned = HostLimiter("h", Limits(concurrency=5, min_concurrency=5, max_concurrency=5))
    window(pinned, 0.01)
    pinned.release(pinned.acquire(Context()), 429, 0.01)
    assert pinned.concurrency == 5


def test_a_pool_that_never_fills_does_not_grow_the_limit() -> None:
    lim = HostLimiter("h", Limits(concurrency=4, max_concurrency=32))
    for _ in range(40):  # one request at a time, as a sequential caller makes them
        lim.release(lim.acquire(Context()), 200, 0.01)
    assert lim.concurrency == 4


def test_failures_are_no_signal() -> None:
    lim = HostLimiter("h", Limits(concurrency=4, max_concurrency=32))
    window(lim, 0.01, status=503)
    tickets = [lim.acquire(Context()) for _ in range(4)]
    for t in tickets:
        lim.release(t, None, 0.01)  # dropped connections
    assert lim.concurrency == 4 and lim.in_flight == 0


def test_a_full_host_makes_the_next_request_wait_and_cancel_wakes_it() -> None:
    lim = HostLimiter("h", Limits(concurrency=1, min_concurrency=1, max_concurrency=1))
    held = lim.acquire(Context())
    ctx = Context()
    outcome: list[BaseException | None] = []

    def second() -> None:
        try:
            lim.release(lim.acquire(ctx), 200, 0.0)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=second)
    worker.start()
    time.sleep(0.2)
    assert outcome == [] and lim.in_flight == 1  # waiting for the slot
    ctx.cancel()
    worker.join(2.0)
    assert len(outcome) == 1 and isinstance(outcome[0], regdata.Cancelled)
    lim.release(held, 200, 0.0)
    assert lim.in_flight == 0
    with pytest.raises(regdata.BudgetExceeded):
        blocker = lim.acquire(Context())
        try:
            lim.acquire(Context.with_budget(0.1))
        finally:
            lim.release(blocker, 200, 0.0)


def test_the_token_bucket_spaces_requests() -> None:
    clock = FakeClock()
    lim = HostLimiter("h", Limits(rps=4.0, burst=2, concurrency=8), clock=clock)
    for _ in range(6):
        lim.release(lim.acquire(Context()), 200, 0.0)  # no time passes between them but the waits
    # Two go at once (the burst), then one every 0.25 s.
    assert clock.sleeps == pytest.approx([0.25, 0.25, 0.25, 0.25])
    clock.now += 10.0  # a quiet spell refills the burst, no more
    clock.sleeps.clear()
    for _ in range(3):
        lim.release(lim.acquire(Context()), 200, 0.0)
    assert clock.sleeps == pytest.approx([0.25])


def test_the_quota_floor_counts_what_is_in_flight() -> None:
    clock = FakeClock()
    lim = HostLimiter("h", Limits(concurrency=8, quota_floor=10), clock=clock)
    tickets = [lim.acquire(Context()) for _ in range(4)]
    lim.release(tickets[0], 200, 0.01, {"RateLimit-Limit": "100;w=60", "RateLimit-Remaining": "14;w=60"})
    # 14 left, 3 still in flight: 11 at most once they land, so one more may go, not two.
    extra = lim.acquire(Context())
    with pytest.raises(QuotaFloorReached, match="10 are kept"):
        lim.acquire(Context())
    for t in [*tickets[1:], extra]:
        lim.release(t, 200, 0.01)
    assert lim.rate_limit is not None and lim.rate_limit.remaining == 14
    clock.now += 61  # the window turned: ask again
    lim.release(lim.acquire(Context()), 200, 0.01, {"RateLimit-Remaining": "99"})
    assert lim.rate_limit is not None and lim.rate_limit.remaining == 99


def test_only_pulls_count_against_the_quota_and_the_default_floor_keeps_some() -> None:
    lim = HostLimiter("h", Limits(concurrency=8))  # quota_floor="auto"
    head = lim.acquire(Context(), pull=False)
    lim.release(head, 200, 0.01, {"RateLimit-Limit": "10;w=3600", "RateLimit-Remaining": "3;w=3600"})
    assert lim.floor == 2 and lim.pulls_left == 3
    lim.release(lim.acquire(Context()), 200, 0.01)  # one pull: 2 left
    with pytest.raises(QuotaFloorReached, match="pull quota: 2 left of 10 per 1 h"):
        lim.acquire(Context())
    for _ in range(5):  # HEADs, tag lists and blobs cost no quota: they go on
        lim.release(lim.acquire(Context(), pull=False), 200, 0.01)
    assert lim.pulls_left == 2
    assert (Limits().floor_for(100), Limits().floor_for(10), Limits().floor_for(None)) == (10, 2, 2)
    assert Limits(quota_floor=None).floor_for(100) is None and Limits(quota_floor=0).floor_for(100) == 0


def test_limits_per_host() -> None:
    limiters = Limiters(Limits(), per_host={"Registry-1.Docker.IO:443": Limits(concurrency=2, rps=1.0)})
    assert limiters.for_url("https://registry-1.docker.io:443/v2/").limits.rps == 1.0
    assert limiters.for_url("https://registry-1.docker.io:443/v2/").concurrency == 2
    assert limiters.for_url("https://ghcr.io/v2/").limits == Limits()
    assert limiters.concurrency("ghcr.io") == 8 and limiters.concurrency("quay.io") is None
    assert set(limiters.hosts()) == {"registry-1.docker.io", "ghcr.io"}  # one key: no default port


def test_a_stale_answer_does_not_raise_the_quota_estimate() -> None:
    lim = HostLimiter("h", Limits(concurrency=8, quota_floor=5))
    older, newer = lim.acquire(Context()), lim.acquire(Context())
    lim.release(newer, 200, 0.01, {"RateLimit-Remaining": "8"})  # counted after the older one
    lim.release(older, 200, 0.01, {"RateLimit-Remaining": "9"})  # overtaken on the way back
    # 8 left when the newer was served, the older possibly counted after it: 7 at most.
    lim.release(lim.acquire(Context()), 200, 0.01)
    lim.release(lim.acquire(Context()), 200, 0.01)
    with pytest.raises(QuotaFloorReached, match="pull quota: 5 left"):
        lim.acquire(Context())
    assert lim.rate_limit is not None and lim.rate_limit.remaining == 9  # exposed as last seen


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"RateLimit-Limit": "100;w=21600", "RateLimit-Remaining": "76;w=21600"}, (100, 76, 21600.0, None)),
        (
            {"ratelimit-limit": "200", "ratelimit-remaining": "0", "ratelimit-reset": "30"},
            (200, 0, None, 30.0),
        ),
        ({"RateLimit-Limit": "10, 10;w=1, 1000;w=3600", "RateLimit-Remaining": "9"}, (10, 9, 1.0, None)),
        ({"RateLimit": "limit=100, remaining=50, reset=5"}, (100, 50, None, 5.0)),
        (
            {
                "X-RateLimit-Limit": "5000",
                "X-RateLimit-Remaining": "4999",
                "X-RateLimit-Reset": str(1_700_000_000 + 90),
            },
            (5000, 4999, None, 90.0),
        ),
        ({"RateLimit-Limit": "lots", "RateLimit-Remaining": ""}, None),
        ({"Content-Type": "application/json"}, None),
    ],
)
def test_parse_rate_limit(headers: dict[str, str], expected: object) -> None:
    from requests.structures import CaseInsensitiveDict

    assert parse_rate_limit(CaseInsensitiveDict(headers), 1_700_000_000.0) == expected


@pytest.mark.parametrize(
    "bad",
    [
        {"concurrency": 0},
        {"concurrency": 8, "max_concurrency": 4},
        {"min_concurrency": 9},
        {"rps": 0.0},
        {"burst": 0},
        {"quota_floor": -1},
        {"latency_tolerance": 0.5},
    ],
)
def test_limits_reject_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Limits(**bad)  # type: ignore[arg-type]


def test_default_limits_are_polite() -> None:
    reg = regdata.Registry(cache=None, credentials=regdata.Credentials.none())
    assert (reg.limits.concurrency, reg.limits.min_concurrency, reg.limits.max_concurrency) == (8, 1, 32)
    assert reg.limits.rps is None and reg.limits.quota_floor == "auto"
    assert (
        regdata.Registry(
            cache=None, credentials=regdata.Credentials.none(), concurrency=48
        ).limits.max_concurrency
        == 48
    )
    with pytest.raises(ValueError):
        regdata.Registry(cache=None, credentials=regdata.Credentials.none(), concurrency=8, max_concurrency=4)
