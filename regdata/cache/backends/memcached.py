"""Shared cache: memcached through pymemcache, for several processes or machines at once."""

from __future__ import annotations

from pymemcache.client.hash import HashClient

__all__ = ["MemcachedBackend"]

# memcached's default item limit is 1 MiB; leave room for the key and flags.
ITEM_LIMIT = 1024 * 1024 - 1024


class MemcachedBackend:
    """A pymemcache HashClient over one or more servers.

    Values over the item limit are skipped and counted (``oversize``), never
    an error: the answer is then simply not shared.
    """

    name = "memcached"

    def __init__(
        self,
        servers: list[tuple[str, int]],
        *,
        timeout: float = 0.5,
        connect_timeout: float = 0.5,
    ) -> None:
        self.servers = list(servers)
        self.oversize = 0
        self._client = HashClient(
            self.servers,
            timeout=timeout,
            connect_timeout=connect_timeout,
            use_pooling=True,
            ignore_exc=False,
            retry_attempts=1,
            dead_timeout=5,
        )

    def get(self, key: str) -> bytes | None:
        """The value or None."""
        value = self._client.get(key)
        return None if value is None else bytes(value)

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store; memcached takes whole seconds, 0 for no expiry."""
        if len(value) > ITEM_LIMIT:
            self.oversize += 1
            return
        expire = 0 if ttl is None else max(1, int(ttl))
        self._client.set(key, value, expire=expire, noreply=False)

    def delete(self, key: str) -> None:
        """Remove."""
        self._client.delete(key, noreply=False)

    def close(self) -> None:
        """Close the sockets."""
        self._client.close()

    def __repr__(self) -> str:
        return f"MemcachedBackend({self.servers!r})"


def srv_servers(service: str) -> list[tuple[str, int]]:
    """Servers from the DNS SRV record ``_memcached._tcp.<service>`` (as Flux v1 found them)."""
    raise NotImplementedError("memcached+srv is not implemented yet")
