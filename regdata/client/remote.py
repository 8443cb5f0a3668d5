"""A Remote: one registry host, spoken to over the API (tags, manifests, blobs, catalog).

The Flux v1 ``Remote``, per host: a :class:`RemoteFactory` makes one per host
on first use, carrying the credentials, the transport and the cache.  Every
body is checked against its digest; registry errors become our exceptions.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from regdata.cache import Cache, CachedManifest
from regdata.client.context import Context
from regdata.credentials import Credential, Credentials
from regdata.errors import (
    ErrorDetail,
    MalformedContent,
    QuotaExhausted,
    RegdataError,
    TLSError,
    TransportError,
    error_for_status,
    printable,
)
from regdata.instrument.requestlog import RequestLog, RequestRecord
from regdata.oci.digest import compute, schema1_payload, verify
from regdata.oci.manifest import (
    ACCEPT_ALL,
    SCHEMA1_TYPES,
    ImageConfig,
    Manifest,
    decode_json,
    is_digest,
    load_json,
    parse_config,
    parse_manifest,
)
from regdata.oci.reference import (
    Reference,
    Repository,
    api_host,
    canonical_host,
    check_identifier,
    is_loopback_host,
)
from regdata.transport import HTTPTransport, Request, Response, RetryPolicy, Timeouts, Transport
from regdata.transport.base import host_key, join_url
from regdata.transport.chain import base_stack, for_host
from regdata.transport.limits import Limiters, Limits
from regdata.transport.proxy import Proxies
from regdata.transport.retry import Clock, parse_retry_after, quota_exhausted
from regdata.transport.trust import CertSetting, Trust, VerifySetting

__all__ = ["FetchedManifest", "Remote", "RemoteFactory"]

logger = logging.getLogger("regdata.client.remote")

# ECR returns an error for n > 1000.
PAGE_SIZE = 1000
MAX_PAGES = 10_000
ERROR_BODY_MAX = 64 * 1024
# Tries of the TLS probe when the host does not answer at all (it goes below the retry layer).
_PROBE_ATTEMPTS = 3
CONFIG_MAX_BYTES = 16 * 1024 * 1024
_LINK_NEXT = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?')


@dataclass(frozen=True)
class FetchedManifest:
    """A manifest as fetched: its verified digest, media type, raw body and parsed form."""

    digest: str
    media_type: str
    body: bytes
    manifest: Manifest


def manifest_digest(body: bytes, media_type: str | None) -> str:
    """The digest a registry gives this manifest (schema1: over the signed payload)."""
    if media_type in SCHEMA1_TYPES:
        return compute(schema1_payload(body))
    return compute(body)


def check_manifest(body: bytes, media_type: str | None, expected: str, what: str) -> str:
    """Verify a manifest body against ``expected``; schema1 may match by payload or body."""
    if media_type in SCHEMA1_TYPES or b'"schemaVersion": 1' in body[:200]:
        try:
            return verify(schema1_payload(body), expected, what)
        except RegdataError:
            pass
    return verify(body, expected, what)


def registry_error(response: Response) -> RegdataError:
    """The exception for an error answer, with the spec's ``errors[]`` when present."""
    details: list[ErrorDetail] = []
    detail = ""
    try:
        doc = decode_json(response.body[:ERROR_BODY_MAX])
        entries = doc.get("errors") if isinstance(doc, dict) else None
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict):
                # The registry's own words go into our messages: printable ones only.
                details.append(
                    ErrorDetail(printable(entry.get("code", ""), 100), printable(entry.get("message", "")))
                )
    except ValueError:
        media = response.media_type or "no content type"
        detail = f"non-JSON answer: {printable(media, 100)}"
    parts = urlsplit(response.url)
    seconds = parse_retry_after(response.headers.get("Retry-After"), time.time())
    if quota_exhausted(response.status, response.headers, response.body):
        return QuotaExhausted(response.status, f"{parts.netloc}{parts.path}", tuple(details),
                              detail=detail or "pull quota used up")
    return error_for_status(
        response.status,
        f"{parts.netloc}{parts.path}",
        tuple(details),
        detail=detail,
        retry_after=seconds,
    )


