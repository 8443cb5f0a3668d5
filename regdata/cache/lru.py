"""The process's own memory in front of a backend: recent entries, bounded by size.

A backend is a store shared with other processes and is not trusted: what
comes out of it is decoded and checked against its digest each time.  What
this process has already checked needs neither again, so the cache policy
keeps it here, parsed, and a scan of content already read costs a lookup
(a warm scan of 250 tags went from a third of a second to a few
hundredths).  Entries are dropped least recently used first once their
sizes add up to more than ``max_bytes``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

__all__ = ["LRU"]


class LRU:
    """A thread-safe map that forgets its least recently used entries past ``max_bytes``.

    The size of an entry is what the caller says it is (the bytes it was
    parsed from); ``max_bytes=0`` keeps nothing.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must not be negative, got {max_bytes}")
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> Any | None:
        """The value under ``key``, now the most recently used; None when absent."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: Hashable, value: Any, size: int) -> None:
        """Keep ``value``, forgetting the oldest entries to stay within ``max_bytes``."""
        size = max(size, 1)
        if size > self.max_bytes:
            self.pop(key)  # too large to keep: an older value must not stay in its place
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            self._entries[key] = (value, size)
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, (_, dropped) = self._entries.popitem(last=False)
                self.bytes -= dropped

    def pop(self, key: Hashable) -> None:
        """Forget ``key``."""
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= old[1]

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()
            self.bytes = 0
