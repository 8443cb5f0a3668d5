"""The images a fleet runs: read them from files, judge how fresh they are.

:func:`read_fleet` (in ``fleetfiles.py``) reads image references from a plain
list, Kubernetes manifests or a docker compose file; :func:`fleet_freshness` compares each
deployed reference with the images frames of its repository.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import pandas as pd

from regdata.analysis.fleetfiles import read_fleet
from regdata.analysis.freshness import DEFAULT_PLATFORM, as_now, days, usable_images
from regdata.analysis.versions import Version, floating_tags, parse_version, versions_of
from regdata.frames import FLEET, FRESHNESS, STATUSES, make_frame
from regdata.oci.reference import parse_repository

__all__ = [
    "FLEET",
    "FRESHNESS",
    "STATUSES",
    "STATUS_COLOURS",
    "STATUS_ORDER",
    "Within",
    "fleet_freshness",
    "read_fleet",
]


# How the report's tables and the plots list them (what needs a look first), and their colours.
STATUS_ORDER = ("behind", "error", "unknown", "current")
STATUS_COLOURS = {"current": "#2ca02c", "behind": "#d62728", "unknown": "#9e9e9e", "error": "#6a3d9a"}


@dataclass(frozen=True)
class _Image:
    """One platform image of a tag, as judged."""

    tag: str | None  # None: read by digest alone, no tag names it
    version: Version | None
    digest: str | None
    manifest_digest: str | None
    created: pd.Timestamp


@dataclass(frozen=True)
class _Repo:
    """A repository's images on the judged platform, parsed once.

    ``names``: every tag the registry lists, when the frames hold only the images a
    targeted scan read (``unusable``: the tags read that have no usable image); the
    versions above a deployed one are then counted from the names.
    """

    images: tuple[_Image, ...]
    names: tuple[str, ...] | None = None
    unusable: frozenset[str] = frozenset()
    # The candidates, listed versions and floating tags of a (track, release prefix,
    # pre-releases too) line:
    # the same for every deployed image of that line, and all-against-all to find.
    lines: dict[
        tuple[str, tuple[int, ...], bool], tuple[list[tuple[_Image, Version]], list[Version], set[str]]
    ] = field(default_factory=dict, compare=False, repr=False)

    @cached_property
    def _last(self) -> dict[str, _Image]:
        # Frames of several scans come oldest first: a tag's last row is its current image.
        return {i.tag: i for i in self.images if i.tag is not None}

    @property
    def current(self) -> tuple[_Image, ...]:
        """Each tag's current image."""
        return tuple(self._last.values())

    def by_tag(self, tag: str | None) -> _Image | None:
        """The tag's current image."""
        return None if tag is None else self._last.get(tag)

    def by_digest(self, digest: str, tag: str | None) -> _Image | None:
        found = [i for i in self.images if digest in (i.digest, i.manifest_digest)]
        if not found:
            return None
        same_tag = [i for i in found if i.tag == tag]
        if same_tag:
            return same_tag[0]
        versions = [i for i in found if i.version is not None]
        # A digest-only pin takes the most precise version tag that points at it.
        if versions:
            return max(versions, key=lambda i: (i.version.precision, i.version.key) if i.version else ())
        return found[0]


