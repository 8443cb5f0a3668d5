"""A scan: the tags of one repository read concurrently, each failure kept in its own row.

A tag's top manifest is fetched first; an index then fans out into one task
per platform.  Manifests and configs are fetched once per digest in a scan,
however many tags share them.  Every task checks the scan's context, so a
cancelled or timed-out scan sends nothing more, and the tasks it did not
finish come back as rows marked ``cancelled`` or ``timed out``.

The rows come back in the order of the refs given (then of the platforms in
an index), whatever order the requests completed in, so a scan's result does
not depend on timing.  ``concurrency`` is the number of worker threads; the
requests in flight per host are held by the host's limiter
(:mod:`regdata.transport.limits`), so the pool is sized for its maximum.

(A little over 500 lines on purpose: the tasks, the queue that runs them and
the rows they leave share one job's state; the rows themselves are built in
``rows.py``.)
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, TypeVar

from regdata.client.rows import error_row, history_rows, image_row, schema1_row
from regdata.context import Context
from regdata.errors import BudgetExceeded, Cancelled, ContentError
from regdata.oci.fetched import FetchedManifest
from regdata.oci.manifest import (
    Descriptor,
    ImageConfig,
    ImageManifest,
    Index,
    Platform,
    Schema1Manifest,
)
from regdata.oci.reference import Reference, Repository
from regdata.transport.limits import QuotaFloorReached

__all__ = ["RemoteLike", "ScanOptions", "ScanResult", "scan"]

T = TypeVar("T")

TIMED_OUT = "timed out: the scan's time budget ran out"
# Past the deadline, tasks stop within a poll or a capped read; this much later the rest is abandoned.
GRACE_SECONDS = 2.0
# Sort keys: (position of the ref, position of the platform in its index); a tag's own row is 0.
Key = tuple[int, int]


class RemoteLike(Protocol):
    """What a scan and a Registry need of a Remote: the real one, the cached one and the mock provide it.

    ``known_manifest`` and ``known_config`` say what the process holds
    already, or None, with the cache hits to log appended to ``hits`` (see
    :meth:`regdata.cache.remote.CachedRemote.known_manifest`); a remote that
    holds nothing returns None.
    """

    def tags(self, repo: Repository, context: Context | None = None) -> list[str]: ...

    def tag_pages(self, repo: Repository, context: Context | None = None) -> list[dict[str, Any]]: ...

    def catalog(self, context: Context | None = None) -> list[str]: ...

    def manifest(self, ref: Reference, context: Context | None = None) -> FetchedManifest: ...

    def blob(self, repo: Repository, digest: str, context: Context | None = None) -> bytes: ...

    def config(self, repo: Repository, digest: str, context: Context | None = None) -> ImageConfig: ...

    def known_manifest(
        self, ref: Reference, hits: list[Callable[[], None]] | None = None
    ) -> FetchedManifest | None: ...

    def known_config(
        self, repo: Repository, digest: str, hits: list[Callable[[], None]] | None = None
    ) -> ImageConfig | None: ...

    def cancel(self) -> None: ...


@dataclass(frozen=True)
class ScanOptions:
    """What a scan keeps."""

    platforms: tuple[Platform, ...] | None = None
    labels_win: bool = False
    attestations: bool = False
    history: bool = False
    concurrency: int = 8
    # An image's platforms are a few dozen at most; an index listing more is not read (its tag
    # gets an error row): a 4 MiB index could otherwise fan out into 50,000 requests.
    max_index_entries: int = 256
    # Called as progress(done, total) as tasks finish; total grows as indexes fan out.
    progress: Callable[[int, int], None] | None = None

    def keeps(self, platform: Platform | None) -> bool:
        """True when no filter is set or ``platform`` matches one of it."""
        if self.platforms is None:
            return True
        return platform is not None and any(platform.matches(p) for p in self.platforms)


@dataclass
class ScanResult:
    """The rows of a scan: images, and history when asked for."""

    images: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)


class _Memo:
    """Compute each key once; concurrent askers wait for the first.

    A lock per key in flight, not a Future: a scan asks for hundreds of
    keys, most of them once, and a Future builds a Condition each time.
    """

    def __init__(self) -> None:
        self._done: dict[str, tuple[bool, Any]] = {}  # key: (ok, value or exception)
        self._running: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: str, compute: Callable[[], T]) -> T:
        while True:
            with self._lock:
                outcome = self._done.get(key)
                running = self._running.get(key) if outcome is None else None
                if outcome is None and running is None:
                    running = self._running[key] = threading.Lock()
                    running.acquire()
                    break
            if running is not None:
                with running:  # the owner releases it when done; then look again
                    continue
            assert outcome is not None
            ok, value = outcome
            if ok:
                result: T = value
                return result
            raise value
        try:
            value = compute()
        except BaseException as exc:
            with self._lock:
                # A failure is remembered for the scan, but not a cancellation: it must not stick.
                if not isinstance(exc, Cancelled):
                    self._done[key] = (False, exc)
                del self._running[key]
            running.release()
            raise
        with self._lock:
            self._done[key] = (True, value)
            del self._running[key]
        running.release()
        return value


def describe(exc: BaseException) -> str:
    """The text of an ``error`` cell."""
    if isinstance(exc, BudgetExceeded):
        return TIMED_OUT
    if isinstance(exc, QuotaFloorReached):
        return f"stopped: {exc}"
    if isinstance(exc, Cancelled):
        return "cancelled"
    # A RegdataError, or a bug of ours: either way one row, never a lost scan.
    return f"{type(exc).__name__}: {exc}"


class _Scan:
    def __init__(self, remote: RemoteLike, repo: Repository, options: ScanOptions, ctx: Context) -> None:
        self.remote = remote
        self.repo = repo
        self.options = options
        self.ctx = ctx
        self.memo = _Memo()
        # The cache hits of the local run under way (only the scan's own thread runs them): logged
        # when the task is answered whole, dropped when it needs I/O and goes to a worker.
        self.local_hits: list[Callable[[], None]] = []
        self._rows: list[tuple[Key, int, dict[str, Any], list[dict[str, Any]] | None]] = []
        self._closed = False
        self._lock = threading.Lock()

    def _emit(self, key: Key, row: dict[str, Any], history: list[dict[str, Any]] | None = None) -> None:
        with self._lock:
            if not self._closed:
                self._rows.append((key, len(self._rows), row, history))

    def close(self, unfinished: Iterable[tuple[Key, dict[str, Any]]]) -> None:
        """The rows of the tasks abandoned; a task still running emits nothing after them."""
        with self._lock:
            for key, row in unfinished:
                self._rows.append((key, len(self._rows), row, None))
            self._closed = True

    def result(self) -> ScanResult:
        """The rows emitted so far, in ref order (then platform order), not completion order."""
        with self._lock:
            rows = sorted(self._rows, key=lambda entry: (entry[0], entry[1]))
        out = ScanResult()
        for _, _, row, history in rows:
            out.images.append(row)
            if history:
                out.history.extend(history)
        return out

    # ``local``: answer from what this process holds, or raise _NeedsIO (see scan()).

    def _config(self, digest: str, local: bool) -> ImageConfig:
        if local:
            config: ImageConfig = _known(self.remote.known_config(self.repo, digest, self.local_hits))
            return config
        return self.memo.get(f"config:{digest}", lambda: self.remote.config(self.repo, digest, self.ctx))

    def _manifest(self, ref: Reference, local: bool) -> FetchedManifest:
        if local:
            fetched: FetchedManifest = _known(self.remote.known_manifest(ref, self.local_hits))
            return fetched
        if ref.digest is None:  # a tag: not shared, and may move; its digest's content is
            return self.remote.manifest(ref, self.ctx)
        return self.memo.get(f"manifest:{ref.digest}", lambda: self.remote.manifest(ref, self.ctx))

    # -- tasks ----------------------------------------------------------------

    def tag_task(self, index: int, ref: Reference, local: bool = False) -> list[_Task]:
        """Fetch a tag's top manifest; return the platform tasks it fans out into."""
        tag = ref.tag
        key = (index, 0)
        try:
            self.ctx.check()
            top = self._manifest(ref, local)
        except Exception as exc:
            row = error_row(ref, tag, describe(exc))
            row["exception"] = exc  # not a column: lets get_image raise what went wrong
            self._emit(key, row)
            return []
        manifest = top.manifest
        if isinstance(manifest, Index) and len(manifest.manifests) > self.options.max_index_entries:
            self._emit(
                key,
                error_row(
                    ref,
                    tag,
                    f"index lists {len(manifest.manifests)} manifests, over the "
                    f"{self.options.max_index_entries} a scan reads of one index",
                    digest=top.digest,
                    media_type=top.media_type,
                    kind="index",
                ),
            )
            return []
        if isinstance(manifest, Index):
            tasks: list[_Task] = []
            for position, descriptor in enumerate(manifest.manifests, start=1):
                sub = (index, position)
                if descriptor.is_attestation:
                    if self.options.attestations:
                        self._emit(sub, self._attestation_row(ref, tag, top, descriptor))
                    continue
                if descriptor.platform is not None and not self.options.keeps(descriptor.platform):
                    continue
                tasks.append(self._platform_task(sub, ref, tag, top, descriptor))
            if not tasks and not manifest.manifests:
                self._emit(
                    key,
                    error_row(
                        ref,
                        tag,
                        "index lists no manifests",
                        digest=top.digest,
                        media_type=top.media_type,
                        kind="index",
                    ),
                )
            return tasks
        self._single(key, ref, tag, top, local)
        return []

    def _platform_task(
        self, key: Key, ref: Reference, tag: str | None, top: FetchedManifest, descriptor: Descriptor
    ) -> _Task:
        def failed(reason: str) -> dict[str, Any]:
            return error_row(
                ref,
                tag,
                reason,
                digest=top.digest,
                media_type=top.media_type,
                kind="index",
                platform=descriptor.platform,
                manifest_digest=descriptor.digest,
            )

        def run(local: bool = False) -> None:
            try:
                self.ctx.check()
                child_ref = Reference(ref.registry, ref.repository, None, descriptor.digest)
                child = self._manifest(child_ref, local)
                if not isinstance(child.manifest, ImageManifest):
                    raise ContentError(f"index entry {descriptor.digest} is not an image manifest")
                self._image(key, ref, tag, top, child, descriptor, "index", local)
            except Exception as exc:
                self._emit(key, _with_cause(failed(describe(exc)), exc))

        return _Task(key, run, failed)

    def _single(self, key: Key, ref: Reference, tag: str | None, top: FetchedManifest, local: bool) -> None:
        manifest = top.manifest
        try:
            if isinstance(manifest, Schema1Manifest):
                row = schema1_row(ref, tag, top.digest, manifest, self.options.labels_win)
                if self._kept(row):
                    history = (
                        history_rows(ref, tag, row.get("platform"), manifest.config())
                        if self.options.history
                        else None
                    )
                    self._emit(key, row, history)
                return
            assert isinstance(manifest, ImageManifest)
            self._image(key, ref, tag, top, top, None, "image", local)
        except Exception as exc:
            self._emit(
                key,
                _with_cause(
                    error_row(
                        ref,
                        tag,
                        describe(exc),
                        digest=top.digest,
                        media_type=top.media_type,
                        manifest_digest=top.digest,
                    ),
                    exc,
                ),
            )

    def _image(
        self,
        key: Key,
        ref: Reference,
        tag: str | None,
        top: FetchedManifest,
        child: FetchedManifest,
        descriptor: Descriptor | None,
        kind: str,
        local: bool,
    ) -> None:
        manifest = child.manifest
        assert isinstance(manifest, ImageManifest)
        config, failed = None, None
        if manifest.is_artifact:
            kind = "artifact"
        else:
            try:
                config = self._config(manifest.config.digest, local)
            except Exception as exc:
                failed = exc
        row = image_row(
            ref,
            tag,
            top.digest,
            top.media_type,
            kind,
            child.digest,
            manifest,
            config,
            descriptor,
            self.options.labels_win,
        )
        if failed is not None:  # the manifest's row, its config's failure in it
            row["error"] = describe(failed)
            row["cause"] = failed
            row["size"] = row["layers"] = None
            self._emit(key, row)
            return
        if not self._kept(row):  # a platform filter keeps no artifact: it has no platform
            return
        history = None
        if self.options.history and config is not None:
            history = history_rows(ref, tag, row.get("platform"), config)
        self._emit(key, row, history)

    def _kept(self, row: dict[str, Any]) -> bool:
        if self.options.platforms is None:
            return True
        if not (row.get("os") and row.get("architecture")):  # an artifact: no platform to keep
            return False
        # From the row's fields, not its text: a variant may hold a "/" that text would split.
        return self.options.keeps(Platform(row["os"], row["architecture"], row.get("variant")))

    def _attestation_row(
        self, ref: Reference, tag: str | None, top: FetchedManifest, descriptor: Descriptor
    ) -> dict[str, Any]:
        row = error_row(
            ref,
            tag,
            "",
            digest=top.digest,
            media_type=top.media_type,
            kind="artifact",
            manifest_digest=descriptor.digest,
        )
        row.update(
            error=None,
            size=None,
            artifact_type="attestation-manifest",
            annotations=dict(descriptor.annotations),
        )
        return row


