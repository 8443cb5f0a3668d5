"""The cached Remote: a Remote's methods, answered from the cache when it can.

As Flux v1's ``CachedDockerRegistry`` wrapped its client,
:class:`CachedRemote` wraps a plain :class:`~regdata.client.remote.Remote`
and has the same methods; the factory puts it around the Remote when a
cache is set.  It holds the policy of what is asked of the registry:

- a tag list is fresh for the TTL, then fetched again;
- the digest a tag points to is fresh for the TTL, then revalidated by a
  HEAD (Docker Hub does not count a HEAD as a pull); only a changed digest
  is fetched again;
- a manifest or config blob is kept by digest for ever, and checked
  against its digest on the way out of the store, which is not trusted;
- what this process verified is kept parsed in its memory
  (:meth:`known_manifest`, :meth:`known_config`), so a warm scan reads no
  backend and hands no task to a thread.

An answer the cache gives is a row of the request log too (``cache="hit"``,
``attempt=0``): the request it saved.  The requests sent on a miss say
``cache="miss"``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

from regdata.cache import Cache, CachedManifest
from regdata.context import Context
from regdata.credentials import Credential
from regdata.errors import ErrorDetail, NotFound, RegdataError, printable
from regdata.instrument.requestlog import RequestLog, RequestRecord
from regdata.oci.digest import verify
from regdata.oci.fetched import (
    CONFIG_MAX_BYTES,
    FetchedManifest,
    as_reference,
    as_repository,
    check_manifest,
)
from regdata.oci.manifest import ImageConfig, parse_config, parse_manifest
from regdata.oci.reference import Reference, Repository, api_host
from regdata.transport.base import Transport

__all__ = ["CachedRemote", "Inner"]


class Inner(Protocol):
    """What a CachedRemote needs of the Remote it wraps (:class:`regdata.client.remote.Remote`)."""

    registry: str
    api_host: str
    credential: Credential
    log: RequestLog
    transport: Transport
    page_size: int

    @property
    def cancelled(self) -> bool: ...

    def cancel(self) -> None: ...

    def scheme(self, context: Context | None = None) -> str: ...

    def ping(self, context: Context | None = None) -> int: ...

    def catalog(self, context: Context | None = None) -> list[str]: ...

    def tag_pages(self, repo: str | Repository, context: Context | None = None) -> list[dict[str, Any]]: ...

    def tags(
        self, repo: str | Repository, context: Context | None = None, *, cache_state: str = "none"
    ) -> list[str]: ...

    def head(
        self, ref: str | Reference, context: Context | None = None, *, cache_state: str = "none"
    ) -> tuple[str, str | None]: ...

    def tag_digest(
        self, ref: str | Reference, context: Context | None = None, *, cache_state: str = "none"
    ) -> str | None: ...

    def manifest(
        self, ref: str | Reference, context: Context | None = None, *, cache_state: str = "none"
    ) -> FetchedManifest: ...

    def blob(
        self,
        repo: str | Repository,
        digest: str,
        context: Context | None = None,
        max_bytes: int = CONFIG_MAX_BYTES,
        *,
        cache_state: str = "none",
    ) -> bytes: ...


class CachedRemote:
    """A Remote whose answers come from ``cache`` when it holds them; the same methods as ``inner``.

    ``cancel()`` cancels the Remote inside: what is in flight stops, and the
    factory makes a new pair for later calls.
    """

    def __init__(self, inner: Inner, cache: Cache) -> None:
        self.inner = inner
        self.cache = cache
        # A registry read through a mirror: the mirror's answers are its own, under its own keys.
        self._host = (
            inner.registry
            if inner.api_host == api_host(inner.registry)
            else (f"{inner.registry}~{inner.api_host}")
        )

    def __repr__(self) -> str:
        return f"CachedRemote({self.inner!r}, cache={self.cache.name})"

    # -- what the Remote inside says ------------------------------------------

    @property
    def registry(self) -> str:
        """The registry host, as references name it."""
        return self.inner.registry

    @property
    def api_host(self) -> str:
        """The host serving the API (a mirror's, when read through one)."""
        return self.inner.api_host

    @property
    def credential(self) -> Credential:
        """The credential the Remote inside sends."""
        return self.inner.credential

    @property
    def log(self) -> RequestLog:
        """The request log the Remote inside writes to (this wrapper's hits go there too)."""
        return self.inner.log

    @property
    def page_size(self) -> int:
        """Tags or repositories asked for per page (``n=``) by the Remote inside."""
        return self.inner.page_size

    @page_size.setter
    def page_size(self, value: int) -> None:
        self.inner.page_size = value

    @property
    def transport(self) -> Transport:
        """The transport chain the Remote inside sends through."""
        return self.inner.transport

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self.inner.cancelled

    def cancel(self) -> None:
        """Stop the Remote inside: requests not yet sent will not be sent."""
        self.inner.cancel()

    def scheme(self, context: Context | None = None) -> str:
        """The host's scheme (``https`` or ``http``)."""
        return self.inner.scheme(context)

    def ping(self, context: Context | None = None) -> int:
        """GET /v2/ (never cached)."""
        return self.inner.ping(context)

    def catalog(self, context: Context | None = None) -> list[str]:
        """Every repository of the registry (never cached)."""
        return self.inner.catalog(context)

    def tag_pages(self, repo: str | Repository, context: Context | None = None) -> list[dict[str, Any]]:
        """Every page of ``tags/list`` as sent (never cached)."""
        return self.inner.tag_pages(repo, context)

    def head(self, ref: str | Reference, context: Context | None = None) -> tuple[str, str | None]:
        """HEAD a manifest (never cached: the caller asks the registry itself)."""
        return self.inner.head(ref, context)

    def key(self, kind: str, repository: str, reference: str) -> str:
        """The cache key of one entry of this Remote (its host and credential)."""
        return self.cache.key(kind, self._host, repository, reference, self.inner.credential.identity())

    # -- the request log's rows for answers the cache gave ---------------------

    def _hit(
        self, repository: str, kind: str, size: int, started: float, clock: float, method: str = "GET"
    ) -> None:
        """A request-log row for an answer the cache gave: the request it saved."""
        self.inner.log.record(
            RequestRecord(
                started=started,
                host=self.inner.api_host,
                repository=repository,
                kind=kind,
                method=method,
                status=None,
                duration_s=time.perf_counter() - clock,
                bytes=size,
                attempt=0,
                cache="hit",
                error=None,
            )
        )

    def _memory_hit(
        self, repository: str, kind: str, size: int, started: float, clock: float, method: str = "GET"
    ) -> None:
        """:meth:`_hit` for an answer from this process's memory, counted in the cache's hits."""
        self.cache.count_hits(1)
        self._hit(repository, kind, size, started, clock, method)

    # -- cached ----------------------------------------------------------------

    def tags(self, repo: str | Repository, context: Context | None = None) -> list[str]:
        """Every tag of ``repo``: from the cache while fresh, else from the registry, then kept."""
        repository = as_repository(repo, self.registry)
        key = self.key("tags", repository.repository, "")
        started, clock = time.time(), time.perf_counter()
        cached = self.cache.get_tags(key, self.registry)
        if cached is not None:
            self._hit(repository.repository, "tags", sum(len(t) + 3 for t in cached), started, clock)
            return cached
        unknown_key = self.key("unknown", repository.repository, "")
        unknown = self.cache.get_unknown(unknown_key, self.registry)
        if unknown is not None:
            self._hit(repository.repository, "tags", 0, started, clock)
            url, errors = unknown
            # The store is shared and not trusted: its words are shown as printable text only.
            raise NotFound(
                404,
                printable(url, 300),
                tuple(ErrorDetail(printable(c, 100), printable(m)) for c, m in errors),
            )
        try:
            tags = self.inner.tags(repository, context, cache_state="miss")
        except NotFound as exc:
            errors = [(e.code, e.message) for e in exc.errors]
            self.cache.put_unknown(unknown_key, self.registry, exc.url, errors)
            raise
        self.cache.put_tags(key, self.registry, tags)
        return tags

    def digest_of(self, ref: str | Reference, context: Context | None = None) -> str:
        """The digest a tag points to: from the cache while fresh, else by HEAD (no pull), then kept."""
        ref = as_reference(ref, self.registry)
        if ref.digest is not None:
            return ref.digest
        key = self.key("tag", ref.repository, ref.tag or "")
        started, clock = time.time(), time.perf_counter()
        fresh, _ = self.cache.get_tag(key, self.registry)
        if fresh is not None:
            self._hit(ref.repository, "manifest_head", 0, started, clock, method="HEAD")
            return fresh
        digest, _ = self.inner.head(ref, context)
        self.cache.put_tag(key, self.registry, digest)
        return digest

    def manifest(self, ref: str | Reference, context: Context | None = None) -> FetchedManifest:
        """The manifest ``ref`` names, verified: by digest from the cache, else from the registry."""
        ref = as_reference(ref, self.registry)
        if ref.digest is None:
            # A tag: which digest it points to comes from the cache while fresh, from
            # a HEAD once stale (Docker Hub does not count a HEAD as a pull).
            digest = self._tag_digest(ref, context)
            if digest is None:
                fetched = self.inner.manifest(ref, context, cache_state="miss")
                self._store(ref, fetched)
                return fetched
            ref = Reference(ref.registry, ref.repository, ref.tag, digest)
        assert ref.digest is not None
        key = self.key("manifest", ref.repository, ref.digest)
        started, clock = time.time(), time.perf_counter()
        known: FetchedManifest | None = self.cache.recall("manifest", key)
        if known is not None:
            self._hit(ref.repository, "manifest", len(known.body), started, clock)
            return known
        entry = self.cache.get_manifest(key)
        if entry is not None:
            try:
                # Checked on the way out like a fresh body: the store is not trusted.
                check_manifest(entry.body, entry.media_type, ref.digest, f"cached manifest {ref}")
                fetched = FetchedManifest(
                    ref.digest, entry.media_type, entry.body, parse_manifest(entry.body, entry.media_type)
                )
            except RegdataError:
                self.cache.discard(key)  # a corrupt or foreign entry: a miss, overwritten below
            else:
                self.cache.remember("manifest", key, fetched, len(fetched.body))
                self._hit(ref.repository, "manifest", len(entry.body), started, clock)
                return fetched
        # By digest, even for a tag: the tag may move between the HEAD and this GET.
        fetched = self.inner.manifest(ref, context, cache_state="miss")
        # Stored by digest only: the tag's entry is _tag_digest's, dated when the registry said it.
        self._store(Reference(ref.registry, ref.repository, None, ref.digest), fetched)
        return fetched

    def _tag_digest(self, ref: Reference, context: Context | None) -> str | None:
        """The digest a tag points to, from the cache, revalidated by HEAD after the TTL.

        None when the cache does not know the tag (or the registry's HEAD
        names no digest): the caller then GETs the tag.
        """
        assert ref.tag is not None
        key = self.key("tag", ref.repository, ref.tag)
        started, clock = time.time(), time.perf_counter()
        fresh, stale = self.cache.get_tag(key, self.registry)
        if fresh is not None:
            self._hit(ref.repository, "manifest_head", 0, started, clock, method="HEAD")
            return fresh
        if stale is None:
            return None
        # The fresh entry missed; "revalidate" is no state of the request log.
        digest = self.inner.tag_digest(ref, context, cache_state="miss")
        if digest is not None:
            self.cache.put_tag(key, self.registry, digest)
        return digest

    def _store(self, ref: Reference, fetched: FetchedManifest) -> None:
        if ref.tag is not None:
            self.cache.put_tag(self.key("tag", ref.repository, ref.tag), self.registry, fetched.digest)
        key = self.key("manifest", ref.repository, fetched.digest)
        self.cache.remember("manifest", key, fetched, len(fetched.body))
        self.cache.put_manifest(key, CachedManifest(fetched.media_type, fetched.body))

    def known_manifest(
        self, ref: str | Reference, hits: list[Callable[[], None]] | None = None
    ) -> FetchedManifest | None:
        """The manifest ``ref`` names, if this process already holds it (fresh for a tag); else None.

        No request and no read of the cache's backend: a scan asks this
        first and runs what it can answer at once without handing it to a
        thread.  The hits are logged as :meth:`manifest` logs them, at once,
        or, given ``hits``, appended there for the caller to log once the
        whole task was answered (one that was not is run again, and logs then).
        """
        ref = as_reference(ref, self.registry)
        started, clock = time.time(), time.perf_counter()
        digest = ref.digest
        if digest is None:
            digest = self.cache.fresh_tag(self.key("tag", ref.repository, ref.tag or ""), self.registry)
            if digest is None:
                return None
        known: FetchedManifest | None = self.cache.recall(
            "manifest", self.key("manifest", ref.repository, digest), count=False
        )
        if known is None:
            return None
        found = [] if hits is None else hits
        if ref.digest is None:
            found.append(
                partial(self._memory_hit, ref.repository, "manifest_head", 0, started, clock, method="HEAD")
            )
        found.append(partial(self._memory_hit, ref.repository, "manifest", len(known.body), started, clock))
        if hits is None:
            for log_hit in found:
                log_hit()
        return known

    def known_config(
        self, repo: str | Repository, digest: str, hits: list[Callable[[], None]] | None = None
    ) -> ImageConfig | None:
        """An image config this process already holds, parsed; else None (no request, no backend read).

        ``hits`` as for :meth:`known_manifest`.
        """
        repository = as_repository(repo, self.registry).repository
        started, clock = time.time(), time.perf_counter()
        known: tuple[ImageConfig, int] | None = self.cache.recall(
            "config", self.key("blob", repository, digest), count=False
        )
        if known is None:
            return None
        log_hit = partial(self._memory_hit, repository, "blob", known[1], started, clock)
        if hits is None:
            log_hit()
        else:
            hits.append(log_hit)
        return known[0]

    def blob(
        self,
        repo: str | Repository,
        digest: str,
        context: Context | None = None,
        max_bytes: int = CONFIG_MAX_BYTES,
    ) -> bytes:
        """A blob (an image config) by digest, verified; kept for ever."""
        repository = as_repository(repo, self.registry)
        key = self.key("blob", repository.repository, digest)
        started, clock = time.time(), time.perf_counter()
        body = self.cache.get_blob(key)
        if body is not None:
            try:
                verify(body, digest, f"cached blob {digest}")  # the store is not trusted
                self._hit(repository.repository, "blob", len(body), started, clock)
                return body
            except RegdataError:
                self.cache.discard(key)  # a miss, overwritten below
        body = self.inner.blob(repository, digest, context, max_bytes, cache_state="miss")
        self.cache.put_blob(key, body)
        return body

    def config(self, repo: str | Repository, digest: str, context: Context | None = None) -> ImageConfig:
        """An image config by digest, verified and parsed; kept parsed in this process."""
        known = self.known_config(repo, digest)
        if known is not None:
            return known
        repository = as_repository(repo, self.registry)
        body = self.blob(repository, digest, context)
        config = parse_config(body)
        self.cache.remember(
            "config", self.key("blob", repository.repository, digest), (config, len(body)), len(body)
        )
        return config
