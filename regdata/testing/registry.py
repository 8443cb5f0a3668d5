"""The in-memory registry a test fills, and the real clients over it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from regdata.client.registry import Registry
from regdata.client.remote import RemoteFactory
from regdata.credentials import Credentials
from regdata.instrument.requestlog import RequestLog
from regdata.oci.reference import Reference, Repository, canonical_host, parse_reference
from regdata.testing.content import Content
from regdata.testing.store import Fault, Repo, Store
from regdata.testing.transport import MockTransport

__all__ = ["MockRegistry"]


class MockRegistry:
    """Registries held in memory: repositories, tags, manifests and config blobs, and faults.

    One MockRegistry can hold repositories of any number of hosts; references
    name them as usual (``example.com/team/app:1.0``, ``alpine`` for Docker Hub).
    Its clients are regdata's own: :meth:`registry` gives a
    :class:`~regdata.Registry` whose HTTP layer is :meth:`transport`, so auth,
    retries, limits, the cache and the request log run as over a network.

    Args:
        latency: seconds each request takes (cancellation and budgets cut it short).
        users: ``{username: password}``: every request then needs HTTP Basic
            credentials (a 401 challenge without them), as a registry behind htpasswd.
    """

    def __init__(self, *, latency: float = 0.0, users: Mapping[str, str] | None = None) -> None:
        self._store = Store(latency=latency, users=dict(users or {}))

    def __repr__(self) -> str:
        with self._store.lock:
            return f"MockRegistry({len(self._store.repos)} repositories)"

    @property
    def latency(self) -> float:
        """Seconds each request takes."""
        return self._store.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._store.latency = seconds

    @property
    def calls(self) -> list[tuple[str, str]]:
        """Every request any client sent, as ``(kind, reference)``, in order (retries and challenges too)."""
        return self._store.calls

    # -- building ------------------------------------------------------------

    def _repo(self, ref: Reference | Repository, create: bool = False) -> Repo | None:
        key = (canonical_host(ref.registry), ref.repository)
        repo = self._store.repos.get(key)
        if repo is None and create:
            repo = self._store.repos[key] = Repo()
        return repo

    def push(self, reference: str, content: Content) -> str:
        """Store ``content`` under a tag (``latest`` when none is named) or its digest alone.

        Returns the digest. A tag pushed again moves to the new content.
        """
        ref = parse_reference(reference, default_tag=True)
        if ref.digest is not None and ref.digest != content.digest:
            raise ValueError(f"{reference}: the content's digest is {content.digest}")
        with self._store.lock:
            repo = self._repo(ref, create=True)
            assert repo is not None
            repo.store(content)
            if ref.tag is not None:
                repo.tags[ref.tag] = content.digest
        return content.digest

    def tag(self, reference: str, existing: str) -> None:
        """Point the tag ``reference`` at what ``existing`` (a tag or digest) names; shared digest.

        ``existing`` may be in another repository, as a cross-repository mount.
        """
        target = parse_reference(reference, default_tag=True)
        source = parse_reference(existing, default_tag=True)
        if target.tag is None or target.digest is not None:
            raise ValueError(f"{reference}: tag() needs a tag, without digest")
        with self._store.lock:
            repo = self._repo(source)
            digest = source.digest or (repo.tags.get(source.tag or "") if repo else None)
            if repo is None or digest is None or digest not in repo.manifests:
                raise KeyError(f"{existing} is not in the mock registry")
            content = repo.manifests[digest]
            into = self._repo(target, create=True)
            assert into is not None
            into.store(content)
            into.tags[target.tag] = digest

    def untag(self, reference: str) -> None:
        """Delete a tag; its manifest stays, reachable by digest (as in a registry)."""
        ref = parse_reference(reference, default_tag=True)
        with self._store.lock:
            repo = self._repo(ref)
            if repo is None or ref.tag is None or ref.tag not in repo.tags:
                raise KeyError(f"{reference} is not in the mock registry")
            del repo.tags[ref.tag]

    # -- faults --------------------------------------------------------------

    def _fault(self, reference: str, fault: Fault) -> None:
        ref = parse_reference(reference)
        key = ref.digest or ref.tag or ""
        with self._store.lock:
            repo = self._repo(ref, create=True)
            assert repo is not None
            repo.faults[key] = fault
            if ref.tag is not None and ref.digest is None:
                repo.listed.add(ref.tag)

    def fail(
        self,
        reference: str,
        error: Exception | int = 404,
        *,
        times: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Make requests for ``reference`` fail, like a registry answering with an error.

        ``reference`` names what fails: a repository (its tag list), a tag
        (its manifest; the tag is listed even if never pushed) or a digest
        (that manifest or blob, e.g. a missing config: ``repo@<config_digest>``).
        ``error`` is an HTTP status, answered with Distribution's ``errors[]``
        body (the client raises the matching :class:`~regdata.RegistryError`,
        after its retries for a 429 or 5xx), or an exception the transport
        raises (an ``OSError`` becomes the :class:`~regdata.errors.TransportError`
        of a failed connection).  ``times``: fail only the next that many
        requests (retries count).  ``retry_after``: the answer's ``Retry-After``.
        """
        self._fault(reference, Fault(error=error, times=times, retry_after=retry_after))

    def drop(self, reference: str, *, times: int | None = None) -> None:
        """Close the connection with no answer for requests of ``reference`` (see :meth:`fail`)."""
        self._fault(reference, Fault(drop=True, times=times))

    def delay(self, reference: str, seconds: float, *, times: int | None = None) -> None:
        """Answer requests for ``reference`` after ``seconds`` (a budget or cancellation cuts it short)."""
        self._fault(reference, Fault(delay=seconds, times=times))

    def corrupt(self, reference: str, body: bytes | None = None, *, times: int | None = None) -> None:
        """Serve other bytes than those stored for a tag or digest (manifest or blob).

        By default the stored bytes plus a newline: still valid JSON, but not
        the digest the registry announces (a :class:`~regdata.DigestMismatch`).
        With ``body``, those bytes (``b"{oops"`` for malformed JSON); the tag
        is listed even if never pushed.
        """
        self._fault(reference, Fault(corrupt=True, body=body, times=times))

    # -- clients -------------------------------------------------------------

    def transport(self, *, insecure: frozenset[str] = frozenset()) -> MockTransport:
        """The HTTP layer that answers from this registry, for ``Registry(transport=...)``."""
        return MockTransport(self._store, insecure_hosts=frozenset(h.lower() for h in insecure))

    def factory(self, log: RequestLog | None = None, **options: Any) -> RemoteFactory:
        """A real :class:`~regdata.client.remote.RemoteFactory` over this mock, for ``Registry(factory=...)``.

        ``options`` are RemoteFactory's own; credentials default to none.
        """
        options.setdefault("credentials", Credentials.none())
        return RemoteFactory(
            log=log if log is not None else RequestLog(),
            http_transport=self.transport(insecure=options.get("insecure", frozenset())),
            **options,
        )

    def registry(self, **options: Any) -> Registry:
        """A :class:`~regdata.Registry` over this mock; ``options`` are Registry's own.

        Unlike a Registry's defaults, no cache (pass ``cache="memory://"`` for one),
        no credentials and no proxies from the environment unless given.
        """
        options.setdefault("cache", None)
        options.setdefault("credentials", Credentials.none())
        options.setdefault("proxies", {})
        return Registry(transport=self.transport(insecure=frozenset(options.get("insecure", ()))), **options)
