"""The Registry: one repository, or one image, at a time, as DataFrames.

The Flux v1 ``GetRepository``/``GetImage``, returning pandas frames::

    reg = regdata.Registry()
    df = reg.get_repository("127.0.0.1:5000/team/app")   # one row per tag x platform
    df = reg.get_image("127.0.0.1:5000/multi/arch:1.0")  # the rows of one tag or digest
    h = reg.history("127.0.0.1:5000/team/app:v1.2.3")    # one row per history step, per platform
    reg.requests                                           # every request made, as a frame
    reg.summary()                                          # requests, time and bytes by host and kind
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

from regdata.cache import DEFAULT_TTL, Cache
from regdata.cache.open import open_cache, parse_ttl
from regdata.client.progress import progress_bar
from regdata.client.remote import RemoteFactory
from regdata.client.scan import RemoteLike, ScanOptions, ScanResult, scan
from regdata.context import Context
from regdata.credentials import Credentials
from regdata.frames import HISTORY, IMAGE_CATEGORIES, IMAGES, make_frame
from regdata.instrument.requestlog import RequestLog
from regdata.oci.manifest import Platform
from regdata.oci.reference import Reference, Repository, canonical_host, parse_reference, parse_repository
from regdata.transport import HTTPTransport, RetryPolicy, Timeouts
from regdata.transport.limits import DEFAULT_CONCURRENCY, DEFAULT_MAX_CONCURRENCY, Limiters, Limits
from regdata.transport.proxy import Proxies
from regdata.transport.ratelimit import RateLimit
from regdata.transport.trust import CertSetting, VerifySetting

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DEFAULT_CONCURRENCY", "DEFAULT_MAX_CONCURRENCY", "Registry"]


class Factory(Protocol):
    """What makes Remotes: a RemoteFactory (in tests, :mod:`regdata.testing`'s, over the mock transport)."""

    log: RequestLog

    def remote(self, registry: str) -> RemoteLike: ...

    def cancel(self) -> None: ...

    def close(self) -> None: ...


def _sort(frame: pd.DataFrame) -> pd.DataFrame:
    """Newest first, NaT last, then tag and platform: a frame that does not depend on timing."""
    if frame.empty:
        return frame
    ordered = frame.sort_values(
        ["created", "tag", "platform", "manifest_digest"],
        ascending=[False, True, True, True],
        na_position="last",
        kind="stable",
    )
    return ordered.reset_index(drop=True)


class Registry:
    """Reads registries into DataFrames.

    Args:
        credentials: a :class:`~regdata.Credentials`; by default the docker
            config and containers auth files of this user.
        cache: ``"sqlite:///path"`` (``?max_mb=N`` bounds it; 1 GiB by default),
            ``"memory://"``, ``"memcached://h:p[,h:p]"``, ``"memcached+srv://service"``,
            a backend or :class:`~regdata.cache.Cache`, or None for no cache. Default:
            ``$REGDATA_CACHE``, else SQLite in the user's cache directory. What this
            process verified is also kept parsed in its memory (64 MiB; see Cache).
        cache_ttl: how long tag lists and tag digests stay fresh (seconds or timedelta).
        concurrency: requests at a time per host. Left out, the limiter starts at 8,
            grows while the registry's latency holds and halves on a 429, within
            ``min_concurrency`` and ``max_concurrency``; a number fixes it (give
            ``max_concurrency`` too to let it grow from there).
        min_concurrency: the least it may be halved to (1).
        max_concurrency: the most it may grow to (32, or ``concurrency`` when
            larger); ``min_concurrency == max_concurrency`` pins it.
        rps: at most this many requests per second per host (None: no limit).
        quota_floor: send no pull (manifest GET) to a host whose ``RateLimit-Remaining``
            (Docker Hub's pull quota) would drop below this many; the unfinished rows
            say so. ``"auto"`` (the default) keeps 10% of the announced limit, at least
            2; None never stops. ``reg.rate_limits`` shows the latest values.
        timeout: connect and read timeouts per request (seconds, or a Timeouts); the read
            timeout also bounds how long a whole answer may take to arrive.
        budget: total seconds a scan may take; unfinished rows are marked ``timed out``.
        insecure: Docker's insecure registries: TLS without verification first, plain HTTP
            when the host speaks no TLS, a warning once per host (loopback may always use
            plain HTTP, but its certificate is verified when it speaks TLS).
        verify: TLS verification: True (the system store, ``SSL_CERT_FILE``/``SSL_CERT_DIR``,
            certifi, ``REQUESTS_CA_BUNDLE``, and per host Docker's ``certs.d``), False, a CA
            bundle or folder that replaces that trust, or ``{host: True | False | path}``.
        cert: a client certificate ``(certfile, keyfile)`` for every host, or ``{host: pair}``;
            else the ``*.cert``/``*.key`` pair of the host's ``certs.d`` folder, if any.
        cert_dir: one folder of ``*.crt`` CAs and a ``*.cert``/``*.key`` pair for every host,
            instead of ``certs.d`` (skopeo's ``--cert-dir``).
        certs_d: the ``certs.d`` roots to read (default ``/etc/containers/certs.d``,
            ``/etc/docker/certs.d``, ``~/.config/containers/certs.d``).
        proxies: a :class:`~regdata.Proxies`, or requests' ``{"https": URL, "http": URL,
            "no_proxy": "..."}``; replaces ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``, which
            are read otherwise, as Go reads them. ``reg.requests`` names the proxy per request.
        platforms: keep only these platforms (``"linux/amd64"``, ``"linux/arm/v7"``).
        labels_win: take ``created`` from ``org.opencontainers.image.created`` (or
            ``org.label-schema.build-date``) labels when present.
        attestations: also return buildkit attestation manifests as ``artifact`` rows.
        progress: True for a progress bar per scan (tqdm.auto: a terminal or Jupyter),
            or a callable ``progress(done, total)``.
        retry: a :class:`~regdata.transport.RetryPolicy` for throttled registries.
        mirrors: read a registry from a mirror, as Docker's ``registry-mirrors``:
            ``{"docker.io": "127.0.0.1:5000"}``; rows still name the registry asked for.
        factory: a Remote factory, in place of the one made from these options.
        transport: the HTTP layer under auth, retries, limits and the request log
            (:mod:`regdata.testing`'s mock registry, in tests); by default urllib3's.
    """

    def __init__(
        self,
        *,
        credentials: Credentials | None = None,
        cache: Any = "default",
        cache_ttl: float | timedelta | None = None,
        concurrency: int | None = None,
        min_concurrency: int = 1,
        max_concurrency: int | None = None,
        rps: float | None = None,
        quota_floor: int | Literal["auto"] | None = "auto",
        timeout: float | Timeouts | None = None,
        budget: float | None = None,
        insecure: Iterable[str] = (),
        verify: VerifySetting = True,
        cert: CertSetting = None,
        cert_dir: str | None = None,
        certs_d: Sequence[str] | None = None,
        proxies: Proxies | Mapping[str, str | None] | None = None,
        platforms: Sequence[str] | None = None,
        labels_win: bool = False,
        attestations: bool = False,
        progress: bool | Callable[[int, int], None] | None = None,
        retry: RetryPolicy | None = None,
        request_log_size: int | None = None,
        mirrors: dict[str, str] | None = None,
        factory: Factory | None = None,
        transport: HTTPTransport | None = None,
    ) -> None:
        # What a Dask worker needs to build the same Registry (regdata.client.cluster): no credentials.
        self._settings: dict[str, Any] = {
            "cache": cache,
            "cache_ttl": cache_ttl,
            "concurrency": concurrency,
            "min_concurrency": min_concurrency,
            "max_concurrency": max_concurrency,
            "rps": rps,
            "quota_floor": quota_floor,
            "timeout": timeout,
            "budget": budget,
            "insecure": tuple(insecure),
            "verify": verify,
            "platforms": tuple(platforms) if platforms else None,
            "labels_win": labels_win,
            "attestations": attestations,
            "retry": retry,
            "request_log_size": request_log_size,
            "mirrors": dict(mirrors or {}),
        }
        insecure = self._settings["insecure"]
        if concurrency is not None and concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        # A number the user names is a fixed limit; left out, the limiter adapts from 8 up to 32.
        if concurrency is not None and max_concurrency is None:
            max_concurrency = concurrency
            min_concurrency = min(min_concurrency, concurrency)
        if concurrency is None:  # only bounds given: start at 8, or at a lower bound's max
            concurrency = min(DEFAULT_CONCURRENCY, max(max_concurrency or DEFAULT_CONCURRENCY, 1))
        self.concurrency = concurrency
        self.budget = budget
        self.limits = Limits(
            concurrency=concurrency,
            min_concurrency=min_concurrency,
            # Left out, concurrency is at most 8 here: the default ceiling is above it.
            max_concurrency=DEFAULT_MAX_CONCURRENCY if max_concurrency is None else max_concurrency,
            rps=rps,
            quota_floor=quota_floor,
        )
        self.options = ScanOptions(
            platforms=tuple(Platform.parse(p) for p in platforms) if platforms else None,
            labels_win=labels_win,
            attestations=attestations,
            # A factory given brings its own limiter: the pool is the concurrency asked for.  Ours holds
            # the requests per host to the limit, so the pool is sized for the most it may allow.
            concurrency=concurrency if factory is not None else self.limits.max_concurrency,
        )
        self.progress = progress
        self._scans: set[Context] = set()
        self._lock = threading.Lock()
        # The limiters of a factory built here; a factory given (the mock) has none to show.
        self._limiters: Limiters | None = None
        if factory is not None:
            self.factory: Factory = factory
            self.cache: Cache | None = None
            return
        if cache == "default":
            cache = os.environ.get("REGDATA_CACHE", "sqlite://")
        if cache_ttl is None:
            cache_ttl = parse_ttl(os.environ.get("REGDATA_CACHE_TTL", DEFAULT_TTL))
        self.cache = open_cache(cache, ttl=cache_ttl)
        timeouts = (
            timeout
            if isinstance(timeout, Timeouts)
            else (Timeouts() if timeout is None else Timeouts(connect=timeout, read=timeout))
        )
        self.factory = real = RemoteFactory(
            credentials=credentials if credentials is not None else Credentials.default(),
            cache=self.cache,
            log=RequestLog(request_log_size) if request_log_size else RequestLog(),
            timeouts=timeouts,
            retry=retry or RetryPolicy(),
            insecure=frozenset(insecure),
            verify=verify,
            cert=cert,
            cert_dir=cert_dir,
            certs_d=tuple(certs_d) if certs_d is not None else None,
            proxies=(
                Proxies.from_environment()
                if proxies is None
                else proxies
                if isinstance(proxies, Proxies)
                else Proxies.from_mapping(proxies)
            ),
            pool_size=self.limits.max_concurrency,
            mirrors=dict(mirrors or {}),
            limits=self.limits,
            http_transport=transport,
        )
        self._limiters = real.limiters

    def __repr__(self) -> str:
        cache = self.cache.backend if self.cache is not None else None
        return f"Registry(concurrency={self.concurrency}, cache={cache!r})"

    # -- plumbing --------------------------------------------------------------

    def remote(self, registry: str) -> RemoteLike:
        """The Remote for a registry host."""
        remote: RemoteLike = self.factory.remote(registry)
        return remote

    def _context(self) -> Context:
        ctx = Context.with_budget(self.budget)
        with self._lock:
            self._scans.add(ctx)
        return ctx

    def _done(self, ctx: Context) -> None:
        with self._lock:
            self._scans.discard(ctx)

    def cancel(self) -> None:
        """Cancel every scan in flight; they return with the rows done so far."""
        with self._lock:
            scans = list(self._scans)
        for ctx in scans:
            ctx.cancel()

    def _scan(
        self, repo: Repository, refs: list[Reference], history: bool, ctx: Context | None = None
    ) -> ScanResult:
        own = ctx is None
        ctx = self._context() if ctx is None else ctx
        try:
            options = (
                self.options
                if not history
                else dataclasses.replace(self.options, attestations=False, history=True)
            )
            with progress_bar(self.progress, str(repo), len(refs)) as report:
                options = dataclasses.replace(options, progress=report)
                return scan(self.remote(repo.registry), repo, refs, options, ctx)
        finally:
            if own:
                self._done(ctx)

    def _read(
        self, repo: Repository, refs: list[Reference], platform: Platform, ctx: Context
    ) -> list[dict[str, Any]]:
        """The rows of ``refs`` on one platform only, under ``ctx``: what a targeted judgement reads.

        An index's other platforms and attestations are not fetched: each is a pull.
        """
        options = dataclasses.replace(self.options, platforms=(platform,), attestations=False)
        return scan(self.remote(repo.registry), repo, refs, options, ctx).images

    # -- the public API ----------------------------------------------------------

    def tags(self, repository: str | Repository | Reference) -> list[str]:
        """The tags of a repository, as the registry lists them."""
        repo = parse_repository(repository)
        ctx = self._context()
        try:
            return self.remote(repo.registry).tags(repo, ctx)
        finally:
            self._done(ctx)

    def catalog(self, registry: str) -> list[str]:
        """Every repository a registry lists (the ``_catalog`` endpoint; many registries refuse it).

        A list of names (a :class:`~regdata.client.many.Catalog` that knows its registry, so
        ``get_repositories(reg.catalog(host))`` reads them all).
        """
        from regdata.client.many import Catalog

        ctx = self._context()  # the budget and cancel() cover it as they cover a scan
        try:
            result: list[str] = self.factory.remote(registry).catalog(ctx)
            return Catalog(result, registry=canonical_host(registry))
        finally:
            self._done(ctx)

    def tag_details(self, repository: str | Repository | Reference) -> pd.DataFrame:
        """Every tag's digest, size and created time from the one ``tags/list`` answer (one request).

        GCR and Artifact Registry send a ``manifest`` map with it; columns as in
        :data:`regdata.frames.TAG_DETAILS`, newest first.  Other registries
        send no map: each tag is then a row with its name alone (read them with
        :meth:`get_repository`).
        """
        from regdata.client.tag_details import TAG_DETAILS, tag_details_rows

        repo = parse_repository(repository)
        ctx = self._context()
        try:
            pages = self.factory.remote(repo.registry).tag_pages(repo, ctx)
        finally:
            self._done(ctx)
        frame = make_frame(tag_details_rows(repo.registry, repo.repository, pages), TAG_DETAILS)
        return frame.sort_values(
            ["created", "tag", "digest"], ascending=[False, True, True], na_position="last", kind="stable"
        ).reset_index(drop=True)

    def get_repository(self, repository: str | Repository | Reference) -> pd.DataFrame:
        """Every tag of a repository: one row per tag and platform.

        A failure of the whole repository (unknown, denied, unreachable)
        raises; a failure of one tag or platform is an ``error`` in its row.
        """
        repo = parse_repository(repository)
        with _timed():
            # One context for the listing and the scan: the budget and cancel() cover both.
            ctx = self._context()
            try:
                tags = self.remote(repo.registry).tags(repo, ctx)
                refs = [Reference(repo.registry, repo.repository, tag, None) for tag in tags]
                result = self._scan(repo, refs, history=False, ctx=ctx)
            finally:
                self._done(ctx)
        return _sort(make_frame(result.images, IMAGES, IMAGE_CATEGORIES))

    def get_repositories(
        self,
        repositories: Iterable[str | Repository | Reference],
        *,
        registry: str | None = None,
        per_host: int | None = None,
        client: Any = None,
        as_dask: bool = False,
        worker_credentials: str = "send",
    ) -> Any:
        """Every tag of many repositories, read concurrently: one images frame.

        ``repositories``: names, Repository or Reference values, or what
        :meth:`catalog` returns; ``registry`` is the host of names given
        without one.  The repositories of a host are read ``per_host`` at a
        time (16), all under the host's limits; hosts go on side by side.

        The frame is ``get_repository``'s, for all of them: repositories in
        the order given (each once), each one's rows sorted as
        ``get_repository`` sorts them.  A repository that cannot be read
        (unknown, denied, unreachable, an invalid name) is one row with
        ``repository`` set, ``tag`` NA and the ``error``; the rest goes on.
        The budget and :meth:`cancel` cover the whole call; the progress bar
        counts tags.

        ``client``: a ``distributed.Client``: the same work on a Dask
        cluster, the same frame (see :mod:`regdata.client.cluster`; needs
        ``pip install 'regdata[dask]'``).  With it, ``as_dask=True`` returns
        a ``dask.dataframe`` partitioned by repository instead of gathering
        the rows here, and ``worker_credentials`` says how the workers get
        credentials: ``"send"`` (this Registry's, for the hosts of the call,
        sent once to the workers) or ``"own"`` (each worker's own docker config).
        """
        from regdata.client import many

        wanted = many.resolve(repositories, registry)
        if client is not None or as_dask:
            from regdata.client.cluster import read_on_cluster

            return read_on_cluster(
                self, wanted, client, as_dask=as_dask, worker_credentials=worker_credentials
            )
        with _timed():
            ctx = self._context()
            try:
                with progress_bar(self.progress, "tags", 0) as report:
                    parts = many.read_many(self, wanted, ctx, report, per_host)
            finally:
                self._done(ctx)
        return many.assemble(parts)

    def get_image(self, reference: str | Reference) -> pd.DataFrame:
        """The rows of one image: its tag or digest (``latest`` when it names neither)."""
        ref = parse_reference(reference, default_tag=True)
        with _timed():
            result = self._scan(ref.repo, [ref], history=False)
            _raise_whole(result, ref)
        return _sort(make_frame(result.images, IMAGES, IMAGE_CATEGORIES))

    def history(self, reference: str | Reference) -> pd.DataFrame:
        """The build history of one image: one row per history entry, per platform."""
        ref = parse_reference(reference, default_tag=True)
        with _timed():
            result = self._scan(ref.repo, [ref], history=True)
            _raise_whole(result, ref, history=True)
        frame = make_frame(result.history, HISTORY)
        if frame.empty:
            return frame
        return frame.sort_values(["platform", "step"], kind="stable").reset_index(drop=True)

    @property
    def requests(self) -> pd.DataFrame:
        """Every request made so far (a bounded ring), as a frame."""
        return self.factory.log.frame()

    # -- limits and the request summary (regdata.transport.limits, regdata.instrument.summary) ------------

    @property
    def rate_limits(self) -> dict[str, RateLimit]:
        """The latest ``RateLimit-*`` headers per host (``host:port``), for hosts that sent them."""
        return self._limiters.rate_limits() if self._limiters is not None else {}

    @property
    def limiter_log(self) -> pd.DataFrame:
        """Each host limiter's decisions (start, grow, halve, hold), as a frame."""
        return self.factory.log.limiter_frame()

    def summary(self, seed: bool = False) -> pd.DataFrame:
        """Requests, time and bytes by host and kind (Flux's ``tags``/``metadata`` with ``seed``)."""
        from regdata.instrument.summary import summarize

        return summarize(self.requests, seed=seed)

    def close(self) -> None:
        """Close connections and the cache."""
        self.factory.close()
        if self.cache is not None:
            self.cache.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _timed() -> AbstractContextManager[None]:
    """Times a whole read for the Prometheus metrics, when they are enabled."""
    from regdata.instrument import metrics

    return metrics.timed_fetch() if metrics.active() is not None else nullcontext()


def _raise_whole(result: ScanResult, ref: Reference, history: bool = False) -> None:
    """One image whose top manifest failed raises that failure, as a repository failure does.

    So does a history with no step at all when a platform failed: an empty
    frame would say the image has no history.
    """
    rows = result.images
    if len(rows) == 1 and isinstance(rows[0].get("exception"), BaseException):
        raise rows[0]["exception"]
    if history and not result.history:
        failed = [
            cause
            for row in rows
            for cause in (row.get("exception"), row.get("cause"))
            if isinstance(cause, BaseException)
        ]
        if failed:
            raise failed[0]
