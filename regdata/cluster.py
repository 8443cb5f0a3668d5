"""``get_repositories(..., client=...)``: the same call on a Dask cluster, the same frame.

Needs ``pip install 'regdata[dask]'`` (dask and distributed); ``import
regdata`` never imports them.

**Tasks.** One task per repository, keyed ``regdata-read-<call>-<n>`` (no
repository name, no credential in a key).  A task reads its repository as
one process would (its tag list, then a scan of its tags: ``many``) and
returns that repository's whole frame at once, so a worker that dies in the
middle loses nothing: Dask runs the task again elsewhere, and the frame
holds each row once.  The caller puts the frames together in the order
given: the frame one process would have made.

**Settings and credentials.** The workers build their own Registry from the
caller's settings (cache URL, TTL, limits, timeouts, retry, platforms,
mirrors...; a CA bundle path or a ``sqlite://`` file is read on each worker's
machine).  Settings and credentials travel together, once per call, as a
worker plugin (``Client.register_plugin``), not in any task: the tasks carry
only the call's token, the repository and the deadline, so no credential is
in a task key, a task graph, the dashboard or a log, and every ``repr`` shows
``<set>`` for a secret.  The scheduler keeps the plugin (so a worker that
joins later, or replaces a dead one, gets it too) until the call ends.  With
``worker_credentials="send"`` (the default) the plugin holds the caller's
credential for each host of the call (a credential helper runs on the
caller, once per host); with ``"own"`` it holds none, and each worker reads
its own docker config.  Over a comm that is not TLS (``tcp://``, Dask's
default) a sent credential crosses the network in clear, like everything
else Dask sends: use ``tls://`` (``distributed.security.Security``) between
machines, or ``"own"``.

**Limits across the cluster.** Each host's limit N (the Registry's
``max_concurrency``: 32, or the ``concurrency`` given) holds for the whole
cluster: every request to a host takes a lease of a ``distributed.Semaphore``
named for the host and N, under each worker's own adaptive limiter, so the
host never sees more than N requests in flight from all the workers
together.  A 429 halves the host's traffic for the whole cluster: the worker
that got it takes half the leases out of circulation for the ``Retry-After``
(at least a second).  A lease taken by a worker that dies is freed by the
scheduler after ``distributed.scheduler.locks.lease-timeout`` (30 s).

**Cache.** ``cache="memcached://..."`` is shared by every worker: a second
call within the TTL makes no request.  A ``sqlite://`` cache is each worker
machine's own file; ``memory://`` each worker's own.

**Budget and cancel.** The budget is a deadline on the wall clock, carried
by each task (the machines' clocks are taken to agree); ``cancel()`` stops
waiting, cancels the tasks not started, and gives their repositories a row
saying ``cancelled``; a task already running finishes on its worker.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from .context import Context
from .credentials import Credential, Credentials
from .frames import IMAGE_CATEGORIES, IMAGES, make_frame
from .limits import LimitTransport
from .many import Wanted, assemble, error_row, repository_rows
from .scan import GRACE_SECONDS, TIMED_OUT
from .transport.base import Request, Response, Transport
from .transport.log import LogTransport, host_of
from .transport.retry import RetryTransport, SystemClock, parse_retry_after

try:
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError:  # without regdata[dask]: read_on_cluster says what to install
    WorkerPlugin = object  # type: ignore[misc,assignment]

if TYPE_CHECKING:
    from .registry import Registry

__all__ = ["ClusterGate", "read_on_cluster", "require_dask"]

INSTALL = "get_repositories(client=...) needs dask and distributed: pip install 'regdata[dask]'"
# Settings a cluster cannot carry: they are objects of this process.
_LOCAL_ONLY = ("a Cache or backend object", "a mock factory")
# How long a 429 keeps half a host's leases out of circulation when it names no Retry-After.
BRAKE_SECONDS = 1.0
# How long a request waits on the scheduler for a lease before it looks at its context again.
_LEASE_POLL = 0.5


def require_dask() -> Any:
    """``distributed``, or an ImportError saying what to install."""
    try:
        import dask.dataframe  # noqa: F401  (as_dask needs it; the extra installs both)
        import distributed
    except ImportError as exc:
        raise ImportError(f"{INSTALL} ({exc})") from None
    return distributed


# ---------------------------------------------------------------------------- on a worker


class _Leases:
    """One worker's leases of one host's semaphore, handed from request to request.

    A lease taken from the scheduler for every request costs two round trips
    to it per request: measured, that made a 2-worker cluster slower than one
    process, many times over.  So a request that ends hands its lease to one
    waiting here, with no round trip, and gives it back to the scheduler
    when none waits, or every ``HANDOFFS``-th time, so the other workers get
    their turn.  A request holds a lease while on the wire, so the host
    never has more requests in flight than leases are out: N, cluster-wide.
    """

    HANDOFFS = 16

    def __init__(self, sem: Any) -> None:
        self.sem = sem
        self.free = 0  # held by this worker, in use by no request
        self.waiting = 0
        self.asking = False  # one thread at a time asks the scheduler
        self.handoffs = 0
        self._cond = threading.Condition()

    def take(self, context: Context) -> None:
        """A lease for one request: a free one here, else one from the scheduler."""
        with self._cond:
            self.waiting += 1
            try:
                while True:
                    if self.free:
                        self.free -= 1
                        return
                    if not self.asking:
                        self.asking = True
                        self._cond.release()
                        try:
                            got = self.sem.acquire(timeout=_LEASE_POLL)
                        finally:
                            self._cond.acquire()
                            self.asking = False
                            self._cond.notify_all()
                        if got:
                            return
                    else:
                        self._cond.wait(_LEASE_POLL)
                    context.check()
            finally:
                self.waiting -= 1

    def give(self) -> None:
        """A request's lease back: to a request waiting here, or to the scheduler."""
        with self._cond:
            self.handoffs += 1
            if self.waiting > (1 if self.asking else 0) and self.handoffs % self.HANDOFFS:
                self.free += 1
                self._cond.notify()
                return
        self.sem.release()

    def drain(self) -> None:
        """Give back what no request uses."""
        with self._cond:
            spare, self.free = self.free, 0
        for _ in range(spare):
            self.sem.release()


