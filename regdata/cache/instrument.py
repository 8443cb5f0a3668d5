"""Cache client instrumentation: every operation's method, duration and outcome.

Flux v1 timed each memcache request by method and outcome; here each
operation becomes a :class:`CacheOperation`, kept in a bounded ring
(:class:`OperationLog`) and handed to an optional callback, so the request
log can show cache traffic beside HTTP traffic, and :meth:`OperationLog.summary`
gives the totals per method.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_CAPACITY", "OUTCOMES", "CacheOperation", "OperationLog"]

DEFAULT_CAPACITY = 10_000
#: ``hit`` and ``miss`` for reads, ``ok`` for writes and deletes, ``error`` for failures.
OUTCOMES = ("hit", "miss", "ok", "error")


@dataclass(frozen=True)
class CacheOperation:
    """One call to a cache server.

    ``keys`` counts the keys of a multi-key call; ``bytes`` the value bytes
    read or written.  A key names a repository and a reference, never a
    secret, so the first key is kept for the curious.
    """

    started: float  # epoch seconds
    backend: str
    server: str | None
    method: str
    outcome: str
    duration_s: float
    keys: int = 1
    bytes: int = 0
    key: str | None = None
    error: str | None = None


class OperationLog:
    """A thread-safe ring of :class:`CacheOperation`, with running totals that never drop."""

    def __init__(
        self,
        capacity: int = DEFAULT_CAPACITY,
        on_operation: Callable[[CacheOperation], None] | None = None,
    ) -> None:
        self._ops: deque[CacheOperation] = deque(maxlen=capacity)
        self._totals: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()
        self.on_operation = on_operation

    def record(self, op: CacheOperation) -> None:
        """Keep ``op`` (dropping the oldest when full) and pass it to the callback."""
        with self._lock:
            self._ops.append(op)
            totals = self._totals.setdefault(op.method, _empty())
            totals["calls"] += 1
            totals[op.outcome] = totals.get(op.outcome, 0) + 1
            totals["seconds"] += op.duration_s
            totals["max_seconds"] = max(totals["max_seconds"], op.duration_s)
            totals["bytes"] += op.bytes
        callback = self.on_operation
        if callback is not None:
            with contextlib.suppress(Exception):  # a broken observer must not break the cache
                callback(op)

    def records(self) -> list[CacheOperation]:
        """A copy of the ring, oldest first."""
        with self._lock:
            return list(self._ops)

    def __len__(self) -> int:
        return len(self._ops)

    def clear(self) -> None:
        """Forget the ring and the totals."""
        with self._lock:
            self._ops.clear()
            self._totals.clear()

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per method: calls, hit, miss, ok, error, seconds, max_seconds, bytes (since start)."""
        with self._lock:
            out: dict[str, dict[str, Any]] = {}
            for method, totals in sorted(self._totals.items()):
                row: dict[str, Any] = {
                    k: int(v) for k, v in totals.items() if k not in ("seconds", "max_seconds")
                }
                row["seconds"] = totals["seconds"]
                row["max_seconds"] = totals["max_seconds"]
                out[method] = row
            return out

    def frame(self) -> Any:
        """The ring as a pandas DataFrame, one row per operation."""
        import pandas as pd

        rows = [
            {
                "started": pd.Timestamp(op.started, unit="s", tz="UTC"),
                "backend": op.backend,
                "server": op.server,
                "method": op.method,
                "outcome": op.outcome,
                "duration_s": op.duration_s,
                "keys": op.keys,
                "bytes": op.bytes,
                "key": op.key,
                "error": op.error,
            }
            for op in self.records()
        ]
        columns = [
            "started",
            "backend",
            "server",
            "method",
            "outcome",
            "duration_s",
            "keys",
            "bytes",
            "key",
            "error",
        ]
        return pd.DataFrame(rows, columns=columns)


def _empty() -> dict[str, float]:
    return {
        "calls": 0,
        "hit": 0,
        "miss": 0,
        "ok": 0,
        "error": 0,
        "seconds": 0.0,
        "max_seconds": 0.0,
        "bytes": 0,
    }
