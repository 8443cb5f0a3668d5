"""The cache: what to keep, for how long, and what to do when it fails.

Deciding is apart from storing: this module decides, a backend (a byte
store, see :mod:`regdata.cache.backends`) stores.  It knows nothing of the
client: :class:`regdata.cache.remote.CachedRemote` wraps a Remote and asks
it, keyed by registry host and credential identity (:meth:`Cache.key`).

- Content addressed by digest (manifests and config blobs) never changes:
  kept with no expiry.
- What moves (a tag list, the digest a tag points to) is fresh for ``ttl``
  seconds (per host if wanted); after that a tag is revalidated with a HEAD,
  and only a changed digest is fetched again.  A stale tag entry is kept a
  week past its TTL for that.
- Tokens are never cached here, nor are errors.
- Whatever comes back from the backend is untrusted: a value that does not
  parse, a tag that does not point to a digest, a time stamp from the
  future, is a miss (counted in ``corrupt``) and is deleted, then
  overwritten by the fresh answer.  Bodies are checked against their
  digest by the CachedRemote, which discards them here when they fail.
- What this process has read or checked is kept in its own memory too
  (:mod:`regdata.cache.lru`, ``memory`` bytes of it), parsed and verified:
  only the backend's copy is untrusted.  Moving entries there carry their
  time stamp, so they go stale exactly as the backend's do.
- A backend that fails (memcached down, a disk that will not write) turns
  into misses: a warning is logged once, ``errors`` counts, the scan goes on
  uncached.

Time comes from ``clock`` (``time.time`` by default), so tests move it
instead of sleeping.  It is wall-clock time because entries are shared
between processes and machines.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from regdata.cache.backends.base import Backend, BackendUnavailable
from regdata.cache.keys import make_key
from regdata.cache.lru import LRU
from regdata.oci.digest import is_verifiable
from regdata.oci.manifest import ACCEPT_ALL, decode_json

__all__ = [
    "DEFAULT_MEMORY",
    "DEFAULT_TTL",
    "STALE_KEEP",
    "Backend",
    "BackendUnavailable",
    "Cache",
    "CachedManifest",
]

log = logging.getLogger("regdata.cache")

DEFAULT_TTL = 300.0
# Bytes of verified content and fresh entries this process keeps in its own memory.
DEFAULT_MEMORY = 64 * 1024 * 1024
# A stale tag entry is kept this long past its TTL so it can be revalidated by HEAD.
STALE_KEEP = 7 * 24 * 3600.0
# Entries written by a machine whose clock runs ahead look younger than they are;
# one stamped further ahead than this is foreign.
MAX_CLOCK_SKEW = 300.0

_MANIFEST = b"M1\n"
# The Accept list we send decides the manifest we get: a new list names new keys.
_ACCEPT_KEY = "a1-" + hashlib.sha256(", ".join(ACCEPT_ALL).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class CachedManifest:
    """A manifest body and the media type it was served with."""

    media_type: str
    body: bytes


def _seconds(value: float | int | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


@dataclass
class Cache:
    """The caching policy over one :class:`Backend`.

    Args:
        backend: where entries are stored.
        ttl: seconds (or a timedelta) a tag list or tag digest stays fresh.
        host_ttl: a different TTL for some registry hosts (``{"docker.io": 3600}``).
        clock: the time now, in epoch seconds.
        memory: bytes of this process's memory for verified, parsed entries in
            front of the backend, counted as the objects take them (about 2-5
            times the bodies); 0: none, every read goes to the backend.

    ``hits``, ``misses``, ``errors`` (backend failures) and ``corrupt``
    (entries thrown away) count what happened; :meth:`stats` reports them
    with the backend's own.
    """

    backend: Backend
    ttl: float = DEFAULT_TTL
    host_ttl: Mapping[str, float] = field(default_factory=dict)
    clock: Callable[[], float] = time.time
    memory: int = DEFAULT_MEMORY
    hits: int = 0
    misses: int = 0
    errors: int = 0
    corrupt: int = 0
    memory_hits: int = 0
    _warned: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _recent: LRU = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._recent = LRU(self.memory)
        self.ttl = _seconds(self.ttl)
        self.host_ttl = {host.lower(): _seconds(v) for host, v in self.host_ttl.items()}
        for value in (self.ttl, *self.host_ttl.values()):
            if value < 0:
                raise ValueError(f"cache TTL must not be negative, got {value}")

    @property
    def name(self) -> str:
        """The backend's name (``memory``, ``sqlite``, ``memcached``, or its class)."""
        return self.backend.name

    def ttl_for(self, host: str) -> float:
        """The TTL of moving entries of registry ``host``."""
        return self.host_ttl.get(host, self.ttl)

    # -- keys -----------------------------------------------------------------

    def key(self, kind: str, host: str, repository: str, reference: str, identity: str) -> str:
        """The key of one entry: registry ``host``, and the ``identity`` of the credential that read it.

        ``host`` is the registry as references name it; a registry read through
        a mirror is ``registry~mirror`` (the mirror's answers are its own).
        ``identity`` is :meth:`regdata.credentials.Credential.identity`, never a secret.
        """
        return make_key(kind, host, repository, reference, _ACCEPT_KEY, identity)

    # -- the backend, failures turned into misses ----------------------------

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            self.errors += 1
            warn = not self._warned
            self._warned = True
        if warn:
            log.warning(
                "cache backend %s failed (%s: %s); going on without it where it fails",
                self.name,
                type(exc).__name__,
                str(exc)[:400],
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
        """Drop an entry."""
        self._forget(key)
        try:
            self.backend.delete(key)
        except Exception as exc:
            self._failed(exc)

    def _forget(self, key: str) -> None:
        for kind in _RECENT_KINDS:
            self._recent.pop((kind, key))

    def discard(self, key: str) -> None:
        """Drop an entry found corrupt or foreign: it counted as a hit, it is a miss."""
        with self._lock:
            self.corrupt += 1
            self.hits -= 1
            self.misses += 1
        self.delete(key)

    # -- moving things: tag lists and tag digests ----------------------------

    def _moving(self, key: str, host: str, valid: Callable[[Any], bool]) -> tuple[Any, bool] | None:
        """(value, fresh) of a moving entry, or None when absent or not ours."""
        remembered = self._recent.get(("moving", key))
        entry = remembered if remembered is not None else self._read_moving(key, valid)
        if entry is None:
            return None
        value, stored = entry
        fresh = self._fresh(stored, host)
        if fresh is None:
            self.discard(key)
            return None
        if remembered is not None:
            self.count_hits(1)
        return value, fresh

    def _fresh(self, stored: float, host: str) -> bool | None:
        """Whether an entry stored at ``stored`` is within the TTL; None for a time no clock of ours wrote."""
        age = self.clock() - stored
        if age != age or age < -MAX_CLOCK_SKEW:
            return None
        return age < self.ttl_for(host)

    def _read_moving(self, key: str, valid: Callable[[Any], bool]) -> tuple[Any, float] | None:
        """(value, time stored) of a moving entry in the backend, remembered; None when absent or bad."""
        raw = self._get(key)
        if raw is None:
            return None
        try:
            doc = decode_json(raw)  # a shared store is untrusted: any bytes at all
            value, stored = doc["v"], float(doc["t"])
        except (ValueError, KeyError, TypeError, OverflowError):
            self.discard(key)
            return None
        if not valid(value):
            self.discard(key)
            return None
        self._remember_moving(key, value, stored, len(raw))
        return value, stored

    def _put_moving(self, key: str, value: Any, keep: float) -> None:
        stored = self.clock()
        raw = json.dumps({"v": value, "t": stored}).encode()
        self._remember_moving(key, value, stored, len(raw))
        self._set(key, raw, keep)

    def _remember_moving(self, key: str, value: Any, stored: float, size: int) -> None:
        # A copy: the caller's list is the caller's to change (a tag list goes back to the user).
        kept = tuple(value) if isinstance(value, list) else value
        self._recent.put(("moving", key), (kept, stored), _in_memory("moving", size))

    # -- what this process verified, parsed: never read back from the backend -----

    def recall(self, kind: str, key: str, count: bool = True) -> Any | None:
        """A parsed, verified ``kind`` of entry this process kept under ``key``.

        ``count=False`` looks without counting a hit (the caller counts
        with :meth:`count_hits` once it has all it needs).
        """
        value = self._recent.get((kind, key))
        if value is not None and count:
            self.count_hits(1)
        return value

    def fresh_tag(self, key: str, host: str) -> str | None:
        """The digest a tag points to, if this process holds it and it is fresh; counts nothing."""
        remembered = self._recent.get(("moving", key))
        if remembered is None:
            return None
        value, stored = remembered
        return value if self._fresh(stored, host) else None

    def count_hits(self, n: int) -> None:
        """Count ``n`` hits served from this process's memory."""
        with self._lock:
            self.hits += n
            self.memory_hits += n

    def remember(self, kind: str, key: str, value: Any, size: int) -> None:
        """Keep a parsed, verified entry in this process (``size``: the bytes it was parsed from)."""
        self._recent.put((kind, key), value, _in_memory(kind, size))

    def get_tags(self, key: str, host: str) -> list[str] | None:
        """A tag list stored less than the TTL ago."""
        found = self._moving(key, host, _is_tag_list)
        if found is None or not found[1]:
            return None
        return list(found[0])

    def put_tags(self, key: str, host: str, tags: list[str]) -> None:
        """Store a tag list (a stale one is of no use: it is kept for the TTL only)."""
        self._put_moving(key, tags, self.ttl_for(host))

    def get_unknown(self, key: str, host: str) -> tuple[str, list[tuple[str, str]]] | None:
        """(url, errors) of a 404 a registry gave for a repository less than the TTL ago."""
        found = self._moving(key, host, _is_unknown)
        if found is None or not found[1]:
            return None
        value = found[0]
        return str(value["url"]), [(str(code), str(message)) for code, message in value["errors"]]

    def put_unknown(self, key: str, host: str, url: str, errors: list[tuple[str, str]]) -> None:
        """Remember, for the TTL as a tag list is, that a registry has no such repository.

        So a fleet naming an image the registry lacks costs one request per TTL,
        not one per run (and a second run within the TTL makes none).
        """
        self._put_moving(key, {"url": url, "errors": [list(e) for e in errors]}, self.ttl_for(host))

    def get_tag(self, key: str, host: str) -> tuple[str | None, str | None]:
        """(fresh digest, stale digest) of a tag: one of them, or neither."""
        found = self._moving(key, host, _is_digest)
        if found is None:
            return None, None
        return (found[0], None) if found[1] else (None, found[0])

    def put_tag(self, key: str, host: str, digest: str) -> None:
        """Record the digest a tag points to, now."""
        if _is_digest(digest):
            self._put_moving(key, digest, self.ttl_for(host) + STALE_KEEP)

    # -- content addressed: kept forever --------------------------------------

    def get_manifest(self, key: str) -> CachedManifest | None:
        """A manifest by digest (unverified: the caller checks it against the digest)."""
        raw = self._get(key)
        if raw is None:
            return None
        head, newline, body = raw[len(_MANIFEST) :].partition(b"\n")
        if not raw.startswith(_MANIFEST) or not newline:
            self.discard(key)
            return None
        return CachedManifest(head.decode("utf-8", "replace"), body)

    def put_manifest(self, key: str, entry: CachedManifest) -> None:
        """Store a manifest by digest, with no expiry."""
        self._set(key, _MANIFEST + entry.media_type.encode() + b"\n" + entry.body, None)

    def get_blob(self, key: str) -> bytes | None:
        """A blob by digest (unverified: the caller checks it against the digest)."""
        return self._get(key)

    def put_blob(self, key: str, body: bytes) -> None:
        """Store a blob by digest, with no expiry."""
        self._set(key, body, None)

    # -- reporting ------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters of this cache, and the backend's own (servers, calls) when it has them."""
        with self._lock:
            out: dict[str, Any] = {
                "backend": self.name,
                "hits": self.hits,
                "misses": self.misses,
                "errors": self.errors,
                "corrupt": self.corrupt,
                "ttl": self.ttl,
                "memory_hits": self.memory_hits,
                "memory_bytes": self._recent.bytes,
            }
        try:
            backend_stats = self.backend.stats()
        except Exception as exc:
            backend_stats = {"error": f"{type(exc).__name__}: {exc}"}
        if backend_stats:  # a backend with nothing to tell (memory) adds no entry
            out["backend_stats"] = backend_stats
        return out

    def close(self) -> None:
        """Close the backend."""
        try:
            self.backend.close()
        except Exception as exc:
            self._failed(exc)


# What the process memory holds under a key: a moving entry with its time stamp, a parsed
# manifest, a parsed config.
_RECENT_KINDS = ("moving", "manifest", "config")
# Python objects take more room than the bytes they were parsed from: measured on the
# benchmark's 250 tags, a manifest (body kept, and parsed) 4.4 times its body, a config
# (its fields, and the raw history kept for history()) 1.9 times, a moving entry 2 times.
_PARSED_FACTOR = {"moving": 2, "manifest": 5, "config": 2}


def _in_memory(kind: str, size: int) -> int:
    """What an entry parsed from ``size`` bytes takes in memory, about: what ``memory`` counts."""
    return _PARSED_FACTOR.get(kind, 1) * size + 200


def _is_tag_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(tag, str) for tag in value)


def _is_unknown(value: Any) -> bool:
    if not (isinstance(value, dict) and isinstance(value.get("url"), str)):
        return False
    return isinstance(value.get("errors"), list) and all(
        isinstance(e, list) and len(e) == 2 and all(isinstance(x, str) for x in e) for e in value["errors"]
    )


def _is_digest(value: Any) -> bool:
    return isinstance(value, str) and is_verifiable(value)
