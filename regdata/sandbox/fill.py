"""Filling a registry with the demo data: each tag at its version, each blob and manifest written once.

:func:`fill` is :meth:`Sandbox.fill <regdata.sandbox.Sandbox.fill>`'s work.
It runs in phases, each concurrent: decide per tag (one HEAD), then find
which manifests and blobs are missing, upload the blobs, put the platform
manifests, and last the indexes and tags.  A second fill of the same data
is one tag list per repository and one HEAD per tag.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from regdata.sandbox.demodata import DemoData, TagVersion
from regdata.sandbox.imagebuild import Blob, Built, Manifest, format_time
from regdata.sandbox.push import Pusher

__all__ = ["FillReport", "fill"]


@dataclass
class FillReport:
    """What :meth:`Sandbox.fill <regdata.sandbox.Sandbox.fill>` did."""

    tags: int = 0  # tag versions (and pins) asked for
    pushed: int = 0  # pushed, or their tag moved
    unchanged: int = 0  # already there
    blobs: int = 0  # blobs uploaded
    manifests: int = 0  # manifests put
    requests: int = 0  # HTTP requests made
    seconds: float = 0.0
    pins: dict[str, str] = field(default_factory=dict)  # pin reference -> what became of it

    def __str__(self) -> str:
        if not self.pushed:
            return f"{self.tags} tags already there ({self.requests} HEADs, {self.seconds:.1f} s)"
        return (
            f"{self.pushed} of {self.tags} tags pushed ({self.blobs} blobs, {self.manifests} manifests, "
            f"{self.requests} requests, {self.seconds:.1f} s)"
        )


def fill(
    data: DemoData,
    port: int,
    images: Iterable[str] | Mapping[str, Iterable[str]] | None = None,
    *,
    as_of: datetime | str | None = None,
    pins: Iterable[str] = (),
    small: bool = False,
    concurrency: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> FillReport:
    """Push ``data`` to the registry on 127.0.0.1:``port``; see :meth:`Sandbox.fill
    <regdata.sandbox.Sandbox.fill>` for the arguments."""
    started = time.perf_counter()
    jobs = [
        _Job(image, tag, version, True)
        for image, tags in data.selection(images, small=small).items()
        for tag in tags
        if (version := data.version_at(image, tag, as_of)) is not None
    ]
    report = FillReport()
    for pin in pins:
        found = _pin(data, pin)
        if isinstance(found, str):
            report.pins[pin] = found
        else:
            report.pins[pin] = f"{found.image}:{found.tag} as of {format_time(found.seen_at)}"
            jobs.append(_Job(found.image, found.tag, found, False))
    report.tags = len(jobs)
    pusher = Pusher(port)
    try:
        workers = max(1, concurrency)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="regdata-fill") as pool:
            _Fill(data, pusher, pool, progress).run(jobs, report)
    finally:
        pusher.close()
    report.blobs, report.manifests, report.requests = pusher.blobs, pusher.manifests, pusher.requests
    report.seconds = time.perf_counter() - started
    return report


def _pin(data: DemoData, reference: str) -> TagVersion | str:
    """The tag version a pinned reference names, or why there is none."""
    from regdata.oci.reference import parse_reference

    ref = parse_reference(reference)
    if ref.digest is None:
        return "no digest: nothing to pin"
    image = ref.repository.removeprefix("library/")
    if ref.registry != "docker.io" or image not in data.images:
        return f"{ref.registry}/{ref.repository} is not in the demo data"
    tags = [ref.tag] if ref.tag else data.tags(image)
    for tag in tags:
        if tag not in data.tags(image):
            return f"no tag {image}:{tag} in the demo data"
        for version in data.versions(image, tag):
            if data.digest_of(version) == ref.digest:
                return version
    return f"{ref.digest} is no version of {image}:{ref.tag or '*'} in the demo data"


@dataclass(frozen=True)
class _Job:
    image: str
    tag: str
    version: TagVersion
    move_tag: bool  # put under the tag (else by digest only: an older image a fleet pins)

    @property
    def repo(self) -> str:
        return f"library/{self.image}"


class _Fill:
    """One fill, in phases: decide per tag, then check and write what is missing, once each.

    Distribution's filesystem storage is not safe for two concurrent writes of
    one blob or manifest, and many tags share content: hence the phases.
    """

    def __init__(
        self,
        data: DemoData,
        pusher: Pusher,
        pool: ThreadPoolExecutor,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        self.data = data
        self.pusher = pusher
        self.pool = pool
        self.progress = progress
        self.done = 0
        self.total = 0
        self.fresh: set[str] = set()  # repositories with no tag yet: nothing in them to HEAD
        self._lock = threading.Lock()

    def _each(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """``fn`` over ``items`` concurrently, counting progress."""
        with self._lock:
            self.total += len(items)

        def step(item: Any) -> Any:
            try:
                return fn(item)
            finally:
                with self._lock:
                    self.done += 1
                    done, total = self.done, self.total
                if self.progress is not None:
                    self.progress(done, total)

        return list(self.pool.map(step, items))

    def _decide(self, job: _Job) -> tuple[Built, str | None, bool]:
        """(content, tag to put it under, whether the job is already done)."""
        built = self.data.build(job.version)
        if not job.move_tag:
            return built, None, False
        current = None if job.repo in self.fresh else self.pusher.manifest_digest(job.repo, job.tag)
        if current == built.digest:
            return built, None, True
        if current is not None:
            versions = self.data.versions(job.image, job.tag)
            later = versions[versions.index(job.version) + 1 :]
            if any(self.data.digest_of(v) == current for v in later):
                return built, None, False  # tags move forward only: push by digest
        return built, job.tag, False

    def _missing(self, key: tuple[str, str]) -> bool:
        repo, digest = key
        return repo in self.fresh or self.pusher.manifest_digest(repo, digest) is None

    def run(self, jobs: list[_Job], report: FillReport) -> None:
        pusher = self.pusher
        repos = sorted({job.repo for job in jobs})
        self.fresh = {
            repo for repo, tags in zip(repos, self._each(pusher.tags, repos), strict=True) if not tags
        }
        decisions = self._each(self._decide, jobs)
        tops: dict[tuple[str, str], tuple[Built, list[str]]] = {}
        for job, (built, tag, done) in zip(jobs, decisions, strict=True):
            if done:
                continue
            entry = tops.setdefault((job.repo, built.digest), (built, []))
            if tag is not None and tag not in entry[1]:
                entry[1].append(tag)
        top_keys = list(tops)
        missing_tops = {
            k for k, gone in zip(top_keys, self._each(self._missing, top_keys), strict=True) if gone
        }
        children: dict[tuple[str, str], Manifest] = {}
        for key in missing_tops:
            for child in tops[key][0].children:
                children.setdefault((key[0], child.digest), child)
        child_keys = list(children)
        missing_children = [
            k for k, gone in zip(child_keys, self._each(self._missing, child_keys), strict=True) if gone
        ]
        blobs: dict[tuple[str, str], Blob] = {}
        for repo, digest in missing_children:
            for blob in children[(repo, digest)].blobs:
                blobs.setdefault((repo, blob.digest), blob)
        for repo, digest in missing_tops:
            for blob in tops[(repo, digest)][0].top.blobs:
                blobs.setdefault((repo, blob.digest), blob)
        self._each(lambda key: pusher.blob(key[0], blobs[key], key[0] not in self.fresh), list(blobs))
        self._each(lambda key: pusher.put(key[0], key[1], children[key]), missing_children)

        def put_top(key: tuple[str, str]) -> None:
            built, tags = tops[key]
            # One thread per manifest: the tags of one index are written one after another.
            if key in missing_tops and not tags:
                pusher.put(key[0], key[1], built.top)
            for tag in tags:
                pusher.put(key[0], tag, built.top)

        self._each(put_top, top_keys)
        report.pushed = sum(
            1
            for job, (built, tag, done) in zip(jobs, decisions, strict=True)
            if not done and (tag is not None or (job.repo, built.digest) in missing_tops)
        )
        report.unchanged = report.tags - report.pushed
