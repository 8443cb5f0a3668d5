"""The backoff schedule of RetryTransport, on a fake clock: nothing here sleeps.

A scripted inner transport answers each attempt; the fake clock records
every wait the retry layer asks for and moves time forward by it.
"""

from __future__ import annotations

import email.utils
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from requests.structures import CaseInsensitiveDict

from regdata import BudgetExceeded, Cancelled, TransportError
from regdata.context import Context
from regdata.transport import Request, Response, RetryPolicy, RetryTransport, parse_retry_after
from regdata.transport.retry import quota_exhausted

WALL0 = 1_700_000_000.0  # the fake wall clock's start: whole seconds, so HTTP dates are exact


@dataclass
class FakeClock:
    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return WALL0 + self.now

    def sleep(self, seconds: float, context: Context) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        context.check()


Outcome = int | tuple[int, dict[str, str]] | Exception


@dataclass
class Script:
    """An inner transport answering from a list; the last outcome repeats."""

    outcomes: list[Outcome]
    clock: FakeClock
    latency: float = 0.0
    sent: list[tuple[float, Request]] = field(default_factory=list)
    body: bytes = b""

    def send(self, request: Request) -> Response:
        self.sent.append((self.clock.now, request))
        self.clock.now += self.latency
        outcome = self.outcomes[min(len(self.sent) - 1, len(self.outcomes) - 1)]
        if isinstance(outcome, Exception):
            raise outcome
        status, headers = outcome if isinstance(outcome, tuple) else (outcome, {})
        return Response(status, CaseInsensitiveDict(headers), self.body, request.url, request)

    @property
    def attempts(self) -> list[int]:
        return [r.attempt for _, r in self.sent]


def dropped() -> TransportError:
    return TransportError("connection failed for GET http://127.0.0.1:1/v2/: reset by peer")


def make(
    outcomes: list[Outcome], rand: Callable[[], float] = lambda: 0.0, latency: float = 0.0, **policy: float
) -> tuple[RetryTransport, Script, FakeClock]:
    clock = FakeClock()
    script = Script(outcomes, clock, latency)
    settings: dict[str, float] = {"jitter": 0.0, "total": 1000.0, **policy}
    transport = RetryTransport(script, RetryPolicy(**settings), clock, rand)  # type: ignore[arg-type]
    return transport, script, clock


def get(
    path: str = "/v2/r/manifests/t",
    host: str = "127.0.0.1:5000",
    method: str = "GET",
    context: Context | None = None,
) -> Request:
    return Request(method, f"http://{host}{path}", "manifest", context=context or Context())


# -- the exponential schedule -------------------------------------------------------------


def test_backoff_grows_by_the_factor_then_stays_at_the_cap() -> None:
    transport, script, clock = make([503] * 7 + [200], initial=0.1, factor=2.0, maximum=1.0, attempts=10)
    assert transport.send(get()).status == 200
    assert clock.sleeps == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])
    assert script.attempts == [1, 2, 3, 4, 5, 6, 7, 8]


def test_jitter_stays_within_its_bounds() -> None:
    policy = RetryPolicy(initial=0.5, factor=2.0, maximum=4.0, jitter=0.3)
    draws = random.Random(7)
    for step in range(1, 8):
        base = min(4.0, 0.5 * 2 ** (step - 1))
        for _ in range(200):
            assert base * 0.7 <= policy.delay(step, draws.random()) <= base
    assert policy.delay(3, 0.0) == 2.0  # no jitter drawn: the full step
    assert policy.delay(3, 0.999999) == pytest.approx(2.0 * 0.7, rel=1e-5)


def test_jittered_waits_through_the_transport() -> None:
    draws = iter([0.0, 0.5, 0.99])
    transport, _, clock = make(
        [502, 502, 502, 200],
        rand=lambda: next(draws),
        initial=1.0,
        factor=2.0,
        maximum=10.0,
        jitter=0.5,
        attempts=5,
    )
    transport.send(get())
    assert clock.sleeps == pytest.approx([1.0, 2.0 * 0.75, 4.0 * (1 - 0.5 * 0.99)])


def test_dropped_connections_are_retried_with_the_attempt_counted() -> None:
    transport, script, clock = make([dropped(), dropped(), 200], initial=0.2, attempts=5)
    assert transport.send(get()).status == 200
    assert script.attempts == [1, 2, 3]
    assert clock.sleeps == pytest.approx([0.2, 0.4])


@pytest.mark.parametrize("status", [400, 401, 403, 404, 501])
def test_other_statuses_are_not_retried(status: int) -> None:
    transport, script, clock = make([status, 200])
    assert transport.send(get()).status == status
    assert len(script.sent) == 1 and clock.sleeps == []


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_go_containerregistrys_statuses_are_retried(status: int) -> None:
    transport, script, _ = make([status, 200], initial=0.1)
    assert transport.send(get()).status == 200 and script.attempts == [1, 2]


