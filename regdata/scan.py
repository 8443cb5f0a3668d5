"""A scan: the tags of one repository read concurrently, each failure kept in its own row.

A tag's top manifest is fetched first; an index then fans out into one task
per platform.  Manifests and configs are fetched once per digest in a scan,
however many tags share them.  Every task checks the scan's context, so a
cancelled or timed-out scan sends nothing more, and the tasks it did not
finish come back as rows marked ``cancelled`` or ``timed out``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from .context import Context
from .errors import BudgetExceeded, Cancelled, ContentError, RegdataError
from .manifest import Descriptor, ImageConfig, ImageManifest, Index, Platform, Schema1Manifest, parse_config
from .reference import Reference, Repository
from .remote import FetchedManifest
from .rows import error_row, history_rows, image_row, schema1_row

__all__ = ["RemoteLike", "ScanOptions", "ScanResult", "scan"]

T = TypeVar("T")


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
        return "timed out: the scan's time budget ran out"
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
        self.result = ScanResult()
        self._lock = threading.Lock()

    def _emit(self, row: dict[str, Any], history: list[dict[str, Any]] | None = None) -> None:
        with self._lock:
            self.result.images.append(row)
            if history:
                self.result.history.extend(history)

    def _config(self, digest: str) -> ImageConfig:
        return self.memo.get(
            f"config:{digest}", lambda: parse_config(self.remote.blob(self.repo, digest, self.ctx))
        )

    def _manifest(self, ref: Reference) -> FetchedManifest:
        return self.memo.get(f"manifest:{ref.digest}", lambda: self.remote.manifest(ref, self.ctx))

    # -- tasks ----------------------------------------------------------------

    def tag_task(self, ref: Reference) -> list[Callable[[], None]]:
        """Fetch a tag's top manifest; return the platform tasks it fans out into."""
        tag = ref.tag or ref.digest or ""
        try:
            self.ctx.check()
            top = self.remote.manifest(ref, self.ctx) if ref.digest is None else self._manifest(ref)
        except Exception as exc:
            row = error_row(ref, tag, describe(exc))
            row["exception"] = exc  # not a column: lets get_image raise what went wrong
            self._emit(row)
            return []
        manifest = top.manifest
        if isinstance(manifest, Index):
            tasks: list[Callable[[], None]] = []
            for descriptor in manifest.manifests:
                if descriptor.is_attestation:
                    if self.options.attestations:
                        self._emit(self._attestation_row(ref, tag, top, descriptor))
                    continue
                if descriptor.platform is not None and not self.options.keeps(descriptor.platform):
                    continue
                tasks.append(self._platform_task(ref, tag, top, descriptor))
            if not tasks and not manifest.manifests:
                self._emit(error_row(ref, tag, "index lists no manifests", digest=top.digest,
                                     media_type=top.media_type, kind="index"))
            return tasks
        self._single(ref, tag, top)
        return []

    def _platform_task(
        self, ref: Reference, tag: str, top: FetchedManifest, descriptor: Descriptor
    ) -> Callable[[], None]:
        def run() -> None:
            try:
                self.ctx.check()
                child_ref = Reference(ref.registry, ref.repository, None, descriptor.digest)
                child = self._manifest(child_ref)
                if not isinstance(child.manifest, ImageManifest):
                    raise ContentError(f"index entry {descriptor.digest} is not an image manifest")
                self._image(ref, tag, top, child, descriptor, "index")
            except Exception as exc:
                self._emit(error_row(
                    ref, tag, describe(exc), digest=top.digest, media_type=top.media_type,
                    kind="index", platform=descriptor.platform, manifest_digest=descriptor.digest,
                ))
        return run

    def _single(self, ref: Reference, tag: str, top: FetchedManifest) -> None:
        manifest = top.manifest
        try:
            if isinstance(manifest, Schema1Manifest):
                row = schema1_row(ref, tag, top.digest, manifest, self.options.labels_win)
                if self._kept(row):
                    history = (history_rows(ref, tag, row.get("platform"), manifest.config())
                               if self.options.history else None)
                    self._emit(row, history)
                return
            assert isinstance(manifest, ImageManifest)
            self._image(ref, tag, top, top, None, "image")
        except Exception as exc:
            self._emit(error_row(ref, tag, describe(exc), digest=top.digest,
                                 media_type=top.media_type, manifest_digest=top.digest))

    def _image(
        self, ref: Reference, tag: str, top: FetchedManifest, child: FetchedManifest,
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
                self._emit(row)
                return
        row = image_row(ref, tag, top.digest, top.media_type, kind, child.digest, manifest, config,
                        descriptor, self.options.labels_win)
        if not self._kept(row):  # a platform filter keeps no artifact: it has no platform
            return
        history = None
        if self.options.history and config is not None:
            history = history_rows(ref, tag, row.get("platform"), config)
        self._emit(row, history)

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


def scan(
    remote: RemoteLike,
    repo: Repository,
    refs: Iterable[Reference],
    options: ScanOptions,
    ctx: Context,
) -> ScanResult:
    """Read ``refs`` (tags or digests of ``repo``) concurrently into rows.

    Returns when every ref has its rows, or when the context is cancelled or
    its budget runs out; then each unfinished ref gets a row saying so.
    """
    job = _Scan(remote, repo, options, ctx)
    refs = list(refs)
    pending: dict[Future[Any], Reference] = {}
    with ThreadPoolExecutor(max_workers=max(1, options.concurrency),
                            thread_name_prefix="regdata-scan") as pool:
        for ref in refs:
            pending[pool.submit(job.tag_task, ref)] = ref
        while pending:
            left = ctx.remaining()
            done, _ = wait(list(pending), timeout=None if left is None else max(left, 0) + 2.0,
                           return_when=FIRST_COMPLETED)
            if not done:  # past the budget and its grace: abandon what is left
                ctx.cancel()
                reason = "timed out: the scan's time budget ran out"
                for future, ref in pending.items():
                    future.cancel()
                    job._emit(error_row(ref, ref.tag or ref.digest or "", reason))
                break
            for future in done:
                ref = pending.pop(future)
                result = future.result()
                if isinstance(result, list):
                    for task in result:
                        pending[pool.submit(task)] = ref
    return job.result
