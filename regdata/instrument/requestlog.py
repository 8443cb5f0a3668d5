"""The request log: every request regdata makes, as rows of a DataFrame.

Each HTTP attempt is one row, and so is each answer served from the cache.
Nothing secret is recorded: no headers, no query strings, no URLs at all
(host, repository and kind say what was asked).  ``pull`` marks a manifest
GET that a host announcing a quota (``RateLimit-Limit``) served: what Docker
Hub counts against it.  The log is a ring of bounded size, so a long-running
process does not grow without end.

Beside the requests it keeps the per-host limiter's decisions (start, grow,
halve, hold), so the adaptation of the concurrency can be read next to the
requests it governed (:meth:`RequestLog.limiter_frame`); each request also
records the ``concurrency`` its host allowed when it was sent, a column of
:meth:`RequestLog.frame` on request (``concurrency=True``).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from regdata.frames import LIMITER_EVENTS, REQUEST_CATEGORIES, REQUEST_LOG, REQUESTS, make_frame

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "KIND_METADATA",
    "KIND_TAGS",
    "LIMITER_EVENTS",
    "REQUEST_LOG",
    "LimiterEvent",
    "RequestLog",
    "RequestRecord",
    "seed_kind",
]

# Flux v1's two request kinds, kept for the summary by kind: listing tags,
# and everything that reads an image's metadata.
KIND_TAGS = "tags"
KIND_METADATA = "metadata"
_SEED_KIND = {
    "tags": KIND_TAGS,
    "manifest": KIND_METADATA,
    "manifest_head": KIND_METADATA,
    "blob": KIND_METADATA,
}

DEFAULT_CAPACITY = 100_000
# Limiter decisions come at most one per window of requests: a far smaller ring holds hours of them.
DEFAULT_EVENT_CAPACITY = 10_000


@dataclass(frozen=True)
class RequestRecord:
    """One row of the request log."""

    started: float  # epoch seconds
    host: str
    repository: str | None
    kind: str
    method: str
    status: int | None
    duration_s: float
    bytes: int | None
    attempt: int
    cache: str
    error: str | None
    concurrency: int | None = None
    proxy: str | None = None  # host:port of the forward proxy, never its credentials
    pull: bool = False


@dataclass(frozen=True)
class LimiterEvent:
    """One decision of a host's limiter."""

    at: float  # epoch seconds
    host: str
    event: str
    concurrency_before: int | None
    concurrency: int
    latency_s: float | None = None
    baseline_s: float | None = None
    reason: str | None = None


class RequestLog:
    """A thread-safe ring of :class:`RequestRecord`, read as a DataFrame.

    ``capacity`` bounds the request rows kept; the oldest go first and
    ``dropped`` counts them.  :meth:`clear` forgets rows and limiter events.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY, event_capacity: int | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"request log capacity must be at least 1, got {capacity}")
        self._records: deque[RequestRecord] = deque(maxlen=capacity)
        self._events: deque[LimiterEvent] = deque(
            maxlen=event_capacity or min(capacity, DEFAULT_EVENT_CAPACITY)
        )
        self._lock = threading.Lock()
        self.dropped = 0

    @property
    def capacity(self) -> int:
        """How many rows the ring keeps."""
        return self._records.maxlen or 0

    def record(self, record: RequestRecord) -> None:
        """Append one row, dropping the oldest when full."""
        with self._lock:
            if len(self._records) == self._records.maxlen:
                self.dropped += 1
            self._records.append(record)

    def record_event(self, event: LimiterEvent) -> None:
        """Append one limiter decision, dropping the oldest when full."""
        with self._lock:
            self._events.append(event)

    def clear(self) -> None:
        """Forget every row and every limiter event."""
        with self._lock:
            self._records.clear()
            self._events.clear()
            self.dropped = 0

    def __len__(self) -> int:
        return len(self._records)

    def records(self) -> list[RequestRecord]:
        """A copy of the rows, oldest first."""
        with self._lock:
            return list(self._records)

    def events(self) -> list[LimiterEvent]:
        """A copy of the limiter events, oldest first."""
        with self._lock:
            return list(self._events)

    def frame(self, concurrency: bool = False) -> pd.DataFrame:
        """The log as a DataFrame with fixed columns and dtypes (:data:`~regdata.frames.REQUESTS`).

        ``concurrency`` adds the column of that name (:data:`REQUEST_LOG`): what
        the host's limiter allowed when each request went out (NA for cache hits).
        """
        rows: list[dict[str, Any]] = [
            {
                "started": r.started,
                "host": r.host,
                "repository": r.repository,
                "kind": r.kind,
                "method": r.method,
                "status": r.status,
                "duration_s": r.duration_s,
                "bytes": r.bytes,
                "attempt": r.attempt,
                "cache": r.cache,
                "error": r.error,
                "proxy": r.proxy,
                "concurrency": r.concurrency,
                "pull": r.pull,
            }
            for r in self.records()
        ]
        _epoch_to_time(rows, "started")
        return make_frame(rows, REQUEST_LOG if concurrency else REQUESTS, REQUEST_CATEGORIES)

    def limiter_frame(self) -> pd.DataFrame:
        """The limiter's decisions as a DataFrame with fixed columns (:data:`LIMITER_EVENTS`)."""
        rows: list[dict[str, Any]] = [
            {
                "at": e.at,
                "host": e.host,
                "event": e.event,
                "concurrency_before": e.concurrency_before,
                "concurrency": e.concurrency,
                "latency_s": e.latency_s,
                "baseline_s": e.baseline_s,
                "reason": e.reason,
            }
            for e in self.events()
        ]
        _epoch_to_time(rows, "at")
        return make_frame(rows, LIMITER_EVENTS)

    def __repr__(self) -> str:
        return f"RequestLog({len(self)} rows, capacity {self.capacity})"


def _epoch_to_time(rows: list[dict[str, Any]], column: str) -> None:
    # One vectorised conversion: a Timestamp per row costs more than the rest of the frame.
    import pandas as pd

    if rows:
        stamps = pd.to_datetime([r[column] for r in rows], unit="s", utc=True)
        for row, stamp in zip(rows, stamps, strict=True):
            row[column] = stamp


def seed_kind(kind: str) -> str | None:
    """Flux v1's kind (``tags`` or ``metadata``) for one of ours; None for token, ping, catalog."""
    return _SEED_KIND.get(kind)
