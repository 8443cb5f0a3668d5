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
(:mod:`regdata.limits`), so the pool is sized for its maximum.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, TypeVar

from .context import Context
from .errors import BudgetExceeded, Cancelled, ContentError, RegdataError
from .limits import QuotaFloorReached
from .manifest import Descriptor, ImageConfig, ImageManifest, Index, Platform, Schema1Manifest, parse_config
from .reference import Reference, Repository
from .remote import FetchedManifest
from .rows import error_row, history_rows, image_row, schema1_row

__all__ = ["RemoteLike", "ScanOptions", "ScanResult", "scan"]

T = TypeVar("T")

TIMED_OUT = "timed out: the scan's time budget ran out"
# Past the deadline, tasks stop within a poll or a capped read; this much later the rest is abandoned.
GRACE_SECONDS = 2.0
# Sort keys: (position of the ref, position of the platform in its index); a tag's own row is 0.
Key = tuple[int, int]


class RemoteLike(Protocol):
    """What a scan needs of a Remote; the mock factory's remotes provide it too."""

    def tags(self, repo: Repository, context: Context | None = None) -> list[str]: ...

    def manifest(self, ref: Reference, context: Context | None = None) -> FetchedManifest: ...

    def blob(self, repo: Repository, digest: str, context: Context | None = None) -> bytes: ...


