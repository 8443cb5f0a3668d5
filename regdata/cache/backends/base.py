"""The one interface every cache backend implements."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["Backend", "BackendUnavailable"]


class BackendUnavailable(RuntimeError):
    """A backend that cannot serve now: no memcached server up, a cache file that will not open.

    Like any backend failure, the cache policy turns it into a miss.
    """


@runtime_checkable
class Backend(Protocol):
    """A byte store with optional per-entry expiry (``ttl`` seconds; None keeps it).

    Any method may raise: :class:`regdata.cache.Cache` turns every failure
    into a miss, counts it and warns once.
    """

    name: str

    def get(self, key: str) -> bytes | None:
        """The value under ``key``, or None."""
        ...

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store ``value`` under ``key``."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...

    def stats(self) -> dict[str, Any]:
        """The backend's own counters and settings for :meth:`regdata.cache.Cache.stats`; {} for none."""
        ...
