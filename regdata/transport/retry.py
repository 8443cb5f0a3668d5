"""Backoff: retry what a throttled or flaky registry refuses, within bounds.

The Flux v1 ``BackoffRoundTripper`` done right: a bounded total time per
request (and the scan's budget), ``Retry-After`` honoured (capped), exponential
backoff with jitter otherwise, only idempotent methods retried, and the state
shared per host, so one 429 slows every request to that host and the pace
recovers a step at each success.

What is retried is go-containerregistry's set (408, 429, 500, 502, 503, 504)
and dropped connections.  A throttling registry that says when to come back
(``Retry-After``) is waited for as long as the request's and the scan's time
allow: those waits do not count against ``attempts``, which bounds only the
failures that say nothing (a dropped connection, a 5xx without Retry-After).
A 429 for a pull quota used up (``RateLimit-Remaining: 0``, or Docker Hub's
"You have reached your pull rate limit", with no Retry-After) is not retried:
the quota comes back in hours, not seconds.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol
from urllib.parse import urlsplit

from regdata.context import Context
from regdata.errors import BudgetExceeded, RegdataError, TransportError
from regdata.transport.base import Request, Response, Transport, host_key

__all__ = [
    "Clock",
    "HostBackoff",
    "RetryPolicy",
    "RetryTransport",
    "parse_retry_after",
    "quota_exhausted",
]

# go-containerregistry's retryable statuses (pkg/v1/remote/options.go).
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# Docker Hub's words when an account's or address's pull quota is used up.
_PULL_LIMIT_TEXT = b"pull rate limit"
IDEMPOTENT = frozenset({"GET", "HEAD"})
# delta-seconds; a decimal point is tolerated (some proxies send one), a sign is not.
# ASCII digits only: str.isdigit() and \d take "²" and "٣" too.
_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")

log = logging.getLogger("regdata.transport")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one request.

    ``attempts`` counts the first try and the failures that say nothing of
    when to come back (a ``Retry-After`` wait is not counted: ``total`` and
    the scan's budget bound it); ``total`` bounds the time spent on a
    request including its waits; ``max_retry_after`` caps what a registry
    may ask us to wait (an absurd ``Retry-After`` gives up instead).

    ``breaker``: after this many requests in a row to a host got no answer
    at all (refused, reset, timed out) and none got one in between, the
    host is taken for down: for ``maximum`` seconds after its last failure
    its requests fail at once without being sent, and none is retried
    until one gets an answer again.  A registry killed in the middle of a
    scan of a thousand tags then costs seconds, not every tag's full retry
    schedule.  0 turns it off.
    """

    attempts: int = 5
    initial: float = 0.2
    maximum: float = 10.0
    factor: float = 2.0
    jitter: float = 0.5
    total: float = 60.0
    max_retry_after: float = 60.0
    breaker: int = 10

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts counts the first try: at least 1, got {self.attempts}")
        if not 0 <= self.initial <= self.maximum:
            raise ValueError(f"need 0 <= initial <= maximum, got {self.initial} and {self.maximum}")
        if self.factor < 1:
            raise ValueError(f"factor must be at least 1, got {self.factor}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter is a fraction in [0, 1], got {self.jitter}")
        if self.total <= 0 or self.max_retry_after < 0:
            raise ValueError("total must be positive and max_retry_after not negative")
        if self.breaker < 0:
            raise ValueError(f"breaker counts failures: 0 (off) or more, got {self.breaker}")

    def delay(self, step: int, rand: float) -> float:
        """The wait before retry number ``step`` (1-based); ``rand`` in [0, 1) draws the jitter."""
        base = min(self.maximum, self.initial * self.factor ** max(step - 1, 0))
        return base * (1 - self.jitter * rand)


def quota_exhausted(status: int, headers: Mapping[str, str], body: bytes) -> bool:
    """A 429 for a quota used up, not a throttle: remaining 0, or Docker Hub's words, and no Retry-After."""
    if status != 429 or headers.get("Retry-After"):
        return False
    remaining = headers.get("RateLimit-Remaining") or headers.get("X-RateLimit-Remaining") or ""
    if remaining.split(";", 1)[0].strip() == "0":
        return True
    return _PULL_LIMIT_TEXT in body[:65536].lower()


class Clock(Protocol):
    """Time as the retry layer sees it; tests pass a fake one."""

    def monotonic(self) -> float:
        """Seconds on a clock that only goes forward."""
        ...

    def wall(self) -> float:
        """Seconds since the epoch (for HTTP-date ``Retry-After``)."""
        ...

    def sleep(self, seconds: float, context: Context) -> None:
        """Wait, waking early when the context is cancelled."""
        ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        """time.monotonic()."""
        return time.monotonic()

    def wall(self) -> float:
        """time.time()."""
        return time.time()

    def sleep(self, seconds: float, context: Context) -> None:
        """Sleep through the context, so cancel and the budget cut it short."""
        context.sleep(seconds)