def _repos(images_by_repo: Mapping[str, pd.DataFrame] | pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    frames: list[pd.DataFrame] = []
    if isinstance(images_by_repo, pd.DataFrame):
        frames.append(images_by_repo)
    else:
        for key, frame in images_by_repo.items():
            repo = parse_repository(key)
            frame = frame.copy()
            frame["registry"] = frame["registry"].astype("string").fillna(repo.registry)
            frame["repository"] = frame["repository"].astype("string").fillna(repo.repository)
            frames.append(frame)
    out: dict[tuple[str, str], pd.DataFrame] = {}
    for frame in frames:
        if not len(frame):
            continue
        for names, group in frame.groupby(["registry", "repository"], sort=False):
            registry, repository = (str(k) for k in names)
            previous = out.get((registry, repository))
            out[(registry, repository)] = group if previous is None else pd.concat([previous, group])
    return out


def _judged(frame: pd.DataFrame, platform: str, names: Sequence[str] | None = None) -> _Repo:
    rows = usable_images(frame, platform)
    parsed = versions_of(str(t) for t in rows["tag"])

    def text(value: Any) -> str | None:
        return None if pd.isna(value) else str(value)

    images = tuple(
        _Image(text(tag), parsed[str(tag)], text(digest), text(manifest), pd.Timestamp(created))
        for tag, digest, manifest, created in zip(
            rows["tag"], rows["digest"], rows["manifest_digest"], rows["created"], strict=True
        )
    )
    if names is None:
        return _Repo(images)
    read = {str(t) for t in frame["tag"].dropna()}
    return _Repo(images, tuple(names), frozenset(read - {i.tag for i in images}))


@dataclass(frozen=True)
class _Track:
    """What a deployed version's track offers."""

    best: _Image  # the highest version
    best_version: Version
    newest: _Image  # the newest built
    newer: int  # distinct versions above the deployed one


# How many leading release numbers a candidate must share with the deployed version.
Within = Literal["track", "major", "minor"]
_SAME: dict[str, int] = {"track": 0, "major": 1, "minor": 2}


Line = tuple[str, tuple[int, ...], bool]


def line_of(version: Version, within: Within = "track") -> Line:
    """The line a deployed version is held against: (track, release prefix, pre-releases too)."""
    # Pre-releases compete only with a deployed pre-release: a release user is not offered an rc.
    return (version.track, version.release[: _SAME[within]], version.is_prerelease)


def in_line(candidate: Version, line: Line) -> bool:
    """Whether ``candidate`` competes in ``line``."""
    return (
        candidate.track == line[0]
        and (line[2] or not candidate.is_prerelease)
        and candidate.release[: len(line[1])] == line[1]
    )


def _track(repo: _Repo, version: Version, within: Within = "track") -> _Track | None:
    line = line_of(version, within)
    if line not in repo.lines:
        candidates = [
            (i, i.version) for i in repo.current if i.version is not None and in_line(i.version, line)
        ]
        if repo.names is None:
            listed = [v for _, v in candidates]
        else:  # the versions the registry lists, less those read and found unusable
            listed = [
                v
                for v in versions_of(repo.names).values()
                if v is not None and v.tag not in repo.unusable and in_line(v, line)
            ]
        repo.lines[line] = (candidates, listed, floating_tags(listed))
    pairs, listed, floating = repo.lines[line]
    if not pairs:
        return None
    best, best_version = max(pairs, key=lambda p: (p[1].key, p[1].precision, p[0].created))
    newest, _ = max(pairs, key=lambda p: (p[0].created, p[1].key, p[1].precision))
    newer = {v.key for v in listed if v.tag not in floating and v.key > version.key and not version.covers(v)}
    return _Track(best, best_version, newest, len(newer))


def _verdict(
    version: Version | None,
    track: _Track | None,
    deployed: _Image | None,
    by_tag: _Image | None,
    tag: str | None,
    judged_tag: str | None,
    moved: bool | None,
    repush: bool | None,
    platform: str,
    within: Within = "track",
) -> tuple[str, str]:
    """(status, reason) of one deployed reference whose repository has images."""
    in_track = f" in track {version.track!r}" if version is not None and version.track else ""
    if version is not None and _SAME[within]:
        in_track += " within " + ".".join(str(n) for n in version.release[: _SAME[within]]) + ".x"
    if track is not None and track.newer:
        plural = "s" if track.newer > 1 else ""
        return "behind", f"{track.newer} newer version{plural}{in_track} (newest {track.best.tag})"
    if deployed is None:
        return "unknown", (
            f"tag {tag} has moved since the pin and the pinned image is not among the "
            f"{platform} images: rebuild or re-push cannot be told"
        )
    if moved:
        assert by_tag is not None
        if repush:
            return "current", f"tag {tag} was re-pushed since the pin, same image (created unchanged)"
        if by_tag.created > deployed.created:
            gap = days(by_tag.created - deployed.created) or 0.0
            return "behind", f"tag {tag} was rebuilt {gap:.1f} days after the pinned image"
        return "unknown", f"tag {tag} now points at an older image than the pin"
    if version is None:
        return "current", f"{judged_tag} is not a version tag: judged by digest only"
    if track is not None and track.best.tag != judged_tag and version.covers(track.best_version):
        return "current", f"{judged_tag} follows the newest version{in_track} ({track.best.tag})"
    return "current", f"newest version{in_track}"


def _judge(
    row: Mapping[Hashable, Any], repo: _Repo, platform: str, now: pd.Timestamp, within: Within = "track"
) -> dict[str, Any]:
    """The freshness columns of one parsed fleet row whose repository has images on ``platform``."""
    tag, digest = row.get("tag"), row.get("digest")
    by_tag = repo.by_tag(tag)
    deployed = repo.by_digest(str(digest), tag) if digest else by_tag
    judged_tag = tag if tag is not None else (deployed.tag if deployed is not None else None)
    version = parse_version(judged_tag) if judged_tag is not None else None
    out: dict[str, Any] = {"deployed_tag": judged_tag}
    if by_tag is not None:
        out["tag_digest"] = by_tag.digest
    if deployed is not None:
        out.update(deployed_created=deployed.created, age_days=days(now - deployed.created))
    moved = repush = None
    if digest and by_tag is not None:
        moved = digest not in (by_tag.digest, by_tag.manifest_digest)
        repush = moved and deployed.created == by_tag.created if deployed is not None else None
        out.update(tag_moved=moved, repush=repush)
    if deployed is None and by_tag is None:
        what = f"digest {str(digest)[:19]}" if digest else f"tag {tag}"
        out.update(status="unknown", reason=f"{what} not among the {platform} images of the repository")
        return out
    track = _track(repo, version, within) if version is not None else None
    if version is not None:
        out.update(track=version.track, version=str(version))
    if track is not None:
        out.update(
            candidate_tag=track.best.tag,
            candidate_created=track.best.created,
            newest_tag=track.newest.tag,
            newest_created=track.newest.created,
            newer_versions=track.newer,
        )
        if deployed is not None:
            # A newest version built before the deployed one is no lag; newer_versions still tells.
            out["lag_days"] = max(days(track.best.created - deployed.created) or 0.0, 0.0)
    status, reason = _verdict(
        version, track, deployed, by_tag, tag, judged_tag, moved, repush, platform, within
    )
    if moved and not repush and deployed is not None and by_tag is not None:
        # A pin whose tag was rebuilt since lags at least by that rebuild.
        rebuilt = days(by_tag.created - deployed.created) or 0.0
        out["lag_days"] = max(out.get("lag_days") or 0.0, rebuilt, 0.0)
    out.update(status=status, reason=reason)
    return out


def fleet_freshness(
    fleet: pd.DataFrame,
    images_by_repo: Mapping[str, pd.DataFrame] | pd.DataFrame,
    now: Any = None,
    *,
    platform: str = DEFAULT_PLATFORM,
    within: Within = "track",
    tags: Mapping[str, Sequence[str]] | None = None,
) -> pd.DataFrame:
    """How fresh each deployed image of ``fleet`` (a :func:`read_fleet` frame) is.

    ``images_by_repo`` holds the images frames of the fleet's repositories:
    a mapping from repository name (``nginx``, ``docker.io/library/nginx``,
    ``ghcr.io/org/app``) to its frame, or one concatenated frame.  Images are
    judged on ``platform`` (default ``linux/amd64``) and on ``created`` times.

    Per deployed reference:

    * the deployed image: the pinned digest's image (index or platform
      manifest digest, under any tag of the frames), else the tag's image;
      a tag-only reference is taken to run the tag's current image.  Frames
      may hold several scans concatenated oldest first (a tag's last row is
      its current image; older rows let a pin to an old digest be dated);
    * in its version track (releases only, unless it is a pre-release): the
      candidate, the highest version (``candidate_tag``/``candidate_created``),
      and the newest built (``newest_tag``/``newest_created``);
    * ``lag_days``: candidate created minus deployed created, at least 0
      (for a pin whose tag was rebuilt since, at least that gap);
    * ``newer_versions``: distinct versions above the deployed one, counting
      neither floating tags nor the versions a deployed floating tag follows;
    * for a digest pin with a tag, ``tag_digest`` (the tag's digest now),
      ``tag_moved`` and ``repush`` (moved, but to an image with the same
      created time: an index re-push, not a rebuild);
    * ``status``: ``behind`` (newer versions, or the tag was rebuilt since the
      pin), ``current``, ``unknown`` (repository, tag or digest not in the
      frames, or the platform missing) or ``error`` (the reference did not
      parse), and ``reason`` in words.

    ``within`` narrows the versions a deployed one is held against:
    ``"track"`` (default) the whole track, ``"major"`` the same major
    version (``node:6`` against 6.x only, not 9.x), ``"minor"`` the same
    major.minor.  Use it for images kept on an older line on purpose.

    ``age_days`` is ``now`` (default: the current time) minus the deployed
    created time.  Columns: :data:`FRESHNESS`.

    ``tags``, by ``registry/repository``: every tag the registry lists, for
    frames that hold only some of them (a targeted scan's: the deployed
    images and the best candidates of their lines).  ``newer_versions`` is
    then counted from the tag names, less the tags read and found unusable,
    and ``newest_tag`` is the newest built among the images read.
    """
    if within not in _SAME:
        raise ValueError(f"within must be one of {', '.join(_SAME)}, got {within!r}")
    stamp = as_now(now)
    repos = _repos(images_by_repo)
    judged: dict[tuple[str, str], _Repo] = {}
    out = []
    for row in fleet.astype(object).where(fleet.notna(), None).to_dict("records"):
        base = {c: row.get(c) for c, _ in FRESHNESS if c in row}
        base["platform"] = platform
        if row.get("error") is not None:
            base.update(status="error", reason=row["error"])
            out.append(base)
            continue
        key = (str(row.get("registry")), str(row.get("repository")))
        frame = repos.get(key)
        if frame is None:
            base.update(status="unknown", reason=f"no images of {key[0]}/{key[1]} given")
            out.append(base)
            continue
        if key not in judged:
            judged[key] = _judged(frame, platform, None if tags is None else tags.get(f"{key[0]}/{key[1]}"))
        repo = judged[key]
        if not repo.images:
            base.update(status="unknown", reason=f"no {platform} image of {key[0]}/{key[1]}")
            out.append(base)
            continue
        base.update(_judge(row, repo, platform, stamp, within))
        out.append(base)
    return make_frame(out, FRESHNESS, {"status": STATUSES})
