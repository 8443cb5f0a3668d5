"""Cache storage backends: byte stores that know nothing of HTTP or registries.

Each is a small class with ``get``, ``set``, ``delete`` and ``close``
(:class:`~regdata.cache.backends.base.Backend`); the policy of what to keep
and for how long lives in :class:`regdata.cache.Cache` above them.
"""

from .base import Backend
from .memory import MemoryBackend

__all__ = ["Backend", "MemoryBackend"]