@dataclass(frozen=True, eq=False)
class _Task:
    """A unit of work of a scan, with the row that stands for it if it never finishes.

    ``run()`` does it; ``run(local=True)`` does it from what this process
    holds, or raises _NeedsIO having emitted nothing.
    """

    key: Key
    run: Callable[..., Any]
    failed: Callable[[str], dict[str, Any]]


class _NeedsIO(BaseException):
    """A local run found something missing from this process's memory.

    A BaseException: a signal, not an error, that no ``except Exception`` of a task may catch.
    """


def _with_cause(row: dict[str, Any], exc: BaseException) -> dict[str, Any]:
    """``row`` keeping ``exc`` (not a column): history() raises it when no platform had a history."""
    row["cause"] = exc
    return row


def _known(value: T | None) -> T:
    if value is None:
        raise _NeedsIO
    return value


class _Workers:
    """Threads that run a scan's tasks, started as the work needs them, at most ``size``.

    Lighter than a ThreadPoolExecutor: no Future (and its Condition) per
    task.  Each finished task comes back on ``done`` as (task, result,
    exception); ``stop()`` drops the tasks not yet started.
    """

    def __init__(self, size: int, done: queue.SimpleQueue[tuple[_Task, Any, BaseException | None]]) -> None:
        self._size = max(1, size)
        self._done = done
        self._todo: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._threads = 0
        self._idle = 0
        self._stopped = False
        self._lock = threading.Lock()

    def submit(self, task: _Task) -> None:
        self._todo.put(task)
        with self._lock:
            if self._idle > 0:  # a thread waiting for work takes it (ThreadPoolExecutor's rule)
                self._idle -= 1
                return
            if self._threads >= self._size:
                return
            self._threads += 1
        threading.Thread(target=self._work, name=f"regdata-scan-{self._threads}", daemon=True).start()

    def _work(self) -> None:
        while True:
            task = self._todo.get()
            if task is None or self._stopped:
                return
            try:
                result, error = task.run(), None
            except BaseException as exc:  # handed to the scan's loop, which raises it
                result, error = None, exc
            self._done.put((task, result, error))
            with self._lock:
                self._idle += 1

    def stop(self) -> None:
        """Start nothing more; each thread ends when its task does (or at once when idle)."""
        with self._lock:
            self._stopped = True
            threads = self._threads
        for _ in range(threads):
            self._todo.put(None)


