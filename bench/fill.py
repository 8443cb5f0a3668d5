"""Filling the benchmark's registry: one realistic repository, and repositories for scale.

The main repository (``bench/app``) has two parts, as a team's registry does:

- a CI part: builds pushed by a pipeline, each tagged three times
  (``build-0007``, ``sha-1a2b3c4``, ``v1.0.7``: tags sharing a digest), Docker
  and OCI manifests alternating, every tenth build a two-platform OCI index
  with buildkit attestations;
- a Docker Hub part: real tags of the official images (tests/support/dockerhub.py,
  from data/dockerhub), renamed ``<image>-<tag>`` in one repository:
  manifest lists of up to nine platforms, Windows images with foreign layers,
  many tags on one digest, and the 2026 tags with attestations.

The scale repositories (``bench/scale-<n>``) are all made the same way, whatever
their size, so that time per tag compares like with like: distinct small
single-platform images, four tags each.

Pushing goes through the test bed's Builder (plain ``requests``, never regdata),
a few threads at a time, each with its own Builder.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from tests.support.builder import Builder, ImageSpec, Layer, Pushed, PushError, attestation_spec
from tests.support.dockerhub import hub_tag, load_snapshot

__all__ = [
    "MAIN_REPO",
    "Dataset",
    "fill_main",
    "fill_scale",
    "hub_selection",
    "scale_repo",
]

MAIN_REPO = "bench/app"
CI_TAGS_PER_BUILD = 3
CI_MULTI_EVERY = 10
SCALE_TAGS_PER_IMAGE = 4
# The base layer every CI build shares, as builds FROM one base image do.
_BASE_LAYER = Layer.from_seed("bench-base-layer")
# 2026 tags: OCI indexes with attestation manifests; listed first so even the smoke run has one.
_RECENT = (("alpine", "3"), ("busybox", "latest"), ("alpine", "latest"), ("debian", "latest"))


@dataclass(frozen=True)
class Dataset:
    """What a repository holds, as pushed (not as read back)."""

    repo: str
    tags: int
    ci_tags: int
    hub_tags: int
    distinct_top_manifests: int
    indexes: int
    fill_seconds: float

    def as_dict(self) -> dict[str, Any]:
        """For the JSON report."""
        return asdict(self)


class _Builders:
    """One Builder per thread: a requests.Session is not meant to be shared between threads."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._local = threading.local()
        self._all: list[Builder] = []
        self._lock = threading.Lock()

    def get(self) -> Builder:
        builder: Builder | None = getattr(self._local, "builder", None)
        if builder is None:
            builder = Builder(self.url, timeout=60.0)
            self._local.builder = builder
            with self._lock:
                self._all.append(builder)
        return builder

    def close(self) -> None:
        for builder in self._all:
            builder.close()


def _parallel(url: str, jobs: Sequence[Callable[[Builder], Pushed]], workers: int) -> list[Pushed]:
    """Run push jobs on a few threads; a job that lost a race is run again alone.

    Two threads pushing one layer at once can make Distribution refuse the
    manifest of one of them (the blob is not yet linked in the repository);
    pushes are idempotent, so the losers simply go again, one at a time.
    """
    builders = _Builders(url)

    def attempt(job: Callable[[Builder], Pushed]) -> Pushed | None:
        try:
            return job(builders.get())
        except PushError:
            return None

    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bench-fill") as pool:
            results = list(pool.map(attempt, jobs))
        retry = builders.get()
        return [done if done is not None else job(retry) for job, done in zip(jobs, results, strict=True)]
    finally:
        builders.close()


# --------------------------------------------------------------------------- CI part


def _ci_build(repo: str, number: int) -> Callable[[Builder], Pushed]:
    sha = hashlib.sha1(f"bench-build-{number}".encode()).hexdigest()
    tags = [f"build-{number:04d}", f"sha-{sha[:7]}", f"v1.{number // 10}.{number % 10}"][:CI_TAGS_PER_BUILD]
    day = 1 + number % 28
    spec = ImageSpec(
        layers=(_BASE_LAYER, Layer.from_seed(f"bench-app-{number}")),
        format="oci" if number % 2 else "docker",
        created=f"2024-{1 + number // 28 % 12:02d}-{day:02d}T10:{number % 60:02d}:00Z",
        labels={"org.opencontainers.image.revision": sha, "org.opencontainers.image.version": tags[-1]},
        cmd=("/app/server",),
    )

    def push(builder: Builder) -> Pushed:
        if number % CI_MULTI_EVERY == CI_MULTI_EVERY - 1:
            return builder.push_multiarch(
                repo, ["linux/amd64", "linux/arm64/v8"], tags, attest=True, spec=spec, seed=f"b{number}"
            )
        return builder.push_image(repo, spec, tags)

    return push


# --------------------------------------------------------------------------- Docker Hub part


