"""A FaultProxy that counts the requests in flight through it: what a registry would see at once."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler

from .proxy import FaultProxy


class CountingProxy(FaultProxy):
    """The test bed's proxy, counting requests being served now and the most seen at once.

    ``delay`` (seconds per request) makes requests overlap as they would across a WAN,
    so a limit that does not hold shows.
    """

    def __init__(self, upstream: str, delay: float = 0.0) -> None:
        self.in_flight = 0
        self.max_in_flight = 0
        self.served = 0
        self._count_lock = threading.Lock()
        super().__init__(upstream, delay)

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        with self._count_lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            super()._serve(h)
        finally:
            with self._count_lock:
                self.in_flight -= 1
                self.served += 1

    def reset(self) -> None:
        """Forget the counts (and what was seen)."""
        with self._count_lock:
            self.max_in_flight = self.in_flight
            self.served = 0
        self.clear()