def scan(
    remote: RemoteLike,
    repo: Repository,
    refs: Iterable[Reference],
    options: ScanOptions,
    ctx: Context,
) -> ScanResult:
    """Read ``refs`` (tags or digests of ``repo``) concurrently into rows.

    Returns when every ref has its rows, or when the context is cancelled or
    its budget runs out: then the tasks stop at their next check (a request
    in flight is cut at the deadline by its read timeout), and a task still
    running ``GRACE_SECONDS`` later is abandoned.  Each unfinished task gets
    a row saying ``cancelled`` or ``timed out``.
    """
    job = _Scan(remote, repo, options, ctx)
    pending: set[_Task] = set()
    # Finished tasks come back through a queue, O(1) each: waiting on every pending
    # one at each completion is O(n^2) over a scan, all of it on the GIL.
    completed: queue.SimpleQueue[tuple[_Task, Any, BaseException | None]] = queue.SimpleQueue()
    workers = _Workers(options.concurrency, completed)

    total = finished = 0

    def submit(task: _Task) -> None:
        # What this process holds already (a warm cache) is read here at once: handing a
        # task of a few microseconds to a thread costs more than the task.
        nonlocal total, finished
        total += 1
        job.local_hits.clear()
        try:
            subs = task.run(local=True)
        except _NeedsIO:
            pending.add(task)
            workers.submit(task)
            return
        for log_hit in job.local_hits:
            log_hit()
        finished += 1
        for sub in subs or ():
            submit(sub)

    try:
        for index, ref in enumerate(refs):
            tag = ref.tag
            submit(_Task((index, 0), partial(job.tag_task, index, ref), partial(_unfinished_tag, ref, tag)))
        if options.progress is not None and finished:
            options.progress(finished, total)
        stop_at: float | None = None
        while pending:
            now = time.monotonic()
            if stop_at is None and (ctx.cancelled or _past(ctx, now)):
                stop_at = now + GRACE_SECONDS
            if stop_at is not None and now >= stop_at:
                reason = TIMED_OUT if _past(ctx, now) and not ctx.cancelled else "cancelled"
                ctx.cancel()  # whatever still runs sends nothing more
                for task, _, _ in _drain(completed, 0):  # finished meanwhile: their own rows stand
                    pending.discard(task)
                job.close((task.key, task.failed(reason)) for task in pending)
                break
            done = _drain(completed, _WAIT_POLL)
            for task, result, error in done:
                pending.discard(task)
                if error is not None:
                    raise error
                finished += 1
                for sub in result if isinstance(result, list) else ():
                    submit(sub)
            if options.progress is not None and done:
                options.progress(finished, total)
    except BaseException:
        ctx.cancel()  # leaving on an error (or Ctrl-C): the tasks still running send nothing more
        raise
    finally:
        # Threads still running end on their own at their next check; the scan does not wait for them.
        workers.stop()
    return job.result()


# How long the scan's loop sleeps between looks at the context when nothing completes.
_WAIT_POLL = 0.1


def _drain(completed: queue.SimpleQueue[T], timeout: float) -> list[T]:
    """The tasks finished so far, waiting up to ``timeout`` for the first."""
    try:
        done = [completed.get(timeout=timeout)]
    except queue.Empty:
        return []
    while True:
        try:
            done.append(completed.get_nowait())
        except queue.Empty:
            return done


def _past(ctx: Context, now: float) -> bool:
    return ctx.deadline is not None and now >= ctx.deadline


def _unfinished_tag(ref: Reference, tag: str | None, reason: str) -> dict[str, Any]:
    return error_row(ref, tag, reason)
