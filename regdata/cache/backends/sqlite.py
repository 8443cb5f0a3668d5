"""The embedded default: a SQLite file in requests-cache's format, in the user's cache directory.

The file is opened by requests-cache's ``SQLiteDict`` (WAL journal, a
``regdata`` table of ``key``, ``value``, ``expires`` columns, a busy
timeout for other processes writing the same file), so requests-cache's
tools read it.  The statements are our own, with placeholders, under one
lock: ``SQLiteDict`` pastes the key into its SELECT and rolls a failed
write back in silence, and a cache that cannot write must say so once.

The file is bounded: once its values add up to more than ``max_bytes``
(1 GiB by default), the entries written longest ago are deleted until a
tenth of the room is free again.  Content addressed by digest is kept with
no expiry, so without a bound a batch job reading many registries for
months would grow the file without end.

The file opens on first use, not when the Registry is made; a file that
will not open or not write (a read-only directory, a full disk, a path
that is a directory) makes every call fail, which the cache policy turns
into an uncached scan with one warning.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from platformdirs import user_cache_dir
from requests_cache.backends.sqlite import SQLiteDict  # untyped: used through Any

from regdata.cache.backends.base import BackendUnavailable

__all__ = ["DEFAULT_MAX_BYTES", "TABLE", "SQLiteBackend", "default_path"]

TABLE = "regdata"
# A file that would not open is tried again after this long.
_REOPEN_AFTER = 30.0
_BUSY_TIMEOUT_MS = 5000
DEFAULT_MAX_BYTES = 1024**3
# Pruned down to this share of max_bytes, so a full file is not pruned at every write.
_PRUNE_TO = 0.9


def default_path() -> Path:
    """``<user cache dir>/regdata/cache.sqlite`` (``~/.cache/regdata`` on Linux)."""
    return Path(user_cache_dir("regdata")) / "cache.sqlite"


class SQLiteBackend:
    """Values in one SQLite table, with an expiry column; thread-safe, several processes may share it."""

    name = "sqlite"

    def __init__(self, path: str | Path | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.max_bytes = max_bytes
        self._bytes = 0  # of values in the file, as of the last count plus this process's writes
        self.pruned = 0  # entries deleted to stay within max_bytes
        self.path = Path(path).expanduser() if path is not None else default_path()
        if not self.path.suffix:  # requests-cache adds it: say which file is really used
            self.path = self.path.with_name(self.path.name + ".sqlite")
        self._db: Any = None
        self._failed_at: float | None = None
        self._failure: str = ""
        self._lock = threading.Lock()

    def _open(self) -> Any:
        """The open database (lock held); raises BackendUnavailable while it will not open."""
        if self._db is not None:
            return self._db
        if self._failed_at is not None and time.monotonic() - self._failed_at < _REOPEN_AFTER:
            raise BackendUnavailable(f"cache file {self.path} cannot be opened: {self._failure}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = SQLiteDict(
                str(self.path), table_name=TABLE, serializer=None, wal=True, busy_timeout=_BUSY_TIMEOUT_MS
            )
        except (OSError, sqlite3.Error) as exc:
            self._failed_at, self._failure = time.monotonic(), f"{type(exc).__name__}: {exc}"
            raise BackendUnavailable(f"cache file {self.path} cannot be opened: {self._failure}") from exc
        self._failed_at = None
        self._db = db
        # Entries past their expiry go when the file is opened; a read-only file keeps them.
        with contextlib.suppress(sqlite3.Error), db.connection() as con:
            con.execute(f"DELETE FROM {TABLE} WHERE expires IS NOT NULL AND expires <= ?", (time.time(),))
        with contextlib.suppress(sqlite3.Error), db.connection() as con:
            self._bytes = _total(con)
        return db

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self._open()
            with db.connection() as con:
                yield con

    def get(self, key: str) -> bytes | None:
        """The value, unless absent or expired."""
        with self._connection() as con:
            row = con.execute(f"SELECT value, expires FROM {TABLE} WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None
            value, expires = row
            if expires is not None and expires <= time.time():
                con.execute(f"DELETE FROM {TABLE} WHERE key = ?", (key,))
                return None
            return bytes(value)

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store, expiring after ``ttl`` seconds when given."""
        expires = None if ttl is None else time.time() + ttl
        with self._connection() as con:
            con.execute(
                f"INSERT OR REPLACE INTO {TABLE} (key, value, expires) VALUES (?, ?, ?)",
                (key, sqlite3.Binary(value), expires),
            )
            self._bytes += len(value)
            if self._bytes > self.max_bytes:
                self._prune(con)

    def _prune(self, con: sqlite3.Connection) -> None:
        """Delete the entries written longest ago (lowest rowid) until the values fit again.

        Other processes write the file too: the total is counted again first.
        """
        total = self._bytes = _total(con)
        if total <= self.max_bytes:
            return
        excess = total - int(self.max_bytes * _PRUNE_TO)
        freed, last, count = 0, None, 0
        # INSERT OR REPLACE gives a rewritten key a new rowid: the order is that of the last write.
        for rowid, size in con.execute(f"SELECT rowid, LENGTH(value) FROM {TABLE} ORDER BY rowid"):
            freed, last, count = freed + (size or 0), rowid, count + 1
            if freed >= excess:
                break
        if last is not None:
            con.execute(f"DELETE FROM {TABLE} WHERE rowid <= ?", (last,))
            self._bytes -= freed
            self.pruned += count

    def delete(self, key: str) -> None:
        """Remove."""
        with self._connection() as con:
            con.execute(f"DELETE FROM {TABLE} WHERE key = ?", (key,))

    def keys(self) -> list[str]:
        """Every key, expired or not (for tests and people looking at the file)."""
        with self._connection() as con:
            return [row[0] for row in con.execute(f"SELECT key FROM {TABLE}")]

    def clear(self) -> None:
        """Remove every entry."""
        with self._connection() as con:
            con.execute(f"DELETE FROM {TABLE}")

    def close(self) -> None:
        """Close the database connection (it opens again on next use)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def stats(self) -> dict[str, Any]:
        """The file, its bound, and what was pruned to keep to it."""
        return {
            "path": str(self.path),
            "bytes": self._bytes,
            "max_bytes": self.max_bytes,
            "pruned": self.pruned,
        }

    def __repr__(self) -> str:
        return f"SQLiteBackend({str(self.path)!r})"


def _total(con: sqlite3.Connection) -> int:
    """Bytes of every value in the file."""
    row = con.execute(f"SELECT COALESCE(SUM(LENGTH(value)), 0) FROM {TABLE}").fetchone()
    return int(row[0])
