"""The cache under the RemoteFactory: what to keep, for how long, and what to do when it fails.

Deciding is apart from storing: this module decides, a backend (a byte
store, see :mod:`regdata.cache.backends`) stores.

- Content addressed by digest (manifests and config blobs) never changes:
  kept with no expiry.
- What moves (a tag list, the digest a tag points to) is fresh for ``ttl``
  seconds; after that a tag is revalidated with a HEAD, and only a changed
  digest is fetched again.
- Tokens are never cached here, nor are errors.
- A backend that fails (memcached down, a disk that will not write) turns
  into misses: a warning is logged once and ``errors`` counts, the scan goes
  on uncached.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .backends.base import Backend
from .keys import make_key

if TYPE_CHECKING:
    from ..remote import Remote

__all__ = ["DEFAULT_TTL", "Cache", "CachedManifest"]

log = logging.getLogger("regdata.cache")

DEFAULT_TTL = 300.0
# A stale tag entry is kept this long past its TTL so it can be revalidated by HEAD.
STALE_KEEP = 7 * 24 * 3600.0

_MANIFEST = b"M1\n"
_ACCEPT_KEY = "all-v1"  # our Accept list, versioned; changing it must change the keys


@dataclass(frozen=True)
class CachedManifest:
    """A manifest body and the media type it was served with."""

    media_type: str
    body: bytes


@dataclass
class Cache:
    """The caching policy over one :class:`Backend`."""

    backend: Backend
    ttl: float = DEFAULT_TTL
    hits: int = 0
    misses: int = 0
    errors: int = 0
    _warned: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.ttl, timedelta):
            self.ttl = self.ttl.total_seconds()
        self.ttl = float(self.ttl)

    # -- keys -----------------------------------------------------------------

    def key(self, kind: str, remote: Remote, repository: str, reference: str) -> str:
        """The key of one entry, for one remote (host and credential)."""
        # The host actually asked (a mirror's, when one stands in) keeps answers apart.
        return make_key(
            kind, remote.api_host, repository, reference, _ACCEPT_KEY, remote.credential.identity()
        )

    # -- the backend, failures turned into misses ----------------------------

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            self.errors += 1
            warn = not self._warned
            self._warned = True
        if warn:
            log.warning(
                "cache backend %s failed (%s); going on without it",
                self.backend.name, exc.__class__.__name__,
            )

    def _get(self, key: str) -> bytes | None:
        try:
            value = self.backend.get(key)
        except Exception as exc:  # any backend failure is a miss, never a failed scan
            self._failed(exc)
            return None
        with self._lock:
            if value is None:
                self.misses += 1
            else:
                self.hits += 1
        return value

    def _set(self, key: str, value: bytes, ttl: float | None) -> None:
        try:
            self.backend.set(key, value, ttl)
        except Exception as exc:
            self._failed(exc)

    def delete(self, key: str) -> None:
        """Drop an entry (a corrupt one, say)."""
        try:
            self.backend.delete(key)
        except Exception as exc:
            self._failed(exc)

    # -- moving things: tag lists and tag digests ----------------------------

    def _moving(self, key: str) -> tuple[Any, bool] | None:
        raw = self._get(key)
        if raw is None:
            return None
        try:
            doc = json.loads(raw)
            value, stored = doc["v"], float(doc["t"])
        except (ValueError, KeyError, TypeError):
            self.delete(key)
            return None
        return value, time.time() - stored < self.ttl

    def _put_moving(self, key: str, value: Any) -> None:
        self._set(key, json.dumps({"v": value, "t": time.time()}).encode(), self.ttl + STALE_KEEP)

    def get_fresh(self, key: str) -> bytes | None:
        """A moving value stored less than ``ttl`` ago (a tag list), as bytes."""
        found = self._moving(key)
        if found is None or not found[1] or not isinstance(found[0], str):
            return None
        return found[0].encode()

    def put_moving(self, key: str, value: bytes) -> None:
        """Store a moving value."""
        self._put_moving(key, value.decode())

    def get_tag(self, key: str) -> tuple[str | None, str | None]:
        """(fresh digest, stale digest) of a tag: one of them, or neither."""
        found = self._moving(key)
        if found is None or not isinstance(found[0], str):
            return None, None
        return (found[0], None) if found[1] else (None, found[0])

    def put_tag(self, key: str, digest: str) -> None:
        """Record the digest a tag points to, now."""
        self._put_moving(key, digest)

    # -- content addressed: kept forever --------------------------------------

    def get_manifest(self, key: str) -> CachedManifest | None:
        """A manifest by digest."""
        raw = self._get(key)
        if raw is None or not raw.startswith(_MANIFEST):
            return None
        head, _, body = raw[len(_MANIFEST):].partition(b"\n")
        return CachedManifest(head.decode("utf-8", "replace"), body)

    def put_manifest(self, key: str, entry: CachedManifest) -> None:
        """Store a manifest by digest, with no expiry."""
        self._set(key, _MANIFEST + entry.media_type.encode() + b"\n" + entry.body, None)

    def get_blob(self, key: str) -> bytes | None:
        """A blob by digest."""
        return self._get(key)

    def put_blob(self, key: str, body: bytes) -> None:
        """Store a blob by digest, with no expiry."""
        self._set(key, body, None)

    def close(self) -> None:
        """Close the backend."""
        try:
            self.backend.close()
        except Exception as exc:
            self._failed(exc)