def hub_selection(count: int) -> list[tuple[str, str, str]]:
    """``count`` real tags as (snapshot, image, tag): the 2026 ones first, then a round
    robin over the images of the 2018 snapshot, so every image is represented."""
    chosen: list[tuple[str, str, str]] = [("snapshot_recent.json", i, t) for i, t in _RECENT]
    data = load_snapshot("snapshot.json")
    queues = {image: sorted(tags) for image, tags in sorted(data.items())}
    while len(chosen) < count and any(queues.values()):
        for image, tags in queues.items():
            if tags and len(chosen) < count:
                chosen.append(("snapshot.json", image, tags.pop(0)))
    return chosen[:count]


def _hub_tag(repo: str, snapshot: str, image: str, tag: str) -> Callable[[Builder], Pushed]:
    name = f"{image}-{tag}" if snapshot == "snapshot.json" else f"{image}-{tag}-2026"

    def push(builder: Builder) -> Pushed:
        plan = hub_tag(image, tag, snapshot=snapshot)
        pushed: list[Pushed | None] = [
            builder.push_image(repo, entry.spec) if entry.spec is not None else None for entry in plan.entries
        ]
        if not plan.is_index:
            first = next(p for p in pushed if p is not None)
            return builder.tag(repo, first, name)
        # The real order: each attestation right after the image it attests.
        entries: list[dict[str, Any]] = []
        for entry, done in zip(plan.entries, pushed, strict=True):
            if done is not None:
                entries.append(done.descriptor())
                continue
            if entry.attests is None:
                continue
            target = pushed[entry.attests]
            assert target is not None
            seeds = [str(layer["digest"]) for layer in entry.record["layers"]] or [entry.real_digest]
            att = builder.push_artifact(repo, attestation_spec(target.digest, seeds))
            entries.append(
                att.descriptor(
                    {
                        "vnd.docker.reference.digest": target.digest,
                        "vnd.docker.reference.type": "attestation-manifest",
                    }
                )
            )
        media_type = str(plan.record["index_mime"])
        body = json.dumps(
            {"schemaVersion": 2, "mediaType": media_type, "manifests": entries}, separators=(",", ":")
        ).encode()
        digest = builder.put_manifest(repo, name, body, media_type)
        return Pushed(repo=repo, digest=digest, media_type=media_type, manifest_bytes=body, tags=(name,))

    return push


# --------------------------------------------------------------------------- the fills


def main_split(tags: int) -> tuple[int, int]:
    """(CI builds, Docker Hub tags) for a main repository of about ``tags`` tags: 60% CI."""
    builds = max(1, round(tags * 0.6 / CI_TAGS_PER_BUILD))
    return builds, max(1, tags - builds * CI_TAGS_PER_BUILD)


def fill_main(url: str, tags: int, repo: str = MAIN_REPO, workers: int = 4) -> Dataset:
    """Push the main repository: about 60% CI tags, the rest real Docker Hub tags."""
    started = time.perf_counter()
    builds, hub = main_split(tags)
    jobs = [_ci_build(repo, n) for n in range(builds)]
    jobs += [_hub_tag(repo, s, i, t) for s, i, t in hub_selection(hub)]
    pushed = _parallel(url, jobs, workers)
    tops = {p.digest for p in pushed}
    indexes = {p.digest for p in pushed if "index" in p.media_type or "list" in p.media_type}
    ci_tags = builds * CI_TAGS_PER_BUILD
    return Dataset(
        repo=repo,
        tags=ci_tags + hub,
        ci_tags=ci_tags,
        hub_tags=hub,
        distinct_top_manifests=len(tops),
        indexes=len(indexes),
        fill_seconds=round(time.perf_counter() - started, 2),
    )


def scale_repo(tags: int) -> str:
    """The name of the scale repository of ``tags`` tags."""
    return f"bench/scale-{tags}"


def _scale_images(repo: str, tags: int) -> Iterator[Callable[[Builder], Pushed]]:
    layer = Layer.from_seed("bench-scale-layer")
    for image in range(-(-tags // SCALE_TAGS_PER_IMAGE)):
        names = [f"r{image:05d}-{k}" for k in range(SCALE_TAGS_PER_IMAGE)]
        names = names[: max(0, min(SCALE_TAGS_PER_IMAGE, tags - image * SCALE_TAGS_PER_IMAGE))]
        spec = ImageSpec(layers=(layer,), labels={"release": str(image)}, cmd=("/app",))

        def push(builder: Builder, spec: ImageSpec = spec, names: list[str] = names) -> Pushed:
            return builder.push_image(repo, spec, names)

        yield push


def fill_scale(url: str, tags: int, workers: int = 8) -> Dataset:
    """Push ``bench/scale-<tags>``: distinct one-layer images, four tags each."""
    started = time.perf_counter()
    repo = scale_repo(tags)
    pushed = _parallel(url, list(_scale_images(repo, tags)), workers)
    return Dataset(
        repo=repo,
        tags=sum(len(p.tags) for p in pushed),
        ci_tags=0,
        hub_tags=0,
        distinct_top_manifests=len({p.digest for p in pushed}),
        indexes=0,
        fill_seconds=round(time.perf_counter() - started, 2),
    )
