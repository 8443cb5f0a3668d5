"""Opening a cache from what users write: URLs, backends, or None.

The URL forms (the same for ``Registry(cache=...)``, the CLI and ``$REGDATA_CACHE``)::

    sqlite://                          the default file in the user's cache directory
    sqlite:///abs/path/file.sqlite     a file of your choosing (sqlite://rel/file for a relative one)
    sqlite://?max_mb=256               either, bounded to 256 MiB of values (1 GiB by default)
    memory://                          a dict in this process
    memcached://host:port[,host:port]  memcached servers
    memcached+srv://service            servers from the SRV records _memcached._tcp.<service>
    none                               no cache

memcached URLs take options as a query: ``timeout`` and ``connect_timeout``
(seconds), ``dead_timeout`` (seconds a failed server is left out) and, for
``+srv``, ``update_interval`` (seconds between SRV lookups); durations may be
written ``500ms``, ``5s``, ``1m``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, unquote

from regdata.cache import DEFAULT_TTL, Cache
from regdata.cache.backends.base import Backend
from regdata.cache.backends.memory import MemoryBackend

__all__ = ["open_cache", "parse_ttl"]

TTLSpec = float | int | str | timedelta | Mapping[str, Any] | None

_MEMCACHED_OPTIONS = ("timeout", "connect_timeout", "dead_timeout", "update_interval")


def parse_ttl(value: float | int | str | timedelta | None) -> float:
    """Seconds from a number, a timedelta, or a string such as ``300``, ``500ms``, ``5m``, ``2h``."""
    if value is None:
        return DEFAULT_TTL
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip().lower()
        units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
        try:
            unit = next((u for u in sorted(units, key=len, reverse=True) if text.endswith(u)), "")
            seconds = float(text[: len(text) - len(unit)]) * units.get(unit, 1)
        except ValueError:
            raise ValueError(f"cache TTL must be seconds or like 5m, 2h; got {value!r}") from None
    if not seconds >= 0:  # NaN too
        raise ValueError(f"cache TTL must not be negative, got {value!r}")
    return seconds


def _ttls(ttl: TTLSpec) -> tuple[float, dict[str, float]]:
    """(default TTL, per host TTLs); a mapping's ``"*"`` or ``"default"`` entry is the default."""
    if not isinstance(ttl, Mapping):
        return parse_ttl(ttl), {}
    default = DEFAULT_TTL
    hosts: dict[str, float] = {}
    for host, value in ttl.items():
        if host in ("*", "default"):
            default = parse_ttl(value)
        else:
            hosts[str(host).lower()] = parse_ttl(value)
    return default, hosts


def _servers(text: str) -> list[tuple[str, int]]:
    servers = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if item.startswith("["):  # [v6::addr]:port
            host, _, rest = item[1:].partition("]")
            port = rest.lstrip(":") or "11211"
        elif item.count(":") == 1:
            host, port = item.split(":")
        else:
            host, port = item, "11211"
        try:
            servers.append((host, int(port)))
        except ValueError:
            raise ValueError(f"memcached server {item!r}: the port is not a number") from None
    if not servers:
        raise ValueError("memcached:// needs at least one host:port")
    return servers


def _options(query: str) -> dict[str, float]:
    options: dict[str, float] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in _MEMCACHED_OPTIONS:
            raise ValueError(f"unknown memcached option {name!r}: use {', '.join(_MEMCACHED_OPTIONS)}")
        options[name] = parse_ttl(value)
    return options


def _sqlite_options(query: str) -> dict[str, int]:
    options: dict[str, int] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name != "max_mb":
            raise ValueError(f"unknown sqlite option {name!r}: use max_mb")
        try:
            megabytes = float(value)
        except ValueError:
            raise ValueError(f"sqlite max_mb must be a number of MiB, got {value!r}") from None
        if not megabytes > 0:
            raise ValueError(f"sqlite max_mb must be positive, got {value!r}")
        options["max_bytes"] = int(megabytes * 1024 * 1024)
    return options


def open_cache(spec: Any, ttl: TTLSpec = None) -> Cache | None:
    """A :class:`Cache` from a spec.

    ``spec``: one of the URLs above, ``"none"`` or None, a backend object,
    or a Cache (returned as it is, its TTL kept).  ``ttl``: seconds, a
    timedelta, a string such as ``5m``, or a mapping of registry host to
    any of those, with ``"*"`` for the other hosts.
    """
    seconds, per_host = _ttls(ttl)
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("", "none")):
        return None
    if isinstance(spec, Cache):
        return spec
    if not isinstance(spec, str):
        if isinstance(spec, Backend):
            return Cache(spec, ttl=seconds, host_ttl=per_host)
        raise TypeError(
            f"cache must be a URL string, a backend (name, get, set, delete, close, stats) or None, "
            f"got {type(spec).__name__}"
        )
    # Not urlsplit: a server list such as "a:1,[::1]:2" is no URL netloc, and the
    # urllib of Python 3.11.4+ (and of Debian's 3.11.2) rejects it as a bad IPv6 host.
    scheme, _, rest = spec.strip().partition("://")
    scheme = scheme.lower()
    location, _, query = rest.partition("#")[0].partition("?")
    if scheme == "memory":
        return Cache(MemoryBackend(), ttl=seconds, host_ttl=per_host)
    if scheme == "sqlite":
        from regdata.cache.backends.sqlite import SQLiteBackend

        path = unquote(location)
        sqlite = SQLiteBackend(path if path not in ("", "/") else None, **_sqlite_options(query))
        return Cache(sqlite, ttl=seconds, host_ttl=per_host)
    if scheme == "memcached":
        from regdata.cache.backends.memcached import MemcachedBackend

        servers = _servers(unquote(location.strip("/")))
        options = _options(query)
        options.pop("update_interval", None)  # a fixed list has nothing to look up
        return Cache(MemcachedBackend(servers, **options), ttl=seconds, host_ttl=per_host)  # type: ignore[arg-type]
    if scheme == "memcached+srv":
        from regdata.cache.backends.memcached import MemcachedBackend

        service = unquote(location.strip("/"))
        if not service:
            raise ValueError("memcached+srv:// needs a service name")
        backend = MemcachedBackend(service=service, **_options(query))  # type: ignore[arg-type]
        return Cache(backend, ttl=seconds, host_ttl=per_host)
    raise ValueError(
        f"unknown cache {spec!r}: use sqlite://, sqlite:///path, memory://, "
        "memcached://host:port, memcached+srv://service or none"
    )
