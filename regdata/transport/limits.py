"""Per-host limits: how many requests at a time, how many a second, and how much quota to keep.

One :class:`HostLimiter` per host (keyed by :func:`regdata.transport.base.host_key`),
shared by every Remote and scan of a factory, sits in the transport below
the retry layer (:class:`LimitTransport`), so each attempt takes a slot and
a retry's wait holds none.

Concurrency adapts to what the host sustains (AIMD, as TCP does with its
window, and as Flux v1's later rate limiter did with its rate):

- it starts at :attr:`Limits.concurrency` (8: the peers' and the floor's
  pool size, polite to a public registry);
- after each *window* of answers (as many as the current limit, so about one
  round trip of the whole pool, and at least 8, so a median means something)
  whose median latency holds (at most ``latency_tolerance`` times the
  baseline, plus ``latency_slack``) it grows: doubling while it has never been pushed back
  (slow start), by one afterwards.  A window in which the limit was never
  reached says nothing about it, so it does not grow (the limit of a
  sequential caller stays where it is rather than creep up untested);
- a window whose latency rose stops the slow start and holds the limit:
  the registry is queueing.  The baseline is the lowest window median of
  the last 16 windows (a min-RTT filter, as BBR keeps one), so a lucky
  window is forgotten and a route that got slower for good is learned;
- a 429 halves it, once per round: answers to requests sent before the cut
  carry no news, so a burst of 429s halves it once, not to the floor;
- it stays within ``[min_concurrency, max_concurrency]``.

A requests-per-second limit (a token bucket) is optional.  A quota floor is
on by default: Docker Hub's ``RateLimit-Limit`` / ``RateLimit-Remaining``
headers are read from every answer (:attr:`HostLimiter.rate_limit`), and no
*pull* (a manifest GET, what Docker Hub counts) is sent that could take the
remaining quota below the floor; such a request fails with
:class:`QuotaFloorReached`, so a scan ends with rows saying so instead of the
account being locked out.  HEADs, tag lists and blobs cost no quota and go on.
The default floor (``"auto"``) keeps 10% of the announced limit, at least 2
pulls: 10 of Docker Hub's 100 per 6 hours, 2 of the anonymous 10 per hour,
enough for a person to still pull by hand what a report says is behind.

(Over 500 lines, formatted: one host's limiter, whose adaptation, token bucket
and quota floor share its lock and state; the headers are apart, in ``ratelimit.py``.)
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from regdata.context import Context
from regdata.errors import QuotaFloorReached, RegdataError
from regdata.instrument.requestlog import LimiterEvent, RequestLog
from regdata.transport.base import Request, Response, Transport, host_key
from regdata.transport.ratelimit import RateLimit, parse_rate_limit
from regdata.transport.retry import Clock, SystemClock, parse_retry_after

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_MAX_CONCURRENCY",
    "QUOTA_KEEP_MIN",
    "QUOTA_KEEP_SHARE",
    "HostLimiter",
    "LimitTransport",
    "Limiters",
    "Limits",
    "QuotaFloorReached",
]

log = logging.getLogger("regdata.transport.limits")

# Start where the peers and the benchmark's floor run: 8 at a time per host.
DEFAULT_CONCURRENCY = 8
# Ceiling of the adaptation.  Little's law: to keep the one core Python gives
# us busy, about RTT / (CPU time per request) must be in flight; a scan costs
# ~1.5 ms of CPU per request (measured: 250 tags, 453 requests), so a 30 ms WAN
# needs ~20.  More only queues on the GIL while loading the registry further
# (measured through a 30 ms proxy: 1.2 s with 32 at most, 1.9 s with 64, 2.5 s
# pinned at 8).  A user may raise it, or pin the concurrency with min = max.
DEFAULT_MAX_CONCURRENCY = 32

# The default quota floor ("auto"): keep this share of a host's announced limit, and at least
# this many pulls, so a person can still pull by hand what the report says is behind.
QUOTA_KEEP_SHARE = 0.10
QUOTA_KEEP_MIN = 2

# How often a thread waiting for a slot looks at its context (cancel, budget).
_POLL = 0.05
# Fewest answers a window's median is taken over; how many windows the baseline remembers.
MIN_WINDOW = 8
BASELINE_WINDOWS = 16


@dataclass(frozen=True)
class Limits:
    """What a host may be asked, per host.

    Args:
        concurrency: requests at a time to start with.
        min_concurrency: the least the adaptation may go down to.
        max_concurrency: the most it may grow to; ``min == max`` pins it.
        rps: requests per second at most (None: no limit).
        burst: requests that may go at once above ``rps`` after a quiet spell.
        quota_floor: send no pull (manifest GET) to a host whose ``RateLimit-Remaining``
            would go below this: a number of pulls, ``"auto"`` (the default: 10% of the
            announced limit, at least 2), or None (never stop).
        latency_tolerance: a window's median latency up to this multiple of
            the best seen (plus ``latency_slack`` seconds) "holds".
        latency_slack: absolute slack, so sub-millisecond jitter on a LAN
            does not read as queueing.
    """

    concurrency: int = DEFAULT_CONCURRENCY
    min_concurrency: int = 1
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    rps: float | None = None
    burst: int = 1
    quota_floor: int | Literal["auto"] | None = "auto"
    latency_tolerance: float = 2.0
    latency_slack: float = 0.005

    def __post_init__(self) -> None:
        if not 1 <= self.min_concurrency <= self.concurrency <= self.max_concurrency:
            raise ValueError(
                "concurrency bounds must satisfy 1 <= min_concurrency <= concurrency <= "
                f"max_concurrency, got {self.min_concurrency} <= {self.concurrency} <= "
                f"{self.max_concurrency}"
            )
        if self.rps is not None and not self.rps > 0:
            raise ValueError(f"rps must be positive, got {self.rps}")
        if self.burst < 1:
            raise ValueError(f"burst must be at least 1, got {self.burst}")
        if (
            self.quota_floor != "auto"
            and self.quota_floor is not None
            and (not isinstance(self.quota_floor, int) or self.quota_floor < 0)
        ):
            raise ValueError(
                f"quota_floor must be 'auto', None or a number not negative, got {self.quota_floor!r}"
            )
        if self.latency_tolerance < 1:
            raise ValueError(f"latency_tolerance must be at least 1, got {self.latency_tolerance}")

    @property
    def adaptive(self) -> bool:
        """True when the concurrency may move."""
        return self.min_concurrency < self.max_concurrency

    def floor_for(self, limit: int | None) -> int | None:
        """The pulls to keep at a host that announced ``limit`` (None: no floor)."""
        if self.quota_floor != "auto":
            return self.quota_floor
        share = int(limit * QUOTA_KEEP_SHARE + 0.999) if limit is not None else 0
        return max(QUOTA_KEEP_MIN, share)


# ---------------------------------------------------------------------------- one host


@dataclass
class _Ticket:
    """What a request took on its way out, handed back with its answer."""

    epoch: int
    limit: int
    seq: int = 0  # pulls sent up to it (itself included, when a pull), for the quota
    before: int = 0  # pulls in flight when it went out: the server may count them after it
    pull: bool = True


class HostLimiter:
    """Slots, tokens and quota of one host; thread-safe.

    :meth:`acquire` before sending (it waits, through the request's context,
    so a cancelled or timed-out scan stops waiting), :meth:`release` with
    the outcome after.
    """

    def __init__(
        self,
        host: str,
        limits: Limits,
        clock: Clock | None = None,
        on_event: Callable[[LimiterEvent], None] | None = None,
    ) -> None:
        self.host = host
        self.limits = limits
        self.clock: Clock = clock or SystemClock()
        self._on_event = on_event
        self._cond = threading.Condition()
        self._limit = limits.concurrency
        self._in_flight = 0
        self._epoch = 0  # bumped at each cut: answers from older epochs carry no news
        self._slow_start = True
        self._holding = False
        self._medians: deque[float] = deque(maxlen=BASELINE_WINDOWS)
        self._window: list[float] = []
        self._window_peak = 0
        self._next_token = float("-inf")
        self._rate: RateLimit | None = None
        # The quota left now is estimated as _quota_base - _sent (see _observe_quota).
        self._sent = 0  # pulls sent
        self._pulls_in_flight = 0
        self._quota_seq = 0  # seq of the request whose answer the estimate rests on
        self._quota_base: int | None = None
        self._quota_until: float | None = None  # monotonic time the quota resets, when known
        self._event("start", None, self._limit, reason="initial concurrency")

    # -- what it is at -------------------------------------------------------

    @property
    def concurrency(self) -> int:
        """Requests at a time allowed now."""
        return self._limit

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet answered."""
        return self._in_flight

    @property
    def rate_limit(self) -> RateLimit | None:
        """The latest rate-limit headers of this host, if it sent any."""
        return self._rate

    def __repr__(self) -> str:
        return f"HostLimiter({self.host}, concurrency={self._limit}, in_flight={self._in_flight})"

    # -- on the way out --------------------------------------------------------

    def acquire(self, context: Context, pull: bool = True) -> _Ticket:
        """Wait for a slot (and a token, with ``rps``); refuse a pull when the quota is at its floor.

        ``pull``: whether the request counts against the host's quota (a manifest GET).
        """
        if pull:
            self._check_quota(take=False)
        with self._cond:
            while self._in_flight >= self._limit:
                context.check()
                left = context.remaining()
                self._cond.wait(_POLL if left is None else max(0.0, min(_POLL, left)))
            context.check()
            self._in_flight += 1
            self._window_peak = max(self._window_peak, self._in_flight)
            ticket = _Ticket(self._epoch, self._limit, pull=pull)
            if not pull:  # its answer's quota headers still tell: placed among the pulls sent
                ticket.seq, ticket.before = self._sent, self._pulls_in_flight
        try:
            if self.limits.rps is not None:
                self._take_token(context)
            if pull:
                self._check_quota(take=True, ticket=ticket)
        except BaseException:
            self._give_back(ticket)
            raise
        return ticket

    def _give_back(self, ticket: _Ticket) -> None:
        with self._cond:
            self._in_flight -= 1
            if ticket.pull and ticket.seq:
                self._pulls_in_flight -= 1
            self._cond.notify()

    def _take_token(self, context: Context) -> None:
        assert self.limits.rps is not None
        interval = 1.0 / self.limits.rps
        with self._cond:
            now = self.clock.monotonic()
            # A reservation: each caller books the next free instant, so waiters go in order.
            start = max(self._next_token, now - (self.limits.burst - 1) * interval)
            self._next_token = start + interval
        wait = start - now
        if wait > 0:
            self.clock.sleep(wait, context)

    @property
    def pulls_left(self) -> int | None:
        """The pulls this host will still serve, as estimated from its last answer; None if unknown."""
        with self._cond:
            self._forget_turned_window()
            return None if self._quota_base is None else max(self._quota_base - self._sent, 0)

    @property
    def floor(self) -> int | None:
        """The pulls kept at this host (None: no floor)."""
        rate = self._rate
        return self.limits.floor_for(rate.limit if rate is not None else None)

    def _forget_turned_window(self) -> None:
        if self._quota_until is not None and self.clock.monotonic() >= self._quota_until:
            self._quota_base = self._quota_until = None  # the window turned: ask afresh

    def _check_quota(self, take: bool, ticket: _Ticket | None = None) -> None:
        with self._cond:
            self._forget_turned_window()
            floor = self.floor
            if floor is not None and self._quota_base is not None:
                left = self._quota_base - self._sent
                if left - 1 < floor:
                    rate = self._rate
                    what = rate.describe(max(left, 0)) if rate is not None else f"{max(left, 0)} left"
                    raise QuotaFloorReached(f"pull quota: {what} at {self.host}, and {floor} are kept")
            if take and ticket is not None:
                self._sent += 1
                ticket.seq = self._sent
                ticket.before = self._pulls_in_flight
                self._pulls_in_flight += 1

    # -- on the way back -------------------------------------------------------

    def release(
        self,
        ticket: _Ticket,
        status: int | None,
        latency: float,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Hand the slot back with the outcome: ``status`` None for no answer at all."""
        with self._cond:
            self._in_flight -= 1
            if ticket.pull and ticket.seq:
                self._pulls_in_flight -= 1
            self._cond.notify()
            if headers is not None:
                self._observe_quota(headers, ticket)
            if status == 429:
                # A host that says when to come back is held that long by the retry layer;
                # halving too would slow it long after the throttling ended.
                asked = parse_retry_after((headers or {}).get("Retry-After"), self.clock.wall())
                if not asked:
                    self._cut(ticket)
            elif status is not None and status < 500:
                self._sample(ticket, latency)
            # 5xx and dropped connections say the host failed, not that it is busy: no signal.

    def _observe_quota(self, headers: Mapping[str, str], ticket: _Ticket) -> None:
        parsed = parse_rate_limit(headers, self.clock.wall())
        if parsed is None:
            return
        limit, remaining, window, reset = parsed
        self._rate = RateLimit(
            self.host, limit, remaining, window, reset, datetime.fromtimestamp(self.clock.wall(), UTC)
        )
        if remaining is None or ticket.seq < self._quota_seq:
            return  # an answer overtaken by a fresher one: what it says is stale
        # The registry counted `remaining` when it served this request.  It may count after
        # it every pull sent later (_sent - seq) and those in flight when it went out
        # (before): the estimate left = remaining - before - (_sent - seq) = base - _sent.
        self._quota_seq = ticket.seq
        self._quota_base = remaining - ticket.before + ticket.seq
        period = reset if reset is not None else window
        self._quota_until = None if period is None else self.clock.monotonic() + period

    def _cut(self, ticket: _Ticket) -> None:
        if ticket.epoch != self._epoch:
            return  # sent before the last cut: already answered for
        before = self._limit
        self._limit = max(self.limits.min_concurrency, self._limit // 2)
        self._epoch += 1
        self._slow_start = False
        self._holding = False
        self._window.clear()
        self._window_peak = self._in_flight
        if self._limit != before:
            self._event("halve", before, self._limit, reason="429 Too Many Requests")

    def _sample(self, ticket: _Ticket, latency: float) -> None:
        if not self.limits.adaptive or ticket.epoch != self._epoch:
            return
        self._window.append(latency)
        if len(self._window) < max(self._limit, MIN_WINDOW):
            return
        median = statistics.median(self._window)
        busy = self._window_peak >= self._limit
        self._window.clear()
        self._window_peak = self._in_flight
        if not busy:
            return  # the pool never filled: nothing learned about this limit
        self._medians.append(median)
        baseline = min(self._medians)
        if median > baseline * self.limits.latency_tolerance + self.limits.latency_slack:
            self._slow_start = False
            if not self._holding:
                self._holding = True
                self._event(
                    "hold",
                    self._limit,
                    self._limit,
                    median,
                    baseline,
                    "latency rose: the registry is queueing",
                )
            return
        self._holding = False
        if self._limit >= self.limits.max_concurrency:
            return
        before = self._limit
        grown = before * 2 if self._slow_start else before + 1
        self._limit = min(self.limits.max_concurrency, grown)
        self._cond.notify_all()
        self._event(
            "grow",
            before,
            self._limit,
            median,
            baseline,
            "slow start: latency holds" if self._slow_start else "latency holds",
        )

    def _event(
        self,
        event: str,
        before: int | None,
        after: int,
        latency: float | None = None,
        baseline: float | None = None,
        reason: str | None = None,
    ) -> None:
        log.debug("%s: concurrency %s -> %s (%s)", self.host, before, after, reason)
        if self._on_event is not None:
            self._on_event(
                LimiterEvent(self.clock.wall(), self.host, event, before, after, latency, baseline, reason)
            )


# ---------------------------------------------------------------------------- every host


class Limiters:
    """One :class:`HostLimiter` per host, made on first use; their events go to ``log``."""

    def __init__(
        self,
        limits: Limits | None = None,
        log: RequestLog | None = None,
        clock: Clock | None = None,
        per_host: Mapping[str, Limits] | None = None,
    ) -> None:
        self.limits = limits or Limits()
        self.per_host = {host_key(k): v for k, v in (per_host or {}).items()}
        self.log = log
        self.clock = clock
        self._hosts: dict[str, HostLimiter] = {}
        self._lock = threading.Lock()

    def for_host(self, host: str) -> HostLimiter:
        """The limiter of ``host`` (``ghcr.io`` and ``ghcr.io:443`` are one: :func:`host_key`)."""
        key = host_key(host)
        with self._lock:
            limiter = self._hosts.get(key)
            if limiter is None:
                on_event = self.log.record_event if self.log is not None else None
                limiter = HostLimiter(key, self.per_host.get(key, self.limits), self.clock, on_event)
                self._hosts[key] = limiter
            return limiter

    def for_url(self, url: str) -> HostLimiter:
        """The limiter of a URL's host."""
        return self.for_host(host_key(url))

    def concurrency(self, host: str) -> int | None:
        """The concurrency allowed now at ``host``; None for a host not yet spoken to."""
        limiter = self._hosts.get(host_key(host))
        return limiter.concurrency if limiter is not None else None

    def rate_limits(self) -> dict[str, RateLimit]:
        """The latest rate-limit headers of every host that sent some."""
        with self._lock:
            limiters = list(self._hosts.values())
        return {lim.host: lim.rate_limit for lim in limiters if lim.rate_limit is not None}

    def hosts(self) -> dict[str, HostLimiter]:
        """Every host's limiter, by host."""
        with self._lock:
            return dict(self._hosts)


# ---------------------------------------------------------------------------- the layer


@dataclass
class LimitTransport:
    """The transport layer that makes each attempt wait for its host's slot, token and quota."""

    inner: Transport
    limiters: Limiters = field(default_factory=Limiters)

    def send(self, request: Request) -> Response:
        """Acquire, send, release with the outcome (status, latency, rate-limit headers)."""
        limiter = self.limiters.for_url(request.url)
        ticket = limiter.acquire(request.context, pull=request.method == "GET" and request.kind == "manifest")
        started = time.perf_counter()
        try:
            response = self.inner.send(request)
        except RegdataError:
            limiter.release(ticket, None, time.perf_counter() - started)
            raise
        except BaseException:
            limiter.release(ticket, None, 0.0)
            raise
        limiter.release(ticket, response.status, time.perf_counter() - started, response.headers)
        return response