class ClusterGate:
    """The transport layer that holds a host's requests in flight to N across the cluster.

    Each attempt holds a lease of the host's ``distributed.Semaphore``
    (``regdata-limit-<host>-<N>``) for as long as it is on the wire, handed
    on between this worker's requests (:class:`_Leases`).  It sits under the
    worker's own limiter, so only requests that limiter let through wait here.
    """

    def __init__(self, inner: Transport, leases: int, worker: Any = None) -> None:
        self.inner = inner
        self.leases = leases
        if worker is None:
            from distributed import get_worker

            worker = get_worker()
        # Bound now: the scan's threads, where requests go from, do not carry Dask's worker context.
        self._scheduler, self._loop = worker.scheduler, worker.loop
        self._semaphores: dict[str, Any] = {}
        self._pools: dict[str, _Leases] = {}
        self._braking: set[str] = set()
        self._lock = threading.Lock()

    def semaphore(self, host: str) -> Any:
        """The cluster-wide semaphore of ``host``."""
        with self._lock:
            sem = self._semaphores.get(host)
            if sem is None:
                from distributed import Semaphore

                sem = Semaphore(  # type: ignore[no-untyped-call]
                    max_leases=self.leases, name=f"regdata-limit-{host}-{self.leases}",
                    scheduler_rpc=self._scheduler, loop=self._loop)
                self._semaphores[host] = sem
            return sem

    def _leases(self, host: str) -> _Leases:
        sem = self.semaphore(host)
        with self._lock:
            pool = self._pools.get(host)
            if pool is None:
                pool = self._pools[host] = _Leases(sem)
            return pool

    def close(self) -> None:
        """Give back spare leases and stop refreshing; the semaphores stay, for other workers and calls."""
        with self._lock:
            semaphores = list(self._semaphores.values())
            pools = list(self._pools.values())
            self._semaphores.clear()
            self._pools.clear()
        for pool in pools:
            with contextlib.suppress(Exception):  # a worker going away: its leases expire anyway
                pool.drain()
        for sem in semaphores:
            callback = getattr(sem, "refresh_callback", None)
            if callback is not None:
                callback.stop()

    def send(self, request: Request) -> Response:
        """Hold a lease of the host while sending; a 429 brakes the host for everyone."""
        host = host_of(request.url)
        leases = self._leases(host)
        leases.take(request.context)
        try:
            response = self.inner.send(request)
        finally:
            leases.give()
        if response.status == 429:
            seconds = parse_retry_after(response.headers.get("Retry-After"), time.time())
            self._brake(host, max(seconds or 0.0, BRAKE_SECONDS))
        return response

    def _brake(self, host: str, seconds: float) -> None:
        with self._lock:
            if host in self._braking:
                return  # one brake at a time per host from this worker
            self._braking.add(host)
        threading.Thread(target=self._hold, args=(host, seconds), daemon=True,
                         name=f"regdata-brake-{host}").start()

    def _hold(self, host: str, seconds: float) -> None:
        """Hold half the host's leases (as they come free) for ``seconds``, then give them back."""
        sem = self.semaphore(host)
        held = 0
        end = time.monotonic() + seconds
        try:
            while held < self.leases // 2 and time.monotonic() < end:
                if sem.acquire(timeout=min(_LEASE_POLL, max(end - time.monotonic(), 0.01))):
                    held += 1
            time.sleep(max(0.0, end - time.monotonic()))
        finally:
            for _ in range(held):
                sem.release()
            with self._lock:
                self._braking.discard(host)


