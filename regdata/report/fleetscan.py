"""Scan what a fleet runs, once per repository, and judge it: the first two calls of the nightly job."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from regdata.analysis.fleet import Within, fleet_freshness, read_fleet
from regdata.analysis.freshness import DEFAULT_PLATFORM
from regdata.errors import RegdataError
from regdata.oci.reference import Reference

if TYPE_CHECKING:
    from regdata.client.registry import Registry

__all__ = ["FleetScan", "judge_fleet", "read_fleets", "scan_fleet"]

Progress = Callable[[int, int], None]


def read_fleets(sources: Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """:func:`~regdata.analysis.fleet.read_fleet` of each file, in one frame (a missing file raises)."""
    frames = []
    for source in sources:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no such fleet file: {source}")
        frames.append(read_fleet(path))
    if not frames:
        raise ValueError("no fleet file given")
    return pd.concat(frames, ignore_index=True)


def _key(registry: Any, repository: Any) -> str:
    return f"{registry}/{repository}"


@dataclass
class FleetScan:
    """What :func:`scan_fleet` read.

    ``images``: each repository's images frame, by ``registry/repository``
    (every tag with ``full``; else the images the judgement needs, and
    ``tags`` the tag names the judgement counts versions from: every tag
    listed, less those read and found without the platform); ``pinned``: rows of digest-pinned
    images that no current tag points at (read by digest; their ``tag`` is
    the digest); ``errors``: the repositories that could not be read, with
    why; ``blocked``: the fleet rows (by position) a needed read was refused
    for (the pull quota, throttling, the network), with why; ``pulls``: the
    pulls the scan sent, per host, and ``quota``: what each host said is left;
    ``estimated_pulls``: a targeted scan's estimate before reading (2 per
    deployed image and per line: an index and a platform manifest; the cache
    and shared digests make it less, unusable candidates more).
    """

    fleet: pd.DataFrame
    images: dict[str, pd.DataFrame] = field(default_factory=dict)
    pinned: dict[str, pd.DataFrame] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    full: bool = True
    platform: str | None = None
    within: Within | None = None
    tags: dict[str, list[str]] = field(default_factory=dict)
    blocked: dict[int, str] = field(default_factory=dict)
    estimated_pulls: int | None = None
    pulls: dict[str, int] = field(default_factory=dict)
    quota: dict[str, str] = field(default_factory=dict)
    manifest_gets: int = 0

    def pull_summary(self) -> str:
        """``N pulls (host: N left of M per W)``: what the run cost against the hosts' quotas.

        With no host announcing a quota, the manifest GETs sent: the pulls Docker Hub would count.
        """
        used = sum(self.pulls.values()) if self.quota else self.manifest_gets
        noun = "pull" if self.quota else "manifest GET"
        text = f"{used} {noun}{'s' if used != 1 else ''}"
        if self.estimated_pulls is not None:
            text += f" (estimated {self.estimated_pulls})"
        if self.quota:
            text += "; " + ", ".join(f"{host}: {left}" for host, left in sorted(self.quota.items()))
        return text

    def frames(self) -> dict[str, pd.DataFrame]:
        """Per repository, its tags' rows and its pinned rows: what freshness is judged on."""
        out = dict(self.images)
        for key, pinned in self.pinned.items():
            out[key] = pd.concat([out[key], pinned], ignore_index=True) if key in out else pinned
        return out

    def all_images(self) -> pd.DataFrame:
        """Every repository's images frame in one frame (no pinned rows)."""
        frames = [f for f in self.images.values() if len(f)]
        if not frames:
            return next(iter(self.images.values()), pd.DataFrame()).iloc[0:0]
        return pd.concat(frames, ignore_index=True)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def scan_fleet(
    registry: Registry,
    fleet: pd.DataFrame,
    *,
    progress: Progress | None = None,
    full: bool = False,
    platform: str = DEFAULT_PLATFORM,
    within: Within = "track",
) -> FleetScan:
    """Read what the freshness of a fleet needs, with ``registry``, each repository once.

    By default only what the judgement on ``platform`` (and ``within``) needs
    (:mod:`regdata.analysis.targeted`): tag lists, HEADs, and the deployed images and
    their lines' best candidates on that platform, a few pulls per deployed
    image; rows whose reads were refused (the pull quota...) go to
    ``blocked``.  ``full=True`` reads each repository whole
    (:meth:`~regdata.Registry.get_repository`), every tag and platform, and
    an image pinned by a digest no tag points at any more by digest; so is a
    repository with a digest pin without a tag in the targeted scan.  A
    repository that cannot be read (unknown, denied, unreachable) is
    recorded in ``errors`` and the scan goes on.  ``progress(done, total)``
    is called as repositories finish.
    """
    started = time.perf_counter()
    since = time.time()
    scan = FleetScan(fleet, full=full, platform=None if full else platform, within=None if full else within)
    usable = fleet.loc[fleet["error"].isna() & fleet["repository"].notna()]
    keys: dict[str, tuple[str, str]] = {}
    for registry_host, repository, tag, digest in zip(
        usable["registry"], usable["repository"], usable["tag"], usable["digest"], strict=True
    ):
        # A digest pin without a tag is named by the tags that point at it: its repository is read whole.
        if full or (pd.isna(tag) and not pd.isna(digest)):
            keys.setdefault(_key(registry_host, repository), (str(registry_host), str(repository)))
    if not full:
        from regdata.analysis.targeted import read_targeted

        plan = read_targeted(
            registry,
            fleet,
            platform=platform,
            within=within,
            skip=set(keys),
            errors=scan.errors,
            progress=progress,
        )
        for key, reads in plan.repos.items():
            scan.images[key] = reads.frame()
            scan.tags[key] = reads.counted()
        scan.blocked = plan.blocked
        scan.estimated_pulls = plan.estimated_pulls
    for done, (key, (host, repository)) in enumerate(sorted(keys.items()), start=1):
        try:
            scan.images[key] = registry.get_repository(f"{host}/{repository}")
        except RegdataError as exc:
            scan.errors[key] = _describe(exc)
        if progress is not None:
            progress(done, len(keys))
    pins = usable.loc[usable["digest"].notna()]
    known: dict[str, set[str]] = {}  # per repository, the digests its frames hold so far
    for host, repository, digest in zip(pins["registry"], pins["repository"], pins["digest"], strict=True):
        key = _key(host, repository)
        frame = scan.images.get(key)
        if frame is None or key not in keys:
            continue
        if key not in known:
            known[key] = set(frame["digest"].dropna()) | set(frame["manifest_digest"].dropna())
        if digest in known[key] or f"{key}@{digest}" in scan.errors:
            continue  # read already, or already failed: pinned twice in a fleet is read once
        known[key].add(str(digest))
        try:
            rows = registry.get_image(Reference(str(host), str(repository), None, str(digest)))
        except RegdataError as exc:
            scan.errors[f"{key}@{digest}"] = _describe(exc)
            continue
        previous = scan.pinned.get(key)
        scan.pinned[key] = rows if previous is None else pd.concat([previous, rows], ignore_index=True)
    scan.seconds = time.perf_counter() - started
    log = getattr(registry.factory, "log", None)
    if log is not None:
        for record in log.records():
            if record.started < since:
                continue
            if record.pull:
                scan.pulls[record.host] = scan.pulls.get(record.host, 0) + 1
            if record.kind == "manifest" and record.method == "GET" and record.cache != "hit":
                scan.manifest_gets += 1
    scan.quota = {host: rate.describe() for host, rate in registry.rate_limits.items()}
    return scan