@dataclass(frozen=True)
class ScanOptions:
    """What a scan keeps."""

    platforms: tuple[Platform, ...] | None = None
    labels_win: bool = False
    attestations: bool = False
    history: bool = False
    concurrency: int = 8
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
    """Compute each key once; concurrent askers wait for the first."""

    def __init__(self) -> None:
        self._futures: dict[str, Future[Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, compute: Callable[[], T]) -> T:
        with self._lock:
            future = self._futures.get(key)
            owner = future is None
            if future is None:
                future = self._futures[key] = Future()
        if owner:
            try:
                future.set_result(compute())
            except BaseException as exc:
                future.set_exception(exc)
                with self._lock:  # a failure is not remembered: cancellation must not stick
                    if isinstance(exc, Cancelled):
                        self._futures.pop(key, None)
        result: T = future.result()
        return result


def describe(exc: BaseException) -> str:
    """The text of an ``error`` cell."""
    if isinstance(exc, BudgetExceeded):
        return TIMED_OUT
    if isinstance(exc, QuotaFloorReached):
        return f"stopped: {exc}"
    if isinstance(exc, Cancelled):
        return "cancelled"
    if isinstance(exc, RegdataError):
        return f"{type(exc).__name__}: {exc}"
    return f"{type(exc).__name__}: {exc}"  # a bug of ours: still one row, never a lost scan


class _Scan:
    def __init__(self, remote: RemoteLike, repo: Repository, options: ScanOptions, ctx: Context) -> None:
        self.remote = remote
        self.repo = repo
        self.options = options
        self.ctx = ctx
        self.memo = _Memo()
        self._rows: list[tuple[Key, int, dict[str, Any], list[dict[str, Any]] | None]] = []
        self._lock = threading.Lock()

    def _emit(self, key: Key, row: dict[str, Any], history: list[dict[str, Any]] | None = None) -> None:
        with self._lock:
            self._rows.append((key, len(self._rows), row, history))

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

    def _config(self, digest: str) -> ImageConfig:
        return self.memo.get(
            f"config:{digest}", lambda: parse_config(self.remote.blob(self.repo, digest, self.ctx))
        )

    def _manifest(self, ref: Reference) -> FetchedManifest:
        return self.memo.get(f"manifest:{ref.digest}", lambda: self.remote.manifest(ref, self.ctx))

    # -- tasks ----------------------------------------------------------------

    def tag_task(self, index: int, ref: Reference) -> list[_Task]:
        """Fetch a tag's top manifest; return the platform tasks it fans out into."""
        tag = ref.tag or ref.digest or ""
        key = (index, 0)
        try:
            self.ctx.check()
            top = self.remote.manifest(ref, self.ctx) if ref.digest is None else self._manifest(ref)
        except Exception as exc:
            row = error_row(ref, tag, describe(exc))
            row["exception"] = exc  # not a column: lets get_image raise what went wrong
            self._emit(key, row)
            return []
        manifest = top.manifest
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
                self._emit(key, error_row(ref, tag, "index lists no manifests", digest=top.digest,
                                          media_type=top.media_type, kind="index"))
            return tasks
        self._single(key, ref, tag, top)
        return []

    def _platform_task(
        self, key: Key, ref: Reference, tag: str, top: FetchedManifest, descriptor: Descriptor
    ) -> _Task:
        def failed(reason: str) -> dict[str, Any]:
            return error_row(
                ref, tag, reason, digest=top.digest, media_type=top.media_type,
                kind="index", platform=descriptor.platform, manifest_digest=descriptor.digest,
            )

        def run() -> None:
            try:
                self.ctx.check()
                child_ref = Reference(ref.registry, ref.repository, None, descriptor.digest)
                child = self._manifest(child_ref)
                if not isinstance(child.manifest, ImageManifest):
                    raise ContentError(f"index entry {descriptor.digest} is not an image manifest")
                self._image(key, ref, tag, top, child, descriptor, "index")
            except Exception as exc:
                self._emit(key, failed(describe(exc)))

        return _Task(key, run, failed)

    def _single(self, key: Key, ref: Reference, tag: str, top: FetchedManifest) -> None:
        manifest = top.manifest
        try:
            if isinstance(manifest, Schema1Manifest):
                row = schema1_row(ref, tag, top.digest, manifest, self.options.labels_win)
                if self._kept(row):
                    history = (history_rows(ref, tag, row.get("platform"), manifest.config())
                               if self.options.history else None)
                    self._emit(key, row, history)
                return
            assert isinstance(manifest, ImageManifest)
            self._image(key, ref, tag, top, top, None, "image")
        except Exception as exc:
            self._emit(key, error_row(ref, tag, describe(exc), digest=top.digest,
                                      media_type=top.media_type, manifest_digest=top.digest))

    def _image(
        self, key: Key, ref: Reference, tag: str, top: FetchedManifest, child: FetchedManifest,
        descriptor: Descriptor | None, kind: str,
    ) -> None:
        manifest = child.manifest
        assert isinstance(manifest, ImageManifest)
        if manifest.is_artifact:
            kind = "artifact"
            config = None
        else:
            try:
                config = self._config(manifest.config.digest)
            except Exception as exc:
                row = image_row(ref, tag, top.digest, top.media_type, kind, child.digest, manifest,
                                None, descriptor, self.options.labels_win)
                row["error"] = describe(exc)
                row["size"] = row["layers"] = None
                self._emit(key, row)
                return
        row = image_row(ref, tag, top.digest, top.media_type, kind, child.digest, manifest, config,
                        descriptor, self.options.labels_win)
        if not self._kept(row):  # a platform filter keeps no artifact: it has no platform
            return
        history = None
        if self.options.history and config is not None:
            history = history_rows(ref, tag, row.get("platform"), config)
        self._emit(key, row, history)

    def _kept(self, row: dict[str, Any]) -> bool:
        if self.options.platforms is None:
            return True
        text = row.get("platform")
        return bool(text) and self.options.keeps(Platform.parse(text)) if text else False

    def _attestation_row(
        self, ref: Reference, tag: str, top: FetchedManifest, descriptor: Descriptor
    ) -> dict[str, Any]:
        row = error_row(ref, tag, "", digest=top.digest, media_type=top.media_type, kind="artifact",
                        manifest_digest=descriptor.digest)
        row.update(error=None, size=None, artifact_type="attestation-manifest",
                   annotations=dict(descriptor.annotations))
        return row


@dataclass(frozen=True)
class _Task:
    """A unit of work of a scan, with the row that stands for it if it never finishes."""

    key: Key
    run: Callable[[], Any]
    failed: Callable[[str], dict[str, Any]]


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
    pending: dict[Future[Any], _Task] = {}
    # Finished futures come back through a queue, O(1) each: wait() over every pending
    # future locks all of them at each call, O(n^2) over a scan, all of it on the GIL.
    completed: queue.SimpleQueue[Future[Any]] = queue.SimpleQueue()
    pool = ThreadPoolExecutor(max_workers=max(1, options.concurrency), thread_name_prefix="regdata-scan")
    abandoned = False

    def submit(task: _Task) -> None:
        future = pool.submit(task.run)
        pending[future] = task
        future.add_done_callback(completed.put)

    try:
        for index, ref in enumerate(refs):
            tag = ref.tag or ref.digest or ""
            submit(_Task((index, 0), partial(job.tag_task, index, ref), partial(_unfinished_tag, ref, tag)))
        total, finished = len(pending), 0
        stop_at: float | None = None
        while pending:
            now = time.monotonic()
            if stop_at is None and (ctx.cancelled or _past(ctx, now)):
                stop_at = now + GRACE_SECONDS
            if stop_at is not None and now >= stop_at:
                reason = TIMED_OUT if _past(ctx, now) and not ctx.cancelled else "cancelled"
                ctx.cancel()  # whatever still runs sends nothing more
                for future, task in pending.items():
                    future.cancel()
                    job._emit(task.key, task.failed(reason))
                abandoned = True
                break
            done = _drain(completed, _WAIT_POLL)
            for future in done:
                pending.pop(future)
                result = future.result()
                if isinstance(result, list):
                    for sub in result:
                        submit(sub)
                    total += len(result)
            finished += len(done)
            if options.progress is not None and done:
                options.progress(finished, total)
    finally:
        # Abandoned threads end on their own at their next check; the scan does not wait for them.
        pool.shutdown(wait=not abandoned, cancel_futures=True)
    return job.result()


# How long the scan's loop sleeps between looks at the context when nothing completes.
_WAIT_POLL = 0.1


def _drain(completed: queue.SimpleQueue[Future[Any]], timeout: float) -> list[Future[Any]]:
    """The futures finished so far, waiting up to ``timeout`` for the first."""
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


def _unfinished_tag(ref: Reference, tag: str, reason: str) -> dict[str, Any]:
    return error_row(ref, tag, reason)
