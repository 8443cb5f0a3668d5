"""``get_repositories(..., client=...)``: the same call on a Dask cluster, the same frame.

Needs ``pip install 'regdata[dask]'`` (dask and distributed); ``import
regdata`` never imports them.

(Over 500 lines on purpose: the worker half and the caller half of one call
share the plugin, the brake and the shares of each host's limit; split, each
half would reach into the other's private state.)

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
cluster by shares: the workers there when the call starts split N among
them (N // W each, one more for the first N % W), each worker's Registry has
its share as its ``max_concurrency`` per host, and the tasks go to those
workers only (``allow_other_workers=False``), so a worker that joins later,
a dead one's replacement too, adds nothing in flight.  A 429 slows the
whole cluster: the worker that got it sets the host's brake (a
``distributed.Variable``, ``regdata-brake-<host>``, holding the time it
ends: the ``Retry-After``, at least a second), every worker reads it at
most every half second and keeps to half its share until then, on top of
its own limiter halving.  (A ``distributed.Semaphore`` taken per request was
tried first: two scheduler round trips per request made the cluster many
times slower than one process, and a run stalled under load, perhaps in the
profiler deadlock ``_quiet_profiler`` avoids: not pinned down.)

**as_dask.** The frame stays on the workers, a partition per repository;
the call's plugin stays registered, so a partition lost with its worker
can be read again.  :func:`release` unregisters the plugins of every
regdata call on a client's cluster once the frame is no longer needed.

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
import dataclasses
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from regdata.client.many import SCAN_THREADS_MIN, Reader, Wanted, assemble, error_row, repository_rows
from regdata.client.progress import progress_bar
from regdata.client.scan import GRACE_SECONDS, TIMED_OUT
from regdata.context import Context
from regdata.credentials import Credential, Credentials
from regdata.frames import IMAGE_CATEGORIES, IMAGES, make_frame
from regdata.instrument import metrics
from regdata.oci.reference import api_host
from regdata.transport.base import Request, Response, Transport, host_key
from regdata.transport.limits import DEFAULT_CONCURRENCY, LimitTransport
from regdata.transport.log import LogTransport
from regdata.transport.retry import RetryTransport, SystemClock, parse_retry_after

try:
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError:  # without regdata[dask]: read_on_cluster says what to install
    WorkerPlugin = object  # type: ignore[misc,assignment]

__all__ = ["ClusterGate", "read_on_cluster", "release", "require_dask", "shares"]

INSTALL = "get_repositories(client=...) needs dask and distributed: pip install 'regdata[dask]'"
# Settings a cluster cannot carry: they are objects of this process.
_LOCAL_ONLY = ("a Cache or backend object", "a mock factory")
# How long a 429 brakes its host when it names no Retry-After.
BRAKE_SECONDS = 1.0
# How often a request held by a brake looks at its context.
_POLL = 0.05


def require_dask() -> Any:
    """``distributed``, or an ImportError saying what to install."""
    try:
        import dask.dataframe  # noqa: F401  (as_dask needs it; the extra installs both)
        import distributed
    except ImportError as exc:
        raise ImportError(f"{INSTALL} ({exc})") from None
    return distributed


# ---------------------------------------------------------------------------- on a worker


class _Brake:
    """One host's 429 brake on one worker, shared with the cluster through a ``distributed.Variable``.

    The variable (``regdata-brake-<host>``) holds the wall-clock time until
    which the host is braked.  A worker that gets a 429 sets it; every
    worker reads it at most every ``LOOK`` seconds (one scheduler round trip)
    and, until then, lets at most half its share of requests go to the host.
    """

    LOOK = 0.5

    def __init__(self, share: int, variable: Any) -> None:
        self.share = share
        self.variable = variable
        self.until = 0.0
        self.in_flight = 0
        self._next_look = 0.0
        self._looking = False
        self._cond = threading.Condition()

    def _look(self) -> None:
        with self._cond:
            now = time.monotonic()
            if self._looking or now < self._next_look:
                return
            self._looking, self._next_look = True, now + self.LOOK
        try:
            value = self.variable.get(timeout=self.LOOK)
        except Exception:  # never set, or the scheduler slow: no news is no brake
            value = None
        with self._cond:
            self._looking = False
            if value:
                self.until = max(self.until, float(value))

    def enter(self, context: Context) -> None:
        """Wait while braked and half the share is in flight; then count this request in."""
        self._look()
        with self._cond:
            while time.time() < self.until and self.in_flight >= max(1, self.share // 2):
                context.check()
                self._cond.wait(_POLL)
            self.in_flight += 1

    def leave(self) -> None:
        """Count a request out."""
        with self._cond:
            self.in_flight -= 1
            self._cond.notify()

    def signal(self, seconds: float) -> None:
        """A 429: brake the host here at once, and for the whole cluster."""
        until = time.time() + seconds
        with self._cond:
            self.until = max(self.until, until)
        with contextlib.suppress(Exception):  # the local brake holds; the others learn of the next 429
            self.variable.set(until)


class ClusterGate:
    """The transport layer that spreads a host's 429 over the whole cluster.

    The limit itself holds by shares: each worker's Registry may have at most
    its share of N in flight per host (its ``max_concurrency``), and the
    shares add up to N.  This layer, under the worker's own limiter, brakes
    a host for every worker when one of them gets a 429 (:class:`_Brake`).
    """

    def __init__(self, inner: Transport, share: int, client: Any) -> None:
        self.inner = inner
        self.share = share
        self.client = client
        self._brakes: dict[str, _Brake] = {}
        self._lock = threading.Lock()

    def brake(self, host: str) -> _Brake:
        """The brake of ``host`` on this worker."""
        with self._lock:
            brake = self._brakes.get(host)
            if brake is None:
                from distributed import Variable

                variable = Variable(brake_name(host), client=self.client)  # type: ignore[no-untyped-call]
                brake = self._brakes[host] = _Brake(self.share, variable)
            return brake

    def send(self, request: Request) -> Response:
        """Send through the host's brake; a 429 sets it for everyone."""
        brake = self.brake(host_key(request.url))
        brake.enter(request.context)
        try:
            response = self.inner.send(request)
        finally:
            brake.leave()
        if response.status == 429:
            seconds = parse_retry_after(response.headers.get("Retry-After"), time.time())
            brake.signal(max(seconds or 0.0, BRAKE_SECONDS))
        return response