def _gate(reg: Registry) -> ClusterGate:
    """Put a ClusterGate into a fresh Registry's transport: retry > limit > gate > log > HTTP."""
    factory: Any = reg.factory
    gate = ClusterGate(LogTransport(factory.http, factory.log, factory.limiters), reg.limits.max_concurrency)
    inner = LimitTransport(gate, factory.limiters)
    factory.base = RetryTransport(inner, policy=factory.retry, clock=factory.clock or SystemClock())
    return gate


@dataclass(eq=False)
class _Call(WorkerPlugin):
    """A call's settings and credentials on the workers, as a worker plugin; no secret in its repr."""

    token: str
    settings: dict[str, Any]
    credentials: dict[str, Credential] | None  # None: each worker's own docker config
    name: str = ""
    _registry: Registry | None = field(default=None, repr=False)
    _gate: ClusterGate | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.name = f"regdata-call-{self.token}"

    def __repr__(self) -> str:
        hosts = sorted(self.credentials or {})
        return f"regdata call {self.token} (credentials for {hosts or 'none sent'})"

    def __getstate__(self) -> dict[str, Any]:
        return {"token": self.token, "settings": self.settings, "credentials": self.credentials}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    # The WorkerPlugin protocol: distributed calls these on each worker.
    def setup(self, worker: Any) -> None:
        with _CALLS_LOCK:
            _CALLS[self.token] = self

    def teardown(self, worker: Any) -> None:
        with _CALLS_LOCK:
            _CALLS.pop(self.token, None)
        if self._gate is not None:
            self._gate.close()
        if self._registry is not None:
            self._registry.close()

    def registry(self) -> Registry:
        """This worker's Registry for the call, made on first use."""
        with self._lock:
            if self._registry is None:
                from .registry import Registry

                credentials = (Credentials.from_mapping(self.credentials) if self.credentials is not None
                               else Credentials.default())
                reg = Registry(credentials=credentials, **self.settings)
                self._gate = _gate(reg)
                self._registry = reg
            return self._registry


_CALLS: dict[str, _Call] = {}
_CALLS_LOCK = threading.Lock()


def read_task(token: str, want: Wanted, deadline: float | None) -> pd.DataFrame:
    """A task: one repository's frame, on a worker that has the call's plugin."""
    with _CALLS_LOCK:
        call = _CALLS.get(token)
    if call is None:
        raise RuntimeError(f"regdata call {token}: this worker has not got the call's settings")
    budget = None if deadline is None else deadline - time.time()
    ctx = Context.with_budget(budget)
    return assemble([(want.order, repository_rows(call.registry(), want, ctx))])


# ---------------------------------------------------------------------------- on the caller


def _settings(reg: Registry) -> dict[str, Any]:
    """The Registry's settings for the workers, what the caller's environment chose made explicit."""
    settings = dict(reg._settings)
    cache = settings["cache"]
    if cache == "default":  # this process's choice, not each worker's environment's
        settings["cache"] = cache = os.environ.get("REGDATA_CACHE", "sqlite://")
    if not (cache is None or isinstance(cache, str)):
        raise ValueError(f"a cluster cannot share {_LOCAL_ONLY[0]}: give a cache URL "
                         "(memcached://host:port, shared by every worker) or None")
    if reg.cache is not None:
        settings["cache_ttl"] = {"*": reg.cache.ttl, **reg.cache.host_ttl}
    settings["budget"] = None  # the call's deadline goes with each task
    return settings


def _credentials(reg: Registry, wanted: Sequence[Wanted]) -> dict[str, Credential]:
    """The caller's credential for each host the call reads (and its mirror), anonymous ones left out."""
    factory: Any = reg.factory
    hosts = {w.repo.registry for w in wanted if w.repo is not None}
    hosts |= {factory.mirrors[h] for h in hosts if h in factory.mirrors}
    found = {}
    for host in sorted(hosts):
        credential = factory.credentials.for_host(host)
        if credential:
            found[host] = credential
    return found