@dataclass
class Remote:
    """The API of one registry host.

    Made by :class:`RemoteFactory`; ``cancel()`` stops the work in flight.
    """

    registry: str  # canonical host, as in references: "docker.io", "127.0.0.1:5000"
    api_host: str  # the host serving the API: "registry-1.docker.io"
    transport: Transport
    credential: Credential
    log: RequestLog
    cache: Cache | None = None
    http: HTTPTransport | None = None
    context: Context = field(default_factory=Context)
    page_size: int = PAGE_SIZE
    _scheme: str | None = None
    _scheme_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def cancel(self) -> None:
        """Stop this Remote: requests not yet sent will not be sent."""
        self.context.cancel()

    def _ctx(self, context: Context | None) -> Context:
        return Context(deadline=context.deadline if context else None,
                       parent=_join(self.context, context))

    # -- addressing ---------------------------------------------------------

    def scheme(self, context: Context | None = None) -> str:
        """``https``, or ``http`` for a loopback or insecure host that does not speak TLS.

        Like Docker, a host allowed plain HTTP is tried with TLS first; only
        a server that does not speak TLS at all falls back to HTTP. A TLS
        server whose certificate fails verification is an error, not a
        fall-back.  A TLS hello refused is no HTTP exchange and not a row of
        the request log (it would read as a failed request on every scan of
        a local registry); the ``regdata.client.remote`` logger says it at INFO.
        """
        if self._scheme is not None:
            return self._scheme
        with self._scheme_lock:
            if self._scheme is None:
                self._scheme = self._probe_scheme(context)
            return self._scheme

    def _probe_scheme(self, context: Context | None) -> str:
        allowed = self.http.allows_plain_http(self.api_host) if self.http else is_loopback_host(
            self.api_host
        )
        if not allowed:
            return "https"
        if self.http:
            self.http.warn_insecure(self.api_host)
        request = Request("GET", f"https://{self.api_host}/v2/", "ping", context=self._ctx(context))
        for attempt in range(1, _PROBE_ATTEMPTS + 1):
            started, clock = time.time(), time.perf_counter()
            try:
                # Straight to HTTP: any answer at all, 401 included, says the host speaks TLS.
                response = self.http.send(request) if self.http else self.transport.send(request)
                break
            except TLSError as exc:
                if exc.verify_failed or exc.client_certificate:  # a TLS server: an error, never plain
                    raise
                logger.info("%s does not speak TLS (%s): using plain HTTP", self.api_host,
                            printable(str(exc), 200))
                return "http"
            except TransportError as exc:
                # A timeout or a reset says nothing about TLS (nor a CA file that will not load).
                if not exc.temporary or attempt == _PROBE_ATTEMPTS:
                    raise
                request.context.sleep(0.2 * attempt)
        if self.http:
            # /v2/ answers 401 to ask for credentials: an answer, not a failure.
            failed = not (response.ok or response.status == 401)
            self._record(None, "ping", len(response.body), started, clock, status=response.status,
                         error=f"HTTP {response.status}" if failed else None,
                         proxy=self.http.proxy_for(request.url))
        return "https"

    def url(self, path: str, context: Context | None = None) -> str:
        """The absolute URL of an API path."""
        return f"{self.scheme(context)}://{self.api_host}{path}"

    def _send(self, request: Request) -> Response:
        response = self.transport.send(request)
        if not response.ok:
            raise registry_error(response)
        return response

    def _hit(self, repository: str, kind: str, size: int, started: float, clock: float,
             method: str = "GET") -> None:
        """A request-log row for an answer the cache gave: the request it saved."""
        self._record(repository, kind, size, started, clock, method=method, cache="hit", attempt=0)

    def _memory_hit(self, repository: str, kind: str, size: int, started: float, clock: float,
                    method: str = "GET") -> None:
        """:meth:`_hit` for an answer from this process's memory, counted in the cache's hits."""
        if self.cache is not None:
            self.cache.count_hits(1)
        self._hit(repository, kind, size, started, clock, method)

    def _record(self, repository: str | None, kind: str, size: int, started: float, clock: float, *,
                method: str = "GET", status: int | None = None, cache: str = "none", attempt: int = 1,
                error: str | None = None, proxy: str | None = None) -> None:
        """A request-log row written here rather than by the log layer."""
        self.log.record(
            RequestRecord(
                started=started, host=self.api_host, repository=repository, kind=kind,
                method=method, status=status, duration_s=time.perf_counter() - clock, bytes=size,
                attempt=attempt, cache=cache, error=error, proxy=proxy,
            )
        )

    # -- API ----------------------------------------------------------------

    def ping(self, context: Context | None = None) -> int:
        """GET /v2/; returns the status (200, or 401 for a registry that wants auth)."""
        ctx = self._ctx(context)
        return self.transport.send(Request("GET", self.url("/v2/", ctx), "ping", context=ctx)).status

    def tags(self, repo: Repository, context: Context | None = None) -> list[str]:
        """Every tag of ``repo`` as the registry lists them, across ``Link`` pages."""
        ctx = self._ctx(context)
        cache = self.cache
        key = cache.key("tags", self, repo.repository, "") if cache is not None else ""
        if cache is not None:
            started, clock = time.time(), time.perf_counter()
            cached = cache.get_tags(key, self.registry)
            if cached is not None:
                self._hit(repo.repository, "tags", sum(len(t) + 3 for t in cached), started, clock)
                return cached
        tags = self._paginate(
            f"/v2/{repo.repository}/tags/list?n={self.page_size}", "tags", "tags",
            repo.repository, f"repository:{repo.repository}:pull", ctx,
            cache_state="none" if cache is None else "miss",
        )
        if cache is not None:
            cache.put_tags(key, self.registry, tags)
        return tags

    def catalog(self, context: Context | None = None) -> list[str]:
        """Every repository of the registry, across ``Link`` pages."""
        ctx = self._ctx(context)
        return self._paginate(
            f"/v2/_catalog?n={self.page_size}", "repositories", "catalog", None,
            "registry:catalog:*", ctx,
        )

    def tag_pages(self, repo: Repository, context: Context | None = None) -> list[dict[str, Any]]:
        """Every page of ``tags/list`` as the registry sent it (GCR's adds a ``manifest`` map); not cached."""
        ctx = self._ctx(context)
        pages: list[dict[str, Any]] = []
        self._paginate(f"/v2/{repo.repository}/tags/list?n={self.page_size}", "tags", "tags",
                       repo.repository, f"repository:{repo.repository}:pull", ctx, pages=pages)
        return pages

    def _paginate(
        self, path: str, field_name: str, kind: str, repository: str | None, scope: str,
        ctx: Context, cache_state: str = "none", pages: list[dict[str, Any]] | None = None,
    ) -> list[str]:
        url = self.url(path, ctx)
        origin = host_key(url)
        seen: set[str] = set()
        items: list[str] = []
        while True:
            seen.add(url)
            response = self._send(
                Request("GET", url, kind, repository=repository, scope=scope, context=ctx,
                        headers={"Accept": "application/json"}, cache=cache_state)
            )
            doc = load_json(response.body, f"{kind} answer")
            page = doc.get(field_name)
            if page is None:
                page = []
            if not isinstance(page, list) or not all(isinstance(t, str) for t in page):
                raise MalformedContent(f"{kind} answer: {field_name!r} is not a list of strings")
            items.extend(page)
            if pages is not None:
                pages.append(doc)
            match = _LINK_NEXT.search(response.headers.get("Link", ""))
            if not match:
                # A name a registry lists twice (pages that overlap) is one tag: one set of rows.
                return list(dict.fromkeys(items))
            url = join_url(url, match.group(1))
            if host_key(url) != origin:
                raise MalformedContent(f"{kind} pagination points to another host")
            if url in seen:
                raise MalformedContent(f"{kind} pagination loops back to a page already read")
            if len(seen) >= MAX_PAGES:
                raise MalformedContent(f"{kind} pagination runs past {MAX_PAGES} pages")

    def head(self, ref: Reference, context: Context | None = None) -> tuple[str, str | None]:
        """HEAD a manifest: its digest and media type, with no body fetched."""
        ctx = self._ctx(context)
        response = self._send(
            Request(
                "HEAD", self.url(_manifest_path(ref), ctx),
                "manifest_head", headers={"Accept": ", ".join(ACCEPT_ALL)},
                repository=ref.repository, scope=f"repository:{ref.repository}:pull", context=ctx,
            )
        )
        digest = _digest_header(response) or ref.digest
        if not digest:
            raise MalformedContent(f"HEAD {ref}: no Docker-Content-Digest in the answer")
        return digest, response.media_type

    def digest_of(self, ref: Reference, context: Context | None = None) -> str:
        """The digest a tag points to: from the cache while fresh, else by HEAD (no pull), then kept."""
        if ref.digest is not None:
            return ref.digest
        ctx = self._ctx(context)
        cache = self.cache
        if cache is not None:
            key = cache.key("tag", self, ref.repository, ref.tag or "")
            started, clock = time.time(), time.perf_counter()
            fresh, _ = cache.get_tag(key, self.registry)
            if fresh is not None:
                self._hit(ref.repository, "manifest_head", 0, started, clock, method="HEAD")
                return fresh
        digest, _ = self.head(ref, ctx)
        if cache is not None:
            cache.put_tag(key, self.registry, digest)
        return digest

    def manifest(self, ref: Reference, context: Context | None = None) -> FetchedManifest:
        """The manifest ``ref`` names (its digest if it has one, else its tag), verified."""
        ctx = self._ctx(context)
        cache = self.cache
        if cache is None:
            return self._fetch_manifest(ref, ctx)
        if ref.digest is None:
            # A tag: which digest it points to comes from the cache while fresh, from
            # a HEAD once stale (Docker Hub does not count a HEAD as a pull).
            digest = self._tag_digest(ref, ctx)
            if digest is None:
                fetched = self._fetch_manifest(ref, ctx, cache_state="miss")
                self._store(ref, fetched)
                return fetched
            ref = Reference(ref.registry, ref.repository, ref.tag, digest)
        assert ref.digest is not None
        key = cache.key("manifest", self, ref.repository, ref.digest)
        started, clock = time.time(), time.perf_counter()
        known: FetchedManifest | None = cache.recall("manifest", key)
        if known is not None:
            self._hit(ref.repository, "manifest", len(known.body), started, clock)
            return known
        entry = cache.get_manifest(key)
        if entry is not None:
            try:
                # Checked on the way out like a fresh body: the store is not trusted.
                check_manifest(entry.body, entry.media_type, ref.digest, f"cached manifest {ref}")
                fetched = FetchedManifest(ref.digest, entry.media_type, entry.body,
                                          parse_manifest(entry.body, entry.media_type))
            except RegdataError:
                cache.discard(key)  # a corrupt or foreign entry: a miss, overwritten below
            else:
                cache.remember("manifest", key, fetched, len(fetched.body))
                self._hit(ref.repository, "manifest", len(entry.body), started, clock)
                return fetched
        # By digest, even for a tag: the tag may move between the HEAD and this GET.
        fetched = self._fetch_manifest(ref, ctx, cache_state="miss")
        # Stored by digest only: the tag's entry is _tag_digest's, dated when the registry said it.
        self._store(Reference(ref.registry, ref.repository, None, ref.digest), fetched)
        return fetched

    def known_manifest(self, ref: Reference, hits: list[Callable[[], None]] | None = None
                       ) -> FetchedManifest | None:
        """The manifest ``ref`` names, if this process already holds it (fresh for a tag); else None.

        No request and no read of the cache's backend: a scan asks this
        first and runs what it can answer at once without handing it to a
        thread.  The hits are logged as :meth:`manifest` logs them, at once,
        or, given ``hits``, appended there for the caller to log once the
        whole task was answered (one that was not is run again, and logs then).
        """
        cache = self.cache
        if cache is None:
            return None
        started, clock = time.time(), time.perf_counter()
        digest = ref.digest
        if digest is None:
            digest = cache.fresh_tag(cache.key("tag", self, ref.repository, ref.tag or ""), self.registry)
            if digest is None:
                return None
        known: FetchedManifest | None = cache.recall(
            "manifest", cache.key("manifest", self, ref.repository, digest), count=False
        )
        if known is None:
            return None
        found = [] if hits is None else hits
        if ref.digest is None:
            found.append(partial(self._memory_hit, ref.repository, "manifest_head", 0, started, clock,
                                 method="HEAD"))
        found.append(partial(self._memory_hit, ref.repository, "manifest", len(known.body), started, clock))
        if hits is None:
            for log_hit in found:
                log_hit()
        return known

    def known_config(self, repo: Repository, digest: str, hits: list[Callable[[], None]] | None = None
                     ) -> ImageConfig | None:
        """An image config this process already holds, parsed; else None (no request, no backend read).

        ``hits`` as for :meth:`known_manifest`.
        """
        cache = self.cache
        if cache is None:
            return None
        started, clock = time.time(), time.perf_counter()
        known: tuple[ImageConfig, int] | None = cache.recall(
            "config", cache.key("blob", self, repo.repository, digest), count=False
        )
        if known is None:
            return None
        log_hit = partial(self._memory_hit, repo.repository, "blob", known[1], started, clock)
        if hits is None:
            log_hit()
        else:
            hits.append(log_hit)
        return known[0]

    def _tag_digest(self, ref: Reference, ctx: Context) -> str | None:
        """The digest a tag points to, from the cache, revalidated by HEAD after the TTL.

        None when the cache does not know the tag (or the registry's HEAD
        names no digest): the caller then GETs the tag.
        """
        assert self.cache is not None and ref.tag is not None
        key = self.cache.key("tag", self, ref.repository, ref.tag)
        started, clock = time.time(), time.perf_counter()
        fresh, stale = self.cache.get_tag(key, self.registry)
        if fresh is not None:
            self._hit(ref.repository, "manifest_head", 0, started, clock, method="HEAD")
            return fresh
        if stale is None:
            return None
        digest = self._revalidate(ref, ctx)
        if digest is not None:
            self.cache.put_tag(key, self.registry, digest)
        return digest

    def _revalidate(self, ref: Reference, ctx: Context) -> str | None:
        """HEAD a stale tag: the digest it points to now, or None when the answer names none."""
        response = self._send(
            Request(
                "HEAD", self.url(_manifest_path(ref), ctx),
                "manifest_head", headers={"Accept": ", ".join(ACCEPT_ALL)},
                repository=ref.repository, scope=f"repository:{ref.repository}:pull", context=ctx,
                cache="miss",  # the fresh entry missed; "revalidate" is no state of the log
            )
        )
        return _digest_header(response)

    def _store(self, ref: Reference, fetched: FetchedManifest) -> None:
        assert self.cache is not None
        if ref.tag is not None:
            self.cache.put_tag(self.cache.key("tag", self, ref.repository, ref.tag), self.registry,
                               fetched.digest)
        key = self.cache.key("manifest", self, ref.repository, fetched.digest)
        self.cache.remember("manifest", key, fetched, len(fetched.body))
        self.cache.put_manifest(key, CachedManifest(fetched.media_type, fetched.body))

    def _fetch_manifest(self, ref: Reference, ctx: Context, cache_state: str = "none") -> FetchedManifest:
        response = self._send(
            Request(
                "GET", self.url(_manifest_path(ref), ctx), "manifest",
                headers={"Accept": ", ".join(ACCEPT_ALL)}, repository=ref.repository,
                scope=f"repository:{ref.repository}:pull", context=ctx, cache=cache_state,
            )
        )
        body = response.body
        header_type = response.media_type
        manifest = parse_manifest(body, header_type)
        media_type = manifest.media_type
        expected = ref.digest or _digest_header(response)
        if expected:
            digest = check_manifest(body, media_type, expected, f"manifest {ref}")
        else:
            digest = manifest_digest(body, media_type)
        return FetchedManifest(digest, media_type, body, manifest)

    def blob(self, repo: Repository, digest: str, context: Context | None = None,
             max_bytes: int = CONFIG_MAX_BYTES) -> bytes:
        """A blob (an image config) by digest, verified; cached forever when a cache is set."""
        ctx = self._ctx(context)
        cache = self.cache
        key = cache.key("blob", self, repo.repository, digest) if cache is not None else ""
        if cache is not None:
            started, clock = time.time(), time.perf_counter()
            body = cache.get_blob(key)
            if body is not None:
                try:
                    verify(body, digest, f"cached blob {digest}")  # the store is not trusted
                    self._hit(repo.repository, "blob", len(body), started, clock)
                    return body
                except RegdataError:
                    cache.discard(key)  # a miss, overwritten below
        response = self._send(
            Request(
                "GET", self.url(_blob_path(repo, digest), ctx), "blob",
                repository=repo.repository, scope=f"repository:{repo.repository}:pull",
                context=ctx, max_bytes=max_bytes, cache="miss" if self.cache else "none",
            )
        )
        verify(response.body, digest, f"blob {digest} of {repo}")
        if cache is not None:
            cache.put_blob(key, response.body)
        return response.body


    def config(self, repo: Repository, digest: str, context: Context | None = None) -> ImageConfig:
        """An image config by digest, verified and parsed; kept parsed in this process when cached."""
        known = self.known_config(repo, digest)
        if known is not None:
            return known
        body = self.blob(repo, digest, context)
        config = parse_config(body)
        if self.cache is not None:
            self.cache.remember("config", self.cache.key("blob", self, repo.repository, digest),
                                (config, len(body)), len(body))
        return config


