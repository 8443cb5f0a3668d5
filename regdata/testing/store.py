"""What a :class:`~regdata.testing.MockRegistry` holds: repositories, tags, blobs and faults.

Shared by the registry (which fills it) and the transport (which answers
HTTP requests from it), so neither imports the other.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from regdata.oci.reference import api_host
from regdata.testing.content import Content

__all__ = ["Fault", "Repo", "Store"]


@dataclass
class Fault:
    """How requests for one tag, digest or tag list go wrong.

    ``error``: a status to answer with, or an exception to raise (None: not an
    error); ``corrupt``: serve ``body``, or by default the stored bytes plus a
    newline; ``drop``: close the connection with no answer; ``retry_after``:
    the ``Retry-After`` of an error answer;
    ``delay``: seconds to wait before answering; ``times``: for the next that
    many requests only (None: every one).
    """

    error: Exception | int | None = None
    corrupt: bool = False
    body: bytes | None = None
    times: int | None = None
    retry_after: float | None = None
    drop: bool = False
    delay: float = 0.0

    def take(self) -> bool:
        """Whether this fault fires now (and count it)."""
        if self.times is None:
            return True
        if self.times <= 0:
            return False
        self.times -= 1
        return True


@dataclass
class Repo:
    """One repository: tags to digests, manifests and config blobs by digest, faults by key."""

    tags: dict[str, str] = field(default_factory=dict)
    manifests: dict[str, Content] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    listed: set[str] = field(default_factory=set)  # tags listed though never pushed (faults)
    faults: dict[str, Fault] = field(default_factory=dict)  # "" (the tag list), tag or digest

    def store(self, content: Content) -> None:
        """Keep ``content`` and every manifest and config under it."""
        for item in content.walk():
            self.manifests[item.digest] = item
            if item.config is not None and item.config_digest is not None:
                self.blobs[item.config_digest] = item.config

    def tag_list(self) -> list[str]:
        """The tags as Distribution lists them: sorted."""
        return sorted(set(self.tags) | self.listed)


@dataclass
class Store:
    """Repositories of any number of hosts, keyed by (canonical host, repository), under one lock."""

    latency: float = 0.0
    #: Every request any client sent, as ``(kind, reference)``, in order.
    calls: list[tuple[str, str]] = field(default_factory=list, repr=False)
    #: ``{username: password}``: when set, every request needs HTTP Basic credentials (never in a repr).
    users: dict[str, str] = field(default_factory=dict, repr=False)
    repos: dict[tuple[str, str], Repo] = field(default_factory=dict, repr=False)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def host_of(self, netloc: str) -> str:
        """The registry a request to ``netloc`` is for (``registry-1.docker.io`` serves ``docker.io``)."""
        netloc = netloc.lower()
        with self.lock:
            for host, _ in self.repos:
                if netloc in (host, api_host(host)):
                    return host
        return netloc

    def catalog(self, host: str) -> list[str]:
        """Every repository of ``host``, sorted."""
        with self.lock:
            return sorted(name for h, name in self.repos if h == host)
