"""Cache storage backends: byte stores that know nothing of HTTP or registries.

Each is a small class with ``get``, ``set``, ``delete`` and ``close``
(:class:`~regdata.cache.backends.base.Backend`); the policy of what to keep
and for how long lives in :class:`regdata.cache.Cache` above them.  The
SQLite and memcached backends are imported from their modules
(:mod:`.sqlite`, :mod:`.memcached`), so a process that uses neither does
not load requests-cache or pymemcache.
"""

from regdata.cache.backends.base import Backend, BackendUnavailable
from regdata.cache.backends.memory import MemoryBackend

__all__ = ["Backend", "BackendUnavailable", "MemoryBackend"]