def _digest_header(response: Response) -> str | None:
    """The ``Docker-Content-Digest`` of an answer: None when absent, MalformedContent when no digest."""
    value = response.headers.get("Docker-Content-Digest")
    if not value:
        return None
    if not is_digest(value):
        raise MalformedContent(f"Docker-Content-Digest is not a digest: {printable(value, 80)!r}")
    return value


def _manifest_path(ref: Reference) -> str:
    """``/v2/<repo>/manifests/<tag or digest>``; a tag or digest no reference could hold is refused."""
    check_identifier(ref.tag if ref.digest is None else None, ref.digest, f"{ref.registry}/{ref.repository}")
    return f"/v2/{ref.repository}/manifests/{ref.identifier}"


def _blob_path(repo: Repository, digest: str) -> str:
    check_identifier(None, digest, f"{repo.registry}/{repo.repository}")
    return f"/v2/{repo.repository}/blobs/{digest}"


def _join(own: Context, given: Context | None) -> Context:
    """A context cancelled when either the Remote's or the caller's is."""
    if given is None:
        return own
    return _Either(own, given)


class _Either(Context):
    """Cancelled when either of two contexts is; the earlier deadline wins."""

    def __init__(self, a: Context, b: Context) -> None:
        deadlines = [d for d in (a.deadline, b.deadline) if d is not None]
        super().__init__(deadline=min(deadlines) if deadlines else None)
        self._a, self._b = a, b

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set() or self._a.cancelled or self._b.cancelled