def test_retry_after_waits_are_not_attempts_but_the_time_bounds_them() -> None:
    # Ten throttles with Retry-After, two attempts allowed: every wait is honoured.
    transport, script, clock = make([(429, {"Retry-After": "1"})] * 10 + [200], attempts=2)
    assert transport.send(get()).status == 200 and len(script.sent) == 11
    assert clock.sleeps == [1.0] * 10
    # The request's total time still bounds them.
    transport, script, clock = make([(429, {"Retry-After": "1"})], attempts=2, total=4.5)
    assert transport.send(get()).status == 429 and len(script.sent) == 5
    # A failure that says nothing counts: two attempts.
    transport, script, _ = make([503, 503, 200], attempts=2, initial=0.1)
    assert transport.send(get()).status == 503 and len(script.sent) == 2


@pytest.mark.parametrize(
    "headers, body",
    [
        ({"RateLimit-Limit": "100;w=21600", "RateLimit-Remaining": "0;w=21600"}, b""),
        (
            {},
            b'{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit. '
            b'You may increase the limit by authenticating and upgrading"}]}',
        ),
    ],
)
def test_a_used_up_pull_quota_is_not_retried(headers: dict[str, str], body: bytes) -> None:
    transport, script, clock = make([(429, headers), 200], initial=0.1)
    script.body = body
    assert transport.send(get()).status == 429
    assert len(script.sent) == 1 and clock.sleeps == []
    assert quota_exhausted(429, CaseInsensitiveDict(headers), body)
    # With a Retry-After the registry says when: that is waited for.
    assert not quota_exhausted(429, CaseInsensitiveDict({**headers, "Retry-After": "1"}), body)


# -- Retry-After ------------------------------------------------------------------------------


def test_retry_after_in_seconds_is_honoured_exactly() -> None:
    transport, _, clock = make([(429, {"Retry-After": "3"}), 200], initial=0.1, jitter=0.5)
    assert transport.send(get()).status == 200
    assert clock.sleeps == [3.0]


def test_retry_after_as_an_http_date() -> None:
    when = email.utils.formatdate(WALL0 + 5, usegmt=True)  # "Tue, 14 Nov 2023 22:13:25 GMT"
    transport, _, clock = make([(503, {"Retry-After": when}), 200], initial=0.1)
    assert transport.send(get()).status == 200
    assert clock.sleeps == pytest.approx([5.0])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("Tue, 14 Nov 2023 22:13:30 GMT", 10.0),  # WALL0 is 22:13:20
        ("Tue, 14 Nov 2023 22:00:00 GMT", 0.0),  # in the past: no wait, never a negative one
        ("-5", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("1e3", None),
        ("Tue, 14 Nov 2023 22:13:30", None),  # no zone: not an HTTP date
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, WALL0) == expected


def test_an_unreadable_retry_after_falls_back_to_the_schedule() -> None:
    transport, _, clock = make([(429, {"Retry-After": "whenever"}), 200], initial=0.25)
    transport.send(get())
    assert clock.sleeps == [0.25]


def test_an_absurd_retry_after_gives_up_instead_of_hanging() -> None:
    transport, script, clock = make([(429, {"Retry-After": "86400"}), 200], max_retry_after=60.0)
    response = transport.send(get())
    assert response.status == 429  # the caller turns it into TooManyRequests
    assert len(script.sent) == 1 and clock.sleeps == []
    far = email.utils.formatdate(WALL0 + 7200, usegmt=True)
    transport, script, clock = make([(503, {"Retry-After": far}), 200], max_retry_after=60.0)
    assert transport.send(get()).status == 503 and clock.sleeps == []


# -- bounds ------------------------------------------------------------------------------------


def test_attempts_bound_the_tries() -> None:
    transport, script, _ = make([503], attempts=3, initial=0.01)
    assert transport.send(get()).status == 503
    assert script.attempts == [1, 2, 3]
    transport, script, _ = make([dropped()], attempts=3, initial=0.01)
    with pytest.raises(TransportError):
        transport.send(get())
    assert script.attempts == [1, 2, 3]
    transport, script, _ = make([503], attempts=1)
    assert transport.send(get()).status == 503 and len(script.sent) == 1