def brake_name(host: str) -> str:
    """The cluster-wide variable of a host's brake (keyed by :func:`~regdata.transport.base.host_key`)."""
    return f"regdata-brake-{host}"


def shares(limit: int, workers: Sequence[str]) -> dict[str, int]:
    """``limit`` split over ``workers`` (sorted): N // W each, one more for the first N % W; none of 0."""
    ordered = sorted(workers)[:limit]
    if not ordered:
        return {}
    base, extra = divmod(limit, len(ordered))
    return {w: base + (1 if i < extra else 0) for i, w in enumerate(ordered)}


def _gate(reg: Reader, share: int, client: Any) -> ClusterGate:
    """Put a ClusterGate into a fresh Registry's transport: retry > limit > gate > log > HTTP."""
    factory: Any = reg.factory
    log = LogTransport(factory.http, factory.log, factory.limiters, observe=metrics.observe_request)
    gate = ClusterGate(log, share, client)
    inner = LimitTransport(gate, factory.limiters)
    factory.base = RetryTransport(inner, policy=factory.retry, clock=factory.clock or SystemClock())
    return gate


@dataclass(eq=False)
class _Call(WorkerPlugin):
    """A call's settings and credentials on the workers, as a worker plugin; no secret in its repr."""

    token: str
    settings: dict[str, Any]
    credentials: dict[str, Credential] | None  # None: each worker's own docker config
    shares: dict[str, int] = field(default_factory=dict)  # worker address: its share of each host's limit
    name: str = ""
    make: Callable[..., Reader] | None = None  # the caller's Registry class, pickled by name
    _registry: Reader | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.name = f"regdata-call-{self.token}"

    def __repr__(self) -> str:
        hosts = sorted(self.credentials or {})
        return f"regdata call {self.token} (credentials for {hosts or 'none sent'})"

    def __getstate__(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "settings": self.settings,
            "credentials": self.credentials,
            "shares": self.shares,
            "make": self.make,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    # The WorkerPlugin protocol: distributed calls these on each worker.
    def setup(self, worker: Any) -> None:
        with _CALLS_LOCK:
            _CALLS[self.token] = self
            _quiet_profiler(worker, stop=True)

    def teardown(self, worker: Any) -> None:
        with _CALLS_LOCK:
            _CALLS.pop(self.token, None)
            if not _CALLS:
                _quiet_profiler(worker, stop=False)
        if self._registry is not None:
            self._registry.close()

    def registry(self) -> Reader:
        """This worker's Registry for the call, made on first use (in a task: Dask's worker context)."""
        with self._lock:
            if self._registry is None:
                from distributed import get_client, get_worker

                share = self.shares.get(get_worker().address)
                if share is None:  # the tasks go only to the workers that have a share
                    raise RuntimeError(f"regdata call {self.token}: this worker has no share of the limits")
                credentials = (
                    Credentials.from_mapping(self.credentials)
                    if self.credentials is not None
                    else Credentials.default()
                )
                settings = dict(self.settings)
                settings["max_concurrency"] = share
                settings["concurrency"] = min(settings["concurrency"] or DEFAULT_CONCURRENCY, share)
                settings["min_concurrency"] = min(settings["min_concurrency"], settings["concurrency"])
                assert self.make is not None, "the caller sends its Registry class"
                reg = self.make(credentials=credentials, **settings)
                # A scan's own threads: enough for the share over the tasks a worker runs at once.
                # A thread per request in flight, per task, made hundreds of threads, and Dask's
                # profiler walks every thread's stack every 10 ms, holding the GIL.
                per_task = max(SCAN_THREADS_MIN, -(-2 * share // max(1, get_worker().state.nthreads)))
                reg.options = dataclasses.replace(reg.options, concurrency=min(per_task, share))
                _gate(reg, share, get_client())
                self._registry = reg
            return self._registry


_CALLS: dict[str, _Call] = {}
_CALLS_LOCK = threading.Lock()
_PAUSED: set[Any] = set()  # the workers whose profiler a call paused


def _quiet_profiler(worker: Any, stop: bool) -> None:
    """Pause (or resume) the worker's statistical profiler while a call runs, on Python before 3.12.

    It calls ``sys._current_frames()`` every 10 ms; on 3.11 that can deadlock
    the whole process when a garbage collection runs inside it (Dask's GC
    diagnosis hooks one) while a thread starts or ends (CPython gh-106883).  A
    scan starts and ends threads all the time: measured, a worker froze within
    minutes, every thread waiting for the GIL.
    """
    if sys.version_info >= (3, 12):
        return
    callback = getattr(worker, "periodic_callbacks", {}).get("profile")
    if callback is None:
        return
    if stop and callback.is_running():
        callback.stop()
        _PAUSED.add(worker)
    elif not stop and worker in _PAUSED:
        _PAUSED.discard(worker)
        callback.start()


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


def release(client: Any) -> list[str]:
    """Unregister the worker plugins (settings, credentials) of every regdata call on ``client``'s cluster.

    What ``as_dask=True`` leaves registered; returns the names unregistered.
    """
    names: list[str] = client.run_on_scheduler(_call_plugins)
    for name in names:
        client.unregister_worker_plugin(name)
    return names


def _call_plugins(dask_scheduler: Any) -> list[str]:
    return sorted(n for n in dask_scheduler.worker_plugins if str(n).startswith("regdata-call-"))


def _settings(reg: Reader) -> dict[str, Any]:
    """The Registry's settings for the workers, what the caller's environment chose made explicit."""
    settings = dict(reg._settings)
    cache = settings["cache"]
    if cache == "default":  # this process's choice, not each worker's environment's
        settings["cache"] = cache = os.environ.get("REGDATA_CACHE", "sqlite://")
    if not (cache is None or isinstance(cache, str)):
        raise ValueError(
            f"a cluster cannot share {_LOCAL_ONLY[0]}: give a cache URL "
            "(memcached://host:port, shared by every worker) or None"
        )
    if reg.cache is not None:
        settings["cache_ttl"] = {"*": reg.cache.ttl, **reg.cache.host_ttl}
    settings["budget"] = None  # the call's deadline goes with each task
    return settings


def _credentials(reg: Reader, wanted: Sequence[Wanted]) -> dict[str, Credential]:
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
    reg: Reader,
    wanted: Sequence[Wanted],
    client: Any,
    *,
    as_dask: bool = False,
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
    if not wanted:  # nothing to send anywhere
        empty = make_frame([], IMAGES, IMAGE_CATEGORIES)
        if as_dask:
            import dask.dataframe as dd

            return dd.from_pandas(empty, npartitions=1)  # type: ignore[no-untyped-call]
        return empty
    token = uuid.uuid4().hex[:16]
    sent = _credentials(reg, wanted) if worker_credentials == "send" else None
    # Each host's limit split over the workers there now; the tasks go to them alone, so a
    # worker that joins later (a dead one's replacement too) adds nothing in flight.
    split = shares(reg.limits.max_concurrency, list(client.ncores()))
    if not split:
        raise RuntimeError("the Dask cluster has no worker")
    for host in sorted({w.repo.registry for w in wanted if w.repo is not None}):
        _unbraked(distributed, client, api_host_of(reg, host))
    call = _Call(token, settings, sent, split, make=type(reg))
    client.register_plugin(call, name=call.name)
    ctx = reg._context()
    deadline = None if reg.budget is None else time.time() + reg.budget
    try:
        futures = [
            client.submit(
                read_task,
                token,
                want,
                deadline,
                key=f"regdata-read-{token}-{want.order}",
                pure=False,
                workers=list(split),
                allow_other_workers=False,
            )
            for want in wanted
        ]
        frames = _wait(client, futures, wanted, ctx, reg.progress, distributed, set(split))
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


def api_host_of(reg: Reader, host: str) -> str:
    """The host that requests for ``host`` go to, as URLs name it (the brake's key)."""
    factory: Any = reg.factory
    return host_key(str(factory.mirrors.get(host) or api_host(host)))


def _unbraked(distributed: Any, client: Any, host: str) -> None:
    """Give the host's brake a value, so workers read it at once (a variable never set makes them wait)."""
    variable = distributed.Variable(brake_name(host), client=client)
    try:
        variable.get(timeout=0.05)
    except Exception:  # never set
        variable.set(0.0)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    full = [f for f in frames if not f.empty]
    if not full:
        return make_frame([], IMAGES, IMAGE_CATEGORIES)
    return pd.concat(full, ignore_index=True)


def _wait(
    client: Any,
    futures: list[Any],
    wanted: Sequence[Wanted],
    ctx: Context,
    progress: bool | Callable[[int, int], None] | None,
    distributed: Any,
    workers: set[str],
) -> list[tuple[Any, pd.DataFrame]]:
    """(future or None, frame) per repository, in order: a failed or unfinished one gets its error row."""
    results: dict[int, pd.DataFrame] = {}
    kept: dict[int, Any] = {}
    pending = {f: w for f, w in zip(futures, wanted, strict=True)}
    tags = 0
    stop_at: float | None = None
    next_look, gone = time.monotonic() + 2.0, False
    with progress_bar(progress, "tags", 0) as report:
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
            if now >= next_look:  # the tasks run only where the shares are: none left, none will run
                next_look = now + 2.0
                gone = not workers & set(client.ncores())
            if stop_at is None and (
                gone or ctx.cancelled or (ctx.deadline is not None and now >= ctx.deadline)
            ):
                # The tasks mark their own rows timed out at the deadline; wait a little for them.
                stop_at = now + (GRACE_SECONDS + 1.0 if not (ctx.cancelled or gone) else 0.0)
            if stop_at is not None and now >= stop_at and pending:
                reason = (
                    "cancelled"
                    if ctx.cancelled
                    else TIMED_OUT
                    if not gone
                    else "the Dask workers of this call are gone"
                )
                client.cancel(list(pending))
                for want in pending.values():
                    results[want.order] = _error_frame(want, reason)
                pending.clear()
    return [(kept.get(w.order), results[w.order]) for w in wanted]


def _error_frame(want: Wanted, error: str) -> pd.DataFrame:
    return assemble([(want.order, [error_row(want, error)])])
