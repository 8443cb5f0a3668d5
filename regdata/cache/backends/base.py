"""The one interface every cache backend implements."""

from __future__ import annotations

from typing import Protocol

__all__ = ["Backend"]


class Backend(Protocol):
    """A byte store with optional per-entry expiry (``ttl`` seconds; None keeps it)."""

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