@dataclass
class RemoteFactory:
    """Makes one :class:`Remote` per registry host and keeps it (the Flux v1 ClientFactory).

    It carries what every Remote shares: the credentials, one HTTP layer with
    a connection pool per host, the backoff state, the per-host limiters
    (``limits``: concurrency bounds, rps, quota floor), the cache and the request log.
    """

    credentials: Credentials = field(default_factory=Credentials.none)
    cache: Cache | None = None
    log: RequestLog = field(default_factory=RequestLog)
    timeouts: Timeouts = field(default_factory=Timeouts)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    insecure: frozenset[str] = frozenset()
    verify: VerifySetting = True
    cert: CertSetting = None
    cert_dir: str | None = None
    certs_d: tuple[str, ...] | None = None
    proxies: Proxies | None = None
    pool_size: int = 8
    clock: Clock | None = None
    mirrors: dict[str, str] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    http_transport: HTTPTransport | None = field(default=None, repr=False)  # regdata.testing's mock
    _remotes: dict[str, Remote] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        # Docker's registry-mirrors are URLs ("https://mirror.gcr.io"): the host is what is used.
        self.mirrors = {canonical_host(k): api_host(canonical_host(v)) for k, v in self.mirrors.items()}
        # A connection per request the limiter may let through, so none waits for a socket.
        self.pool_size = max(self.pool_size, self.limits.max_concurrency)
        insecure = frozenset(h.lower() for h in self.insecure)
        trust = Trust(verify=self.verify, cert=self.cert, cert_dir=self.cert_dir, certs_d=self.certs_d,
                      insecure=insecure)
        self.http = self.http_transport or HTTPTransport(
            timeouts=self.timeouts, verify=self.verify if isinstance(self.verify, bool | str) else True,
            insecure_hosts=insecure, pool_size=self.pool_size, trust=trust, proxies=self.proxies,
        )
        self.limiters = Limiters(self.limits, self.log, self.clock)
        self.base = base_stack(self.http, self.log, self.retry, self.clock, self.limiters)

    def remote(self, registry: str) -> Remote:
        """The Remote for ``registry`` (a canonical host such as ``docker.io``).

        A registry named in ``mirrors`` is read from its mirror instead, with
        the mirror's own credentials: a credential only goes to its own host.
        """
        host = canonical_host(registry)
        with self._lock:
            remote = self._remotes.get(host)
            if remote is None:
                api = self.mirrors.get(host) or api_host(host)
                credential = self.credentials.for_host(api if host in self.mirrors else host)
                remote = Remote(
                    registry=host, api_host=api, transport=for_host(api, credential, self.base),
                    credential=credential, log=self.log, cache=self.cache, http=self.http,
                )
                self._remotes[host] = remote
            return remote

    def cancel(self) -> None:
        """Cancel every Remote this factory made."""
        with self._lock:
            remotes = list(self._remotes.values())
        for remote in remotes:
            remote.cancel()

    def close(self) -> None:
        """Close the pooled connections."""
        self.http.close()
