"""The embedded default: requests-cache's SQLite storage, in the user's cache directory."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from platformdirs import user_cache_dir
from requests_cache.backends.sqlite import SQLiteDict  # untyped: used through Any

__all__ = ["SQLiteBackend", "default_path"]

# Expiry rides in front of each value: 8 bytes of epoch milliseconds, 0 for never.
_NEVER = 0


def default_path() -> Path:
    """``<user cache dir>/regdata/cache.sqlite`` (``~/.cache/regdata`` on Linux)."""
    return Path(user_cache_dir("regdata")) / "cache.sqlite"


class SQLiteBackend:
    """Values in one SQLite table through requests-cache's ``SQLiteDict`` (WAL, thread-safe)."""

    name = "sqlite"

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db: Any = SQLiteDict(str(self.path), table_name="regdata", serializer=None, wal=True)

    def get(self, key: str) -> bytes | None:
        """The value, unless absent or expired."""
        try:
            raw = self._db[key]
        except KeyError:
            return None
        data = bytes(raw)
        expires = int.from_bytes(data[:8], "big")
        if expires != _NEVER and expires <= int(time.time() * 1000):
            self.delete(key)
            return None
        return data[8:]

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store, expiring after ``ttl`` seconds when given."""
        expires = _NEVER if ttl is None else int((time.time() + ttl) * 1000)
        self._db[key] = expires.to_bytes(8, "big") + value

    def delete(self, key: str) -> None:
        """Remove."""
        with contextlib.suppress(KeyError):
            self._db.__delitem__(key)

    def keys(self) -> list[str]:
        """Every key."""
        return list(self._db.keys())

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    def __repr__(self) -> str:
        return f"SQLiteBackend({str(self.path)!r})"