# What a judgement draws from the images; a row that could not be judged keeps none of it.
_JUDGED = ("candidate_tag", "candidate_created", "newest_tag", "newest_created", "lag_days", "newer_versions")


def judge_fleet(
    scan: FleetScan, *, platform: str | None = None, now: Any = None, within: Within | None = None
) -> pd.DataFrame:
    """:func:`~regdata.analysis.fleet.fleet_freshness` of a scan; a repository that could not be read
    makes its images ``error`` rows with the reason, rather than ``unknown``, and a row a
    needed read was refused for (``scan.blocked``) is ``unknown`` with why.

    ``platform`` and ``within`` default to the scan's (``linux/amd64`` and ``track`` for a
    full one); a targeted scan read only what its own need, and refuses others.
    """
    if not scan.full and (platform not in (None, scan.platform) or within not in (None, scan.within)):
        raise ValueError(
            f"this scan read what a judgement on {scan.platform} within "
            f"{scan.within} needs; scan again, or with full=True"
        )
    on = platform or scan.platform or DEFAULT_PLATFORM
    frame = fleet_freshness(
        scan.fleet,
        scan.frames(),
        now,
        platform=on,
        within=within or scan.within or "track",
        tags=None if scan.full else scan.tags,
    )
    if scan.blocked and len(frame):
        frame = frame.copy()
        for position, why in scan.blocked.items():
            for column in _JUDGED:
                frame.at[position, column] = pd.NA
            frame.at[position, "status"] = "unknown"
            frame.at[position, "reason"] = why
    if not scan.errors or not len(frame):
        return frame
    frame = frame.copy()
    columns = zip(frame["registry"], frame["repository"], frame["digest"], strict=True)
    for i, (host, repository, digest) in enumerate(columns):
        if pd.isna(repository):
            continue
        key = _key(host, repository)
        reason = scan.errors.get(key) or (scan.errors.get(f"{key}@{digest}") if not pd.isna(digest) else None)
        if reason is not None and frame.at[i, "status"] != "error":
            frame.at[i, "status"] = "error"
            frame.at[i, "reason"] = reason
    return frame