def read_on_cluster(
    reg: Registry, wanted: Sequence[Wanted], client: Any, *, as_dask: bool = False,
    worker_credentials: str = "send",
) -> Any:
    """Read ``wanted`` on ``client``'s cluster: the frame (or dask dataframe) of ``get_repositories``."""
    distributed = require_dask()
    if client is None:
        client = distributed.get_client()  # as_dask without a client: the default one
    if worker_credentials not in ("send", "own"):
        raise ValueError(f"worker_credentials is 'send' or 'own', not {worker_credentials!r}")
    if not hasattr(reg.factory, "http"):
        raise ValueError(f"a cluster cannot use {_LOCAL_ONLY[1]}: give the workers a real Registry")
    settings = _settings(reg)
    token = uuid.uuid4().hex[:16]
    sent = _credentials(reg, wanted) if worker_credentials == "send" else None
    call = _Call(token, settings, sent)
    client.register_plugin(call, name=call.name)
    ctx = reg._context()
    deadline = None if reg.budget is None else time.time() + reg.budget
    try:
        futures = [client.submit(read_task, token, want, deadline, key=f"regdata-read-{token}-{want.order}",
                                 pure=False) for want in wanted]
        frames = _wait(client, futures, wanted, ctx, reg.progress, distributed)
        if as_dask:
            import dask
            import dask.dataframe as dd

            parts = [f if f is not None else client.scatter(frame) for f, frame in frames]
            meta = make_frame([], IMAGES, IMAGE_CATEGORIES)
            # Dask would make object columns strings: labels and annotations are dicts.
            with dask.config.set({"dataframe.convert-string": False}):
                return dd.from_delayed(parts, meta=meta, verify_meta=False)
        gathered = [frame for _, frame in frames]
        return _concat(gathered)
    finally:
        reg._done(ctx)
        if not as_dask:
            client.unregister_worker_plugin(call.name)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    full = [f for f in frames if not f.empty]
    if not full:
        return make_frame([], IMAGES, IMAGE_CATEGORIES)
    return pd.concat(full, ignore_index=True)


def _wait(
    client: Any, futures: list[Any], wanted: Sequence[Wanted], ctx: Context,
    progress: bool | Callable[[int, int], None] | None, distributed: Any,
) -> list[tuple[Any, pd.DataFrame]]:
    """(future or None, frame) per repository, in order: a failed or unfinished one gets its error row."""
    from .registry import _progress

    results: dict[int, pd.DataFrame] = {}
    kept: dict[int, Any] = {}
    pending = {f: w for f, w in zip(futures, wanted, strict=True)}
    tags = 0
    stop_at: float | None = None
    with _progress(progress, "tags", 0) as report:
        while pending:
            with contextlib.suppress(TimeoutError):
                distributed.wait(list(pending), timeout=0.1, return_when="FIRST_COMPLETED")
            done = [f for f in pending if f.done()]
            ok = [f for f in done if f.status == "finished"]
            for future, frame in zip(ok, client.gather(ok), strict=True):
                want = pending.pop(future)
                results[want.order], kept[want.order] = frame, future
                tags += int(frame["tag"].nunique())
            for future in done:
                if future in pending:  # an error: the task itself failed (a worker killed too often)
                    want = pending.pop(future)
                    exc = future.exception()
                    results[want.order] = _error_frame(want, f"{type(exc).__name__}: {exc}")
            if report is not None and done:
                finished = len(results)
                estimate = tags + (tags // max(finished, 1)) * len(pending)
                report(tags, max(estimate, tags))
            now = time.monotonic()
            if stop_at is None and (ctx.cancelled or (ctx.deadline is not None and now >= ctx.deadline)):
                # The tasks mark their own rows timed out at the deadline; wait a little for them.
                stop_at = now + (GRACE_SECONDS + 1.0 if not ctx.cancelled else 0.0)
            if stop_at is not None and now >= stop_at and pending:
                reason = "cancelled" if ctx.cancelled else TIMED_OUT
                client.cancel(list(pending))
                for want in pending.values():
                    results[want.order] = _error_frame(want, reason)
                pending.clear()
    return [(kept.get(w.order), results[w.order]) for w in wanted]


def _error_frame(want: Wanted, error: str) -> pd.DataFrame:
    return assemble([(want.order, [error_row(want, error)])])
