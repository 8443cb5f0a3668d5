"""The request log: every request regdata makes, as rows of a DataFrame.

Each HTTP attempt is one row, and so is each answer served from the cache.
Nothing secret is recorded: no headers, no query strings.  The log is a ring
of bounded size, so a long-running process does not grow without end.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .frames import REQUESTS, make_frame

__all__ = ["KIND_METADATA", "KIND_TAGS", "RequestLog", "RequestRecord"]

# Flux v1's two request kinds, kept for the summary by kind: listing tags,
# and everything that reads an image's metadata.
KIND_TAGS = "tags"
KIND_METADATA = "metadata"
_SEED_KIND = {"tags": KIND_TAGS, "manifest": KIND_METADATA, "manifest_head": KIND_METADATA,
              "blob": KIND_METADATA}

DEFAULT_CAPACITY = 100_000


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


class RequestLog:
    """A thread-safe ring of :class:`RequestRecord`, read as a DataFrame."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._records: deque[RequestRecord] = deque(maxlen=capacity)
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

    def clear(self) -> None:
        """Forget every row."""
        with self._lock:
            self._records.clear()
            self.dropped = 0

    def __len__(self) -> int:
        return len(self._records)

    def records(self) -> list[RequestRecord]:
        """A copy of the rows, oldest first."""
        with self._lock:
            return list(self._records)

    def frame(self) -> pd.DataFrame:
        """The log as a DataFrame with fixed columns and dtypes."""
        rows: list[dict[str, Any]] = []
        for r in self.records():
            rows.append(
                {
                    "started": pd.Timestamp(r.started, unit="s", tz="UTC"),
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
                }
            )
        return make_frame(rows, REQUESTS, "requests")

    def __repr__(self) -> str:
        return f"RequestLog({len(self)} rows, capacity {self.capacity})"


def seed_kind(kind: str) -> str | None:
    """Flux v1's kind (``tags`` or ``metadata``) for one of ours; None for token, ping, catalog."""
    return _SEED_KIND.get(kind)
