"""Optional Prometheus metrics, shaped like Flux v1's (``pip install regdata[prometheus]``).

Three histograms, as Flux v1 had them (with ``namespace="flux"`` the names
are Flux's own, so its dashboards work unchanged):

- ``<ns>_registry_fetch_duration_seconds{success}``: one whole read
  (``get_repository``, ``get_image``, ``history``);
- ``<ns>_client_fetch_duration_seconds{kind, success}``: each HTTP request,
  ``kind`` being Flux's ``tags`` or ``metadata`` (manifests, their HEADs and
  config blobs), or ``token``, ``catalog``, ``ping`` for the rest;
- ``<ns>_memcache_request_duration_seconds{method, success}``: each call to
  the cache backend (``get``, ``set``, ``delete``), timed by
  :class:`InstrumentedBackend` or reported with :func:`observe_memcache`.

Nothing is measured until :func:`enable` is called; until then every
``observe_*`` is a no-op costing one global look-up::

    from prometheus_client import start_http_server
    import regdata.instrument.metrics
    regdata.instrument.metrics.enable()
    start_http_server(9100)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from regdata.instrument.requestlog import seed_kind

if TYPE_CHECKING:
    from regdata.cache import Cache
    from regdata.cache.backends.base import Backend

__all__ = [
    "InstrumentedBackend",
    "Metrics",
    "active",
    "disable",
    "enable",
    "instrument_cache",
    "observe_fetch",
    "observe_memcache",
    "observe_request",
    "timed_fetch",
]

# Flux's two seed kinds, and the kinds it did not instrument, by their own names.


class Metrics:
    """The three histograms, registered in ``registry`` (prometheus_client's default one if None)."""

    def __init__(self, registry: Any = None, namespace: str = "regdata") -> None:
        try:
            from prometheus_client import REGISTRY, Histogram
        except ImportError as exc:  # pragma: no cover - depends on the extra
            raise ImportError(
                "regdata.instrument.metrics needs prometheus_client: pip install 'regdata[prometheus]'"
            ) from exc
        target = REGISTRY if registry is None else registry
        self.registry = target
        self.fetch = Histogram(
            "fetch_duration_seconds",
            "Duration of image metadata reads (whole repositories or images), in seconds.",
            ["success"],
            namespace=namespace,
            subsystem="registry",
            registry=target,
        )
        self.request = Histogram(
            "fetch_duration_seconds",
            "Duration of remote image metadata requests, in seconds.",
            ["kind", "success"],
            namespace=namespace,
            subsystem="client",
            registry=target,
        )
        self.memcache = Histogram(
            "request_duration_seconds",
            "Duration of memcache requests, in seconds.",
            ["method", "success"],
            namespace=namespace,
            subsystem="memcache",
            registry=target,
        )

    def observe_fetch(self, success: bool, seconds: float) -> None:
        """One whole read."""
        self.fetch.labels(success=_flag(success)).observe(seconds)

    def observe_request(self, kind: str, success: bool, seconds: float) -> None:
        """One HTTP request, by our kind (mapped to Flux's)."""
        self.request.labels(kind=seed_kind(kind) or kind, success=_flag(success)).observe(seconds)

    def observe_memcache(self, method: str, success: bool, seconds: float) -> None:
        """One cache backend call."""
        self.memcache.labels(method=method, success=_flag(success)).observe(seconds)


def _flag(success: bool) -> str:
    # Go's strconv.FormatBool, as Flux labelled it.
    return "true" if success else "false"


_active: Metrics | None = None
_lock = threading.Lock()


def enable(registry: Any = None, namespace: str = "regdata") -> Metrics:
    """Start measuring into ``registry``; a second call returns the metrics already enabled."""
    global _active
    with _lock:
        if _active is None:
            _active = Metrics(registry, namespace)
        return _active


def disable() -> None:
    """Stop measuring (the histograms stay registered where they are)."""
    global _active
    with _lock:
        _active = None


def active() -> Metrics | None:
    """The enabled metrics, or None."""
    return _active


def observe_fetch(success: bool, seconds: float) -> None:
    """Record one whole read, when metrics are enabled."""
    m = _active
    if m is not None:
        m.observe_fetch(success, seconds)


def observe_request(kind: str, success: bool, seconds: float) -> None:
    """Record one HTTP request, when metrics are enabled.

    The factory hands it to the request log's layer as its ``observe``, so the
    transport needs no import of this module.
    """
    m = _active
    if m is not None:
        m.observe_request(kind, success, seconds)


def observe_memcache(method: str, success: bool, seconds: float) -> None:
    """Record one cache backend call, when metrics are enabled: the hook for cache backends."""
    m = _active
    if m is not None:
        m.observe_memcache(method, success, seconds)


@contextmanager
def timed_fetch() -> Iterator[None]:
    """Time the block as one whole read; an exception out of it is ``success="false"``."""
    start = time.perf_counter()
    ok = False
    try:
        yield
        ok = True
    finally:
        observe_fetch(ok, time.perf_counter() - start)


class InstrumentedBackend:
    """A cache backend whose every call is timed into the memcache histogram (Flux's wrapper)."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = inner.name

    def _timed(self, method: str, call: Any, *args: Any) -> Any:
        start = time.perf_counter()
        ok = False
        try:
            result = call(*args)
            ok = True
            return result
        finally:
            observe_memcache(method, ok, time.perf_counter() - start)

    def get(self, key: str) -> bytes | None:
        """Timed ``get``."""
        value: bytes | None = self._timed("get", self.inner.get, key)
        return value

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Timed ``set``."""
        self._timed("set", self.inner.set, key, value, ttl)

    def delete(self, key: str) -> None:
        """Timed ``delete``."""
        self._timed("delete", self.inner.delete, key)

    def close(self) -> None:
        """Close the wrapped backend."""
        self.inner.close()

    def stats(self) -> dict[str, Any]:
        """The wrapped backend's own stats."""
        return self.inner.stats()

    def __getattr__(self, name: str) -> Any:
        # Counters and settings of the wrapped backend (oversize, servers) stay readable.
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"InstrumentedBackend({self.inner!r})"


def instrument_cache(cache: Cache | None) -> None:
    """Time every call of ``cache``'s backend (any backend; Flux timed its memcached)."""
    if cache is not None and not isinstance(cache.backend, InstrumentedBackend):
        cache.backend = InstrumentedBackend(cache.backend)
