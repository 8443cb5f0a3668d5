"""Registries that ration: Docker Hub's pull quota, and a throttle, as faults of our FaultProxy.

:class:`PullQuota` makes the proxy in front of the real test registry count
pulls as Docker Hub does (docs.docker.com, "Docker Hub usage and rate
limits"): a GET of ``/v2/<name>/manifests/<ref>`` is a pull; HEAD, tag lists
and blobs are free.  Every answer carries ``ratelimit-limit: N;w=21600``,
``ratelimit-remaining: R;w=21600`` and ``docker-ratelimit-source``; a pull
past the quota gets Docker Hub's 429 ``TOOMANYREQUESTS`` JSON body, without
Retry-After.  A pull the registry answers with an error is not counted.

:class:`Throttle` answers every ``every``-th request with 429 and
``Retry-After``, and drops every ``drop``-th connection with no answer.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from .proxy import Action, FaultProxy, Seen, start_proxy

WINDOW = 21600  # Docker Hub's window: 6 hours
# Docker Hub's answer to a pull past the quota (its words as of 2025).
HUB_429 = (
    b'{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your unauthenticated pull '
    b'rate limit. https://www.docker.com/increase-rate-limit"}]}'
)


def is_pull(seen: Seen) -> bool:
    """A manifest GET: what Docker Hub counts."""
    return seen.method == "GET" and "/manifests/" in seen.path


@dataclass
class PullQuota:
    """Docker Hub's pull quota: ``limit`` pulls per window, ``remaining`` of them left."""

    limit: int
    remaining: int = -1  # -1: the whole limit
    source: str = "127.0.0.1"
    pulls: int = 0  # pulls served (and counted)
    refused: int = 0  # pulls answered 429: the quota was gone
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.remaining < 0:
            self.remaining = self.limit

    def headers(self, left: int) -> dict[str, str]:
        return {
            "ratelimit-limit": f"{self.limit};w={WINDOW}",
            "ratelimit-remaining": f"{left};w={WINDOW}",
            "docker-ratelimit-source": self.source,
        }

    def __call__(self, seen: Seen) -> Action:
        pull = is_pull(seen)
        with self.lock:
            if pull and self.remaining <= 0:
                self.refused += 1
                return Action(
                    status=429, body=HUB_429, headers={**self.headers(0), "Content-Type": "application/json"}
                )
            if pull:
                self.remaining -= 1  # taken now, so concurrent pulls cannot overdraw it
                self.pulls += 1

        def answer(status: int, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
            with self.lock:
                if pull and status >= 400:  # an error is no pull: given back
                    self.remaining += 1
                    self.pulls -= 1
                left = self.remaining
            return status, {**headers, **self.headers(left)}, body

        return Action(transform=answer)


@dataclass
class Throttle:
    """Every ``every``-th request: 429 with ``Retry-After``; every ``drop``-th: the connection closed."""

    every: int = 3
    retry_after: str = "1"
    drop: int = 17
    seen: int = 0
    throttled: int = 0
    dropped: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, seen: Seen) -> Action | None:
        with self.lock:
            self.seen += 1
            n = self.seen
            if self.drop and n % self.drop == 0:
                self.dropped += 1
                return Action(drop=True)
            if self.every and n % self.every == 0:
                self.throttled += 1
                return Action(
                    status=429,
                    headers={"Retry-After": self.retry_after, "Content-Type": "application/json"},
                    body=b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}',
                )
        return None


@contextlib.contextmanager
def start_hub(upstream: str, limit: int, remaining: int = -1) -> Iterator[tuple[FaultProxy, PullQuota]]:
    """A Docker-Hub-like proxy in front of ``upstream``, with its quota."""
    quota = PullQuota(limit, remaining)
    with start_proxy(upstream) as proxy:
        proxy.add(quota)
        yield proxy, quota