def test_total_time_bounds_a_request_waits_included() -> None:
    # Waits 0.4, 0.8, 1.6 ...; each answer takes 0.1 s.  After 0.1 + 0.4 + 0.1 = 0.6 s the next
    # wait (0.8) would end past the 1.2 s bound: the last answer is returned instead.
    transport, script, clock = make([503], attempts=10, initial=0.4, factor=2.0, latency=0.1, total=1.2)
    assert transport.send(get()).status == 503
    assert len(script.sent) == 2 and clock.sleeps == pytest.approx([0.4])
    assert clock.now <= 1.2
    transport, script, clock = make([dropped()], attempts=10, initial=0.4, latency=0.1, total=1.2)
    with pytest.raises(TransportError):
        transport.send(get())
    assert clock.now <= 1.2


def test_a_wait_past_the_scans_budget_stops_at_once() -> None:
    transport, script, clock = make([(429, {"Retry-After": "30"}), 200])
    with pytest.raises(BudgetExceeded):
        transport.send(get(context=Context.with_budget(5.0)))
    assert len(script.sent) == 1 and clock.sleeps == []  # no sleeping to the deadline to fail there


def test_a_cancelled_scan_stops_retrying() -> None:
    ctx = Context()
    ctx.cancel()  # cancelled while its first attempt was in flight
    transport, script, _ = make([503, 200], initial=0.1)
    with pytest.raises(Cancelled):
        transport.send(get(context=ctx))
    assert len(script.sent) == 1


# -- idempotency -------------------------------------------------------------------------------


def test_only_get_and_head_are_retried() -> None:
    transport, script, _ = make([503, 200], initial=0.1)
    assert transport.send(get(method="POST")).status == 503 and len(script.sent) == 1
    transport, script, _ = make([dropped(), 200], initial=0.1)
    with pytest.raises(TransportError):
        transport.send(get(method="POST"))
    assert len(script.sent) == 1
    for method in ("PUT", "DELETE", "PATCH"):
        transport, script, _ = make([429, 200], initial=0.1)
        assert transport.send(get(method=method)).status == 429 and len(script.sent) == 1
    transport, script, _ = make([429, 200], initial=0.1)
    assert transport.send(get(method="HEAD")).status == 200 and script.attempts == [1, 2]


# -- state shared per host ----------------------------------------------------------------------


def test_a_429_holds_every_request_to_that_host_and_only_that_host() -> None:
    # One attempt: a Retry-After wait is not an attempt, so the request waits and is answered.
    transport, script, clock = make([(429, {"Retry-After": "10"}), 200, 200, 200], attempts=1)
    assert transport.send(get("/v2/a/manifests/1")).status == 200 and clock.sleeps == [10.0]
    assert transport.host("http://127.0.0.1:5000/").not_before == 10.0  # the host was held
    transport.host("http://127.0.0.1:5000/").record_throttle(clock.now + 10.0)  # another request's 429
    assert transport.send(get("/v2/b/tags/list")).status == 200  # another repository, same host
    assert clock.sleeps == [10.0, 10.0] and script.sent[2][0] == 20.0
    transport.send(get(host="127.0.0.2:5000"))  # another host is not held
    assert clock.sleeps == [10.0, 10.0]


def test_the_host_recovers_a_step_at_each_success() -> None:
    transport, _, clock = make(
        [503, 503, 503, 200, 200, 503, 200, 200], initial=0.1, factor=2.0, maximum=100.0, attempts=10
    )
    state = transport.host("http://127.0.0.1:5000/")
    transport.send(get())
    assert clock.sleeps == pytest.approx([0.1, 0.2, 0.4])
    assert state.level == 2 and state.throttled == 3  # three throttles, then one success
    transport.send(get())
    assert state.level == 1
    # The schedule starts from where the host stands: this first retry waits the second step.
    transport.send(get())
    assert clock.sleeps[-1] == pytest.approx(0.2)
    assert state.level == 1  # up one for the 503, down one for the success
    transport.send(get())
    assert state.level == 0


def test_a_throttled_host_slows_concurrent_first_tries() -> None:
    transport, _, clock = make([503, 200, 200], initial=1.0, attempts=3)
    transport.send(get("/v2/a/manifests/1"))
    assert clock.sleeps == [1.0]
    state = transport.host("http://127.0.0.1:5000/")
    state.record_throttle(clock.now + 2.5)  # as another thread's 429 would
    transport.send(get("/v2/b/manifests/1"))
    assert clock.sleeps == [1.0, 2.5]


def test_a_long_hold_never_stretches_a_request_past_its_total() -> None:
    transport, _, clock = make([200], total=3.0)
    transport.host("http://127.0.0.1:5000/").record_throttle(50.0)
    transport.send(get())
    assert clock.sleeps == [3.0]


@pytest.mark.parametrize(
    "bad",
    [
        {"attempts": 0},
        {"initial": -1.0},
        {"initial": 5.0, "maximum": 1.0},
        {"factor": 0.5},
        {"jitter": 1.5},
        {"total": 0.0},
    ],
)
def test_policy_rejects_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**bad)  # type: ignore[arg-type]