def parse_retry_after(value: str | None, now_wall: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date.

    None when absent or unreadable (the exponential schedule applies then);
    a date in the past is 0.
    """
    if not value:
        return None
    text = value.strip()
    if _SECONDS.fullmatch(text):
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):  # OverflowError: a year of 20 digits
        return None
    if when is None or when.tzinfo is None:
        return None  # RFC 9110 dates are GMT; a zoneless one is not a valid HTTP date
    return max(0.0, when.timestamp() - now_wall)


@dataclass
class HostBackoff:
    """Backoff state shared by every request to one host."""

    level: int = 0
    not_before: float = 0.0
    throttled: int = 0
    #: Requests in a row that got no answer at all; any answer resets it.
    streak: int = 0
    down_until: float = 0.0
    held_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record_throttle(self, until: float, now: float | None = None) -> None:
        """A 429/5xx: raise the level and hold every request to the host until ``until``.

        ``held_s`` sums the time the host was held (overlapping holds once): the waits
        a throttled scan could not avoid, to compare its time with.
        """
        with self._lock:
            self.level += 1
            self.throttled += 1
            start = self.not_before if now is None else max(self.not_before, now)
            self.held_s += max(until - start, 0.0)
            self.not_before = max(self.not_before, until)

    def record_success(self) -> None:
        """One success lowers the level one step."""
        if self.level:
            with self._lock:
                self.level = max(0, self.level - 1)

    def record_answer(self) -> None:
        """Any HTTP answer, even a 503, shows the host is up: the breaker closes."""
        if self.streak:
            with self._lock:
                self.streak = 0

    def record_failure(self, now: float, breaker: int, cooldown: float) -> None:
        """A request got no answer at all; the ``breaker``-th in a row takes the host for down."""
        with self._lock:
            self.streak += 1
            if breaker and self.streak >= breaker:
                self.down_until = now + cooldown

    def down(self, breaker: int) -> bool:
        """Whether the breaker is tripped: no request is retried until one gets an answer."""
        return bool(breaker) and self.streak >= breaker


@dataclass
class RetryTransport:
    """Retries 408, 429, 500, 502, 503, 504 and dropped connections of GET and HEAD requests."""

    inner: Transport
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    clock: Clock = field(default_factory=SystemClock)
    rand: Callable[[], float] = random.random
    _hosts: dict[str, HostBackoff] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def host(self, url: str) -> HostBackoff:
        """The shared backoff state of this URL's host."""
        key = host_key(url)
        with self._lock:
            return self._hosts.setdefault(key, HostBackoff())

    def send(self, request: Request) -> Response:
        """Send, retrying within the policy's attempts and total time."""
        state = self.host(request.url)
        start = self.clock.monotonic()
        retryable = request.method in IDEMPOTENT
        attempt = 1
        failures = 0  # attempts that failed without saying when to come back
        breaker = self.policy.breaker
        while True:
            if state.down(breaker) and self.clock.monotonic() < state.down_until:
                raise TransportError(
                    f"{_where(request)}: not sent: {state.streak} requests in a row to this host "
                    "got no answer; it is taken for down for now"
                )
            hold = state.not_before - self.clock.monotonic()
            if hold > 0:
                # Another request's 429 holds the host; never past this request's own bound.
                left = self.policy.total - (self.clock.monotonic() - start)
                self.clock.sleep(min(hold, max(left, 0.0)), request.context)
            try:
                response = self.inner.send(replace(request, attempt=attempt))
            except RegdataError as exc:
                if isinstance(exc, TransportError) and exc.temporary:
                    state.record_failure(self.clock.monotonic(), breaker, self.policy.maximum)
                if not (retryable and exc.temporary) or failures + 1 >= self.policy.attempts:
                    raise
                if state.down(breaker):
                    raise  # the host looks down: no retry until a request gets an answer
                delay = self.policy.delay(max(failures + 1, state.level + 1), self.rand())
                if not self._may_wait(request, start, delay):
                    raise
                state.record_throttle(self.clock.monotonic() + delay, self.clock.monotonic())
                reason, counted = type(exc).__name__, True
            else:
                state.record_answer()
                if response.status not in RETRY_STATUSES or not retryable:
                    state.record_success()
                    return response
                if quota_exhausted(response.status, response.headers, response.body):
                    log.debug("%s: the pull quota is used up; not retried", _where(request))
                    return response
                asked = parse_retry_after(response.headers.get("Retry-After"), self.clock.wall())
                if asked is not None and asked > self.policy.max_retry_after:
                    log.debug(
                        "%s: Retry-After %.0f s is over the %.0f s cap; giving up",
                        _where(request),
                        asked,
                        self.policy.max_retry_after,
                    )
                    return response  # an absurd wait: give up now rather than hang
                delay = (
                    asked
                    if asked is not None
                    else self.policy.delay(max(failures + 1, state.level + 1), self.rand())
                )
                state.record_throttle(self.clock.monotonic() + delay, self.clock.monotonic())
                # A registry that says when to come back is waited for within the time left;
                # the attempts bound only the failures that say nothing.
                counted = not asked
                if (counted and failures + 1 >= self.policy.attempts) or not self._may_wait(
                    request, start, delay
                ):
                    return response
                reason = f"HTTP {response.status}"
            failures += counted
            log.debug("%s: %s on attempt %d; retrying in %.3f s", _where(request), reason, attempt, delay)
            attempt += 1
            self.clock.sleep(delay, request.context)

    def _may_wait(self, request: Request, start: float, delay: float) -> bool:
        """Whether waiting ``delay`` stays within the request's total time; raise past the budget."""
        if self.clock.monotonic() - start + delay > self.policy.total:
            return False
        left = request.context.remaining()
        if left is not None and delay >= left:
            # Sleeping to the deadline only to fail there holds a thread for nothing.
            raise BudgetExceeded("timed out: the scan's time budget ran out")
        return True


def _where(request: Request) -> str:
    """Method, host and path: never the query string (token requests carry the account there)."""
    parts = urlsplit(request.url)
    return f"{request.method} {parts.netloc}{parts.path}"
