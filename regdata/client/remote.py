"""A Remote: one registry host, spoken to over the API (tags, manifests, blobs, catalog).

The Flux v1 ``Remote``, per host: a :class:`RemoteFactory` makes one per host
on first use, carrying the credentials and the transport.  Every body is
checked against its digest; registry errors become our exceptions.  A
Remote caches nothing: with a cache, the factory wraps it in a
:class:`~regdata.cache.remote.CachedRemote`, which has the same methods
(as Flux v1's ``CachedDockerRegistry`` wrapped its client).

(Over 500 lines, formatted: the API of one host and the factory that stacks
credentials, transport and cache around it; the cache's policy is apart, in
``cache/remote.py``, and the TLS probe in ``transport/scheme.py``.)
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from regdata.cache import Cache
from regdata.cache.remote import CachedRemote
from regdata.context import Context
from regdata.credentials import Credential, Credentials
from regdata.errors import (
    ErrorDetail,
    MalformedContent,
    QuotaExhausted,
    RegdataError,
    error_for_status,
    printable,
)
from regdata.instrument import metrics
from regdata.instrument.requestlog import RequestLog
from regdata.oci.digest import verify
from regdata.oci.fetched import (
    CONFIG_MAX_BYTES,
    FetchedManifest,
    as_reference,
    as_repository,
    check_manifest,
    manifest_digest,
)
from regdata.oci.manifest import (
    ACCEPT_ALL,
    ImageConfig,
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
)
from regdata.transport.base import Request, Response, Transport, host_key, join_url
from regdata.transport.chain import base_stack, for_host
from regdata.transport.http import HTTPTransport, Timeouts
from regdata.transport.limits import Limiters, Limits
from regdata.transport.proxy import Proxies
from regdata.transport.retry import Clock, RetryPolicy, parse_retry_after, quota_exhausted
from regdata.transport.scheme import SchemeProbe
from regdata.transport.trust import CertSetting, Trust, VerifySetting

__all__ = [
    "CONFIG_MAX_BYTES",
    "FetchedManifest",
    "Remote",
    "RemoteFactory",
    "check_manifest",
    "manifest_digest",
]

# ECR returns an error for n > 1000.
PAGE_SIZE = 1000
MAX_PAGES = 10_000
ERROR_BODY_MAX = 64 * 1024
_LINK_NEXT = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?')


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
        return QuotaExhausted(
            response.status,
            f"{parts.netloc}{parts.path}",
            tuple(details),
            detail=detail or "pull quota used up",
        )
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

    Made by :class:`RemoteFactory`; ``cancel()`` stops the work in flight
    (the factory then makes a new Remote for the host's later calls).  Every
    method takes a name as a string (``"library/alpine"``, ``"app:1"``) as
    well as a :class:`~regdata.Repository` or :class:`~regdata.Reference`.
    ``cache_state`` is what the request log's ``cache`` column says of the
    requests a call sends: a wrapper that asked its cache first says ``"miss"``.
    """

    registry: str  # canonical host, as in references: "docker.io", "127.0.0.1:5000"
    api_host: str  # the host serving the API: "registry-1.docker.io"
    transport: Transport
    credential: Credential
    log: RequestLog
    http: HTTPTransport | None = None
    context: Context = field(default_factory=Context)
    page_size: int = PAGE_SIZE
    #: The host's scheme, probed once; shared by the Remotes a factory makes for the host.
    probe: SchemeProbe | None = None

    def __post_init__(self) -> None:
        if self.probe is None:
            self.probe = SchemeProbe(self.api_host, self.transport, self.log, self.http)
        self._probe: SchemeProbe = self.probe

    def cancel(self) -> None:
        """Stop this Remote: requests not yet sent will not be sent."""
        self.context.cancel()

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self.context.cancelled

    def _ctx(self, context: Context | None) -> Context:
        return Context(deadline=context.deadline if context else None, parent=_join(self.context, context))

    # -- addressing ---------------------------------------------------------

    def scheme(self, context: Context | None = None) -> str:
        """``https``, or ``http`` for a loopback or insecure host that does not speak TLS.

        See :mod:`regdata.transport.scheme`: probed once per host.
        """
        return self._probe.scheme(self._ctx(context))

    def url(self, path: str, context: Context | None = None) -> str:
        """The absolute URL of an API path."""
        return f"{self.scheme(context)}://{self.api_host}{path}"

    def _send(self, request: Request) -> Response:
        response = self.transport.send(request)
        if not response.ok:
            raise registry_error(response)
        return response

    # -- API ----------------------------------------------------------------

    def ping(self, context: Context | None = None) -> int:
        """GET /v2/; returns the status (200, or 401 for a registry that wants auth)."""
        ctx = self._ctx(context)
        return self.transport.send(Request("GET", self.url("/v2/", ctx), "ping", context=ctx)).status

    def tags(
        self, repo: str | Repository, context: Context | None = None, *, cache_state: str = "none"
    ) -> list[str]:
        """Every tag of ``repo`` as the registry lists them, across ``Link`` pages."""
        ctx = self._ctx(context)
        repository = as_repository(repo, self.registry).repository
        return self._paginate(
            f"/v2/{repository}/tags/list?n={self.page_size}",
            "tags",
            "tags",
            repository,
            f"repository:{repository}:pull",
            ctx,
            cache_state=cache_state,
        )

    def catalog(self, context: Context | None = None) -> list[str]:
        """Every repository of the registry, across ``Link`` pages."""
        ctx = self._ctx(context)
        return self._paginate(
            f"/v2/_catalog?n={self.page_size}",
            "repositories",
            "catalog",
            None,
            "registry:catalog:*",
            ctx,
        )

    def tag_pages(self, repo: str | Repository, context: Context | None = None) -> list[dict[str, Any]]:
        """Every page of ``tags/list`` as the registry sent it (GCR's adds a ``manifest`` map); not cached."""
        ctx = self._ctx(context)
        repository = as_repository(repo, self.registry).repository
        pages: list[dict[str, Any]] = []
        self._paginate(
            f"/v2/{repository}/tags/list?n={self.page_size}",
            "tags",
            "tags",
            repository,
            f"repository:{repository}:pull",
            ctx,
            pages=pages,
        )
        return pages

    def _paginate(
        self,
        path: str,
        field_name: str,
        kind: str,
        repository: str | None,
        scope: str,
        ctx: Context,
        cache_state: str = "none",
        pages: list[dict[str, Any]] | None = None,
    ) -> list[str]:
        url = self.url(path, ctx)
        origin = host_key(url)
        seen: set[str] = set()
        items: list[str] = []
        while True:
            seen.add(url)
            response = self._send(
                Request(
                    "GET",
                    url,
                    kind,
                    repository=repository,
                    scope=scope,
                    context=ctx,
                    headers={"Accept": "application/json"},
                    cache=cache_state,
                )
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

    def head(
        self, ref: str | Reference, context: Context | None = None, *, cache_state: str = "none"
    ) -> tuple[str, str | None]:
        """HEAD a manifest: its digest and media type, with no body fetched."""
        ref = as_reference(ref, self.registry)
        response = self._head(ref, self._ctx(context), cache_state)
        digest = _digest_header(response) or ref.digest
        if not digest:
            raise MalformedContent(f"HEAD {ref}: no Docker-Content-Digest in the answer")
        return digest, response.media_type

    def tag_digest(
        self, ref: str | Reference, context: Context | None = None, *, cache_state: str = "none"
    ) -> str | None:
        """HEAD a manifest: the digest the answer names, or None when it names none."""
        ref = as_reference(ref, self.registry)
        return _digest_header(self._head(ref, self._ctx(context), cache_state))

    def _head(self, ref: Reference, ctx: Context, cache_state: str) -> Response:
        return self._manifest_request("HEAD", "manifest_head", ref, ctx, cache_state)

    def _manifest_request(
        self, method: str, kind: str, ref: Reference, ctx: Context, cache_state: str
    ) -> Response:
        return self._send(
            Request(
                method,
                self.url(_manifest_path(ref), ctx),
                kind,
                headers={"Accept": ", ".join(ACCEPT_ALL)},
                repository=ref.repository,
                scope=f"repository:{ref.repository}:pull",
                context=ctx,
                cache=cache_state,
            )
        )

    def digest_of(self, ref: str | Reference, context: Context | None = None) -> str:
        """The digest a reference names: its own, else the tag's by HEAD (no pull)."""
        ref = as_reference(ref, self.registry)
        if ref.digest is not None:
            return ref.digest
        return self.head(ref, context)[0]

    def manifest(
        self, ref: str | Reference, context: Context | None = None, *, cache_state: str = "none"
    ) -> FetchedManifest:
        """The manifest ``ref`` names (its digest if it has one, else its tag), verified."""
        ref = as_reference(ref, self.registry)
        ctx = self._ctx(context)
        response = self._manifest_request("GET", "manifest", ref, ctx, cache_state)
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

    def blob(
        self,
        repo: str | Repository,
        digest: str,
        context: Context | None = None,
        max_bytes: int = CONFIG_MAX_BYTES,
        *,
        cache_state: str = "none",
    ) -> bytes:
        """A blob (an image config) by digest, verified."""
        repository = as_repository(repo, self.registry)
        ctx = self._ctx(context)
        response = self._send(
            Request(
                "GET",
                self.url(_blob_path(repository, digest), ctx),
                "blob",
                repository=repository.repository,
                scope=f"repository:{repository.repository}:pull",
                context=ctx,
                max_bytes=max_bytes,
                cache=cache_state,
            )
        )
        verify(response.body, digest, f"blob {digest} of {repository}")
        return response.body

    def config(self, repo: str | Repository, digest: str, context: Context | None = None) -> ImageConfig:
        """An image config by digest, verified and parsed."""
        return parse_config(self.blob(repo, digest, context))

    def known_manifest(
        self, ref: str | Reference, hits: list[Callable[[], None]] | None = None
    ) -> FetchedManifest | None:
        """None: a Remote holds nothing (a :class:`~regdata.cache.remote.CachedRemote` may)."""
        return None

    def known_config(
        self, repo: str | Repository, digest: str, hits: list[Callable[[], None]] | None = None
    ) -> ImageConfig | None:
        """None: a Remote holds nothing (a :class:`~regdata.cache.remote.CachedRemote` may)."""
        return None


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
    """Makes one Remote per registry host and keeps it (the Flux v1 ClientFactory).

    It carries what every Remote shares: the credentials, one HTTP layer with
    a connection pool per host, the backoff state, the per-host limiters
    (``limits``: concurrency bounds, rps, quota floor), the cache and the
    request log.  This is where the stack is built: the transport chain,
    the plain :class:`Remote` over it, and with a cache the
    :class:`~regdata.cache.remote.CachedRemote` around that.
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
    _remotes: dict[str, Remote | CachedRemote] = field(default_factory=dict, repr=False)
    _probes: dict[str, SchemeProbe] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        # Docker's registry-mirrors are URLs ("https://mirror.gcr.io"): the host is what is used.
        self.mirrors = {canonical_host(k): api_host(canonical_host(v)) for k, v in self.mirrors.items()}
        # A connection per request the limiter may let through, so none waits for a socket.
        self.pool_size = max(self.pool_size, self.limits.max_concurrency)
        insecure = frozenset(h.lower() for h in self.insecure)
        trust = Trust(
            verify=self.verify,
            cert=self.cert,
            cert_dir=self.cert_dir,
            certs_d=self.certs_d,
            insecure=insecure,
        )
        self.http = self.http_transport or HTTPTransport(
            timeouts=self.timeouts,
            verify=self.verify if isinstance(self.verify, bool | str) else True,
            insecure_hosts=insecure,
            pool_size=self.pool_size,
            trust=trust,
            proxies=self.proxies,
        )
        self.limiters = Limiters(self.limits, self.log, self.clock)
        self.base = base_stack(
            self.http, self.log, self.retry, self.clock, self.limiters, observe=metrics.observe_request
        )

    def remote(self, registry: str) -> Remote | CachedRemote:
        """The Remote for ``registry`` (a canonical host such as ``docker.io``).

        A registry named in ``mirrors`` is read from its mirror instead, with
        the mirror's own credentials: a credential only goes to its own host.
        A Remote that was cancelled is replaced by a new one (the host's
        scheme, connections, tokens and limits carry over).
        """
        host = canonical_host(registry)
        with self._lock:
            remote = self._remotes.get(host)
            if remote is None or remote.cancelled:
                remote = self._remotes[host] = self._make(host)
            return remote

    def _make(self, host: str) -> Remote | CachedRemote:
        api = self.mirrors.get(host) or api_host(host)
        credential = self.credentials.for_host(api if host in self.mirrors else host)
        probe = self._probes.get(host)
        if probe is None:
            # Kept per host, beyond any one Remote: the scheme and the tokens outlive a cancel.
            transport = for_host(api, credential, self.base)
            probe = self._probes[host] = SchemeProbe(api, transport, self.log, self.http)
        plain = Remote(
            registry=host,
            api_host=api,
            transport=probe.transport,
            credential=credential,
            log=self.log,
            http=self.http,
            probe=probe,
        )
        return plain if self.cache is None else CachedRemote(plain, self.cache)

    def cancel(self) -> None:
        """Cancel every Remote this factory made (later calls get new ones)."""
        with self._lock:
            remotes = list(self._remotes.values())
        for remote in remotes:
            remote.cancel()

    def close(self) -> None:
        """Close the pooled connections."""
        self.http.close()
