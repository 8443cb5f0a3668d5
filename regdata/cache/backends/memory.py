"""An in-process dict: for tests and notebooks that want no files."""

from __future__ import annotations

import threading
import time
from typing import Any

__all__ = ["MemoryBackend"]


class MemoryBackend:
    """A thread-safe dict with expiry."""

    name = "memory"

    def __init__(self) -> None:
        self._data: dict[str, tuple[bytes, float | None]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        """The value, unless absent or expired."""
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            value, expires = item
            if expires is not None and expires <= time.time():
                del self._data[key]
                return None
            return value

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store, expiring after ``ttl`` seconds when given."""
        with self._lock:
            self._data[key] = (value, None if ttl is None else time.time() + ttl)

    def delete(self, key: str) -> None:
        """Remove."""
        with self._lock:
            self._data.pop(key, None)

    def keys(self) -> list[str]:
        """Every key (for tests that inspect what was stored)."""
        with self._lock:
            return list(self._data)

    def clear(self) -> None:
        """Remove every entry."""
        with self._lock:
            self._data.clear()

    def stats(self) -> dict[str, Any]:
        """Nothing to tell: a dict has no servers and no size limit."""
        return {}

    def close(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return f"MemoryBackend({len(self._data)} entries)"
