"""A host's rate-limit headers: Docker Hub's ``RateLimit-Limit: 100;w=21600``, the IETF draft's, GitHub's.

What the limiter reads from every answer to keep a quota floor, and what
``Registry.rate_limits`` shows per host.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

__all__ = ["RateLimit", "parse_rate_limit"]


@dataclass(frozen=True)
class RateLimit:
    """The latest rate-limit headers a host sent (Docker Hub: per 6 hours, per IP or account)."""

    host: str
    limit: int | None
    remaining: int | None
    window_s: float | None  # the ``w=`` of the header: the quota's period
    reset_s: float | None  # seconds from ``observed`` until the quota resets, when the host says
    observed: datetime

    def describe(self, left: int | None = None) -> str:
        """``N left of M per W``, as a row's reason says it (``left`` overrides ``remaining``)."""
        now = self.remaining if left is None else left
        text = f"{'?' if now is None else now} left"
        if self.limit is not None:
            text += f" of {self.limit}"
        if self.window_s:
            text += f" per {_period(self.window_s)}"
        return text


def _period(seconds: float) -> str:
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{seconds:g} s"


_NUMBER = re.compile(r"^\s*(\d+)")
_WINDOW = re.compile(r"(?:^|;)\s*w\s*=\s*(\d+)")
_PARAM = re.compile(r"([A-Za-z]+)\s*=\s*(\d+)")


def _first_int(value: str | None) -> int | None:
    if not value:
        return None
    match = _NUMBER.match(value)
    return int(match.group(1)) if match else None


def _window(value: str | None) -> float | None:
    if not value:
        return None
    match = _WINDOW.search(value)  # the first policy's window: "10, 10;w=1, 1000;w=3600" is 1 s
    return float(match.group(1)) if match else None


def parse_rate_limit(
    headers: Mapping[str, str], now_wall: float | None = None
) -> tuple[int | None, int | None, float | None, float | None] | None:
    """``(limit, remaining, window_s, reset_s)`` from an answer's headers; None when it has none.

    Reads Docker Hub's ``RateLimit-Limit: 100;w=21600`` and
    ``RateLimit-Remaining: 76;w=21600``, the IETF draft's ``RateLimit-Reset``
    and combined ``RateLimit: limit=100, remaining=50, reset=30``, and the
    ``X-RateLimit-*`` spelling (whose reset may be an epoch time).
    Unreadable values are ignored, never an error.
    """
    get = headers.get
    limit_h = get("RateLimit-Limit") or get("X-RateLimit-Limit")
    remaining_h = get("RateLimit-Remaining") or get("X-RateLimit-Remaining")
    reset_h = get("RateLimit-Reset") or get("X-RateLimit-Reset")
    limit, remaining, reset = _first_int(limit_h), _first_int(remaining_h), _first_int(reset_h)
    window = _window(limit_h) or _window(remaining_h)
    combined = get("RateLimit")
    if combined:
        params = {k.lower(): int(v) for k, v in _PARAM.findall(combined)}
        limit = limit if limit is not None else params.get("limit")
        remaining = remaining if remaining is not None else params.get("remaining", params.get("r"))
        reset = reset if reset is not None else params.get("reset", params.get("t"))
    if limit is None and remaining is None:
        return None
    reset_s: float | None = None
    if reset is not None:
        wall = time.time() if now_wall is None else now_wall
        # A value past a billion seconds is an epoch time (GitHub's X-RateLimit-Reset), not a delay.
        reset_s = max(0.0, reset - wall) if reset > 1_000_000_000 else float(reset)
    return limit, remaining, window, reset_s
