"""Opening a cache from what users write: URLs, backends, or None."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

from . import DEFAULT_TTL, Cache
from .backends.memory import MemoryBackend

__all__ = ["open_cache", "parse_ttl"]


def parse_ttl(value: float | int | str | timedelta | None) -> float:
    """Seconds from a number, a timedelta, or a string such as ``300``, ``5m``, ``2h``."""
    if value is None:
        return DEFAULT_TTL
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, int | float):
        return float(value)
    text = value.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if text and text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise ValueError(f"cache TTL must be seconds or like 5m, 2h; got {value!r}") from None


def _servers(text: str) -> list[tuple[str, int]]:
    servers = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        host, _, port = item.rpartition(":")
        if not host:
            host, port = item, "11211"
        servers.append((host.strip("[]"), int(port)))
    if not servers:
        raise ValueError("memcached:// needs at least one host:port")
    return servers


def open_cache(spec: Any, ttl: float | int | str | timedelta | None = None) -> Cache | None:
    """A :class:`Cache` from a spec.

    ``"sqlite://"`` (the default file), ``"sqlite:///path/file.sqlite"``,
    ``"memory://"``, ``"memcached://host:port[,host:port...]"``,
    ``"memcached+srv://service"``, ``"none"`` or None, a backend object, or a
    Cache (returned as it is).
    """
    seconds = parse_ttl(ttl)
    if spec is None or spec == "none" or spec == "":
        return None
    if isinstance(spec, Cache):
        return spec
    if not isinstance(spec, str):
        if all(hasattr(spec, name) for name in ("get", "set", "delete")):
            return Cache(spec, ttl=seconds)
        raise TypeError(f"cache must be a URL string, a backend or None, got {type(spec).__name__}")
    parts = urlsplit(spec)
    scheme = parts.scheme.lower()
    if scheme == "memory":
        return Cache(MemoryBackend(), ttl=seconds)
    if scheme == "sqlite":
        from .backends.sqlite import SQLiteBackend

        path = unquote(parts.path) if parts.path not in ("", "/") else None
        return Cache(SQLiteBackend(path), ttl=seconds)
    if scheme == "memcached":
        from .backends.memcached import MemcachedBackend

        return Cache(MemcachedBackend(_servers(parts.netloc + parts.path.strip("/"))), ttl=seconds)
    if scheme == "memcached+srv":
        from .backends.memcached import MemcachedBackend, srv_servers

        return Cache(MemcachedBackend(srv_servers(parts.netloc or parts.path.strip("/"))), ttl=seconds)
    raise ValueError(
        f"unknown cache {spec!r}: use sqlite://, sqlite:///path, memory://, "
        "memcached://host:port, memcached+srv://service or none"
    )
