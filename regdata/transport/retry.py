"""Backoff: retry what a throttled or flaky registry refuses, within bounds.

The Flux v1 ``BackoffRoundTripper`` done right: a bounded number of attempts
and a bounded total time per request, ``Retry-After`` honoured (capped),
exponential backoff with jitter otherwise, only idempotent methods retried,
and the state shared per host, so one 429 slows every request to that host
and the pace recovers a step at each success.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

from ..context import Context
from ..errors import RegdataError
from .base import Request, Response, Transport, netloc

__all__ = ["Clock", "HostBackoff", "RetryPolicy", "RetryTransport", "parse_retry_after"]

RETRY_STATUSES = frozenset({429, 502, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one request.

    ``attempts`` counts the first try; ``total`` bounds the time spent on a
    request including its waits; ``max_retry_after`` caps what a registry
    may ask us to wait (an absurd ``Retry-After`` gives up instead).
    """

    attempts: int = 5
    initial: float = 0.2
    maximum: float = 10.0
    factor: float = 2.0
    jitter: float = 0.5
    total: float = 60.0
    max_retry_after: float = 60.0

    def delay(self, step: int, rand: float) -> float:
        """The wait before retry number ``step`` (1-based); ``rand`` in [0, 1) draws the jitter."""
        base = min(self.maximum, self.initial * self.factor ** max(step - 1, 0))
        return base * (1 - self.jitter * rand)


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
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now_wall)


@dataclass
class HostBackoff:
    """Backoff state shared by every request to one host."""

    level: int = 0
    not_before: float = 0.0
    throttled: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record_throttle(self, until: float) -> None:
        """A 429/5xx: raise the level and hold every request to the host until ``until``."""
        with self._lock:
            self.level += 1
            self.throttled += 1
            self.not_before = max(self.not_before, until)

    def record_success(self) -> None:
        """One success lowers the level one step."""
        if self.level:
            with self._lock:
                self.level = max(0, self.level - 1)


@dataclass
class RetryTransport:
    """Retries 429, 502, 503, 504 and dropped connections of GET and HEAD requests."""

    inner: Transport
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    clock: Clock = field(default_factory=SystemClock)
    rand: Callable[[], float] = random.random
    _hosts: dict[str, HostBackoff] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def host(self, url: str) -> HostBackoff:
        """The shared backoff state of this URL's host."""
        key = netloc(url)
        with self._lock:
            return self._hosts.setdefault(key, HostBackoff())

    def send(self, request: Request) -> Response:
        """Send, retrying within the policy's attempts and total time."""
        state = self.host(request.url)
        start = self.clock.monotonic()
        retryable = request.method in IDEMPOTENT
        attempt = 1
        while True:
            hold = state.not_before - self.clock.monotonic()
            if hold > 0:
                self.clock.sleep(hold, request.context)
            try:
                response = self.inner.send(replace(request, attempt=attempt))
            except RegdataError as exc:
                if not (retryable and exc.temporary) or attempt >= self.policy.attempts:
                    raise
                delay = self.policy.delay(max(attempt, state.level + 1), self.rand())
                if self.clock.monotonic() - start + delay > self.policy.total:
                    raise
                state.record_throttle(self.clock.monotonic() + delay)
            else:
                if response.status not in RETRY_STATUSES or not retryable:
                    state.record_success()
                    return response
                asked = parse_retry_after(response.headers.get("Retry-After"), self.clock.wall())
                if asked is not None and asked > self.policy.max_retry_after:
                    return response  # an absurd wait: give up now rather than hang
                delay = (
                    asked
                    if asked is not None
                    else self.policy.delay(max(attempt, state.level + 1), self.rand())
                )
                state.record_throttle(self.clock.monotonic() + delay)
                if attempt >= self.policy.attempts:
                    return response
                if self.clock.monotonic() - start + delay > self.policy.total:
                    return response
            attempt += 1
            self.clock.sleep(delay, request.context)
