"""Tag ordering that understands versions.

Image tags are looser than semver.  A tag is read as::

    [v] release [prerelease] [build] [-track] [-r<build>]

* ``release`` is dotted numbers: ``3``, ``3.19``, ``1.25.3``, ``2024.03.01``.
  Its *precision* is how many numbers it has; a less precise tag (``3.19``)
  is usually a floating tag that follows the newest more precise one
  (``3.19.1``).
* ``prerelease`` is ``alpha``, ``beta``, ``pre``/``preview``, ``rc`` or
  ``dev``, optionally numbered, after ``-`` or ``.`` or attached
  (``-rc.1``, ``-beta2``, ``rc1``); PEP 440's attached ``a1``/``b2`` are read
  as alpha/beta when the release has at least two numbers (``3.7.0a4``), so
  that a hex digest such as ``2b3`` is not a version.  A pre-release sorts
  before its release: ``dev < alpha < beta < pre < rc < release``, and an
  unnumbered marker (``3.7-rc``, a floating pre-release tag) before the
  numbered ones.  A pre-release marker is not a track.
* ``build`` is a build number: ``_9`` (``17.0.9_9``, where ``+`` is not
  allowed in a tag), a trailing ``-r5`` (``1.25.3-debian-12-r5``) or an
  all-digit suffix (``1.2.3-1``).  Newer builds sort later; no build sorts
  first.
* ``track`` is the rest of the tag after ``-``: ``alpine``,
  ``slim-bookworm``, ``windowsservercore-1709``.  Numbers inside it are part
  of its name (``16-alpine3.19`` is in track ``alpine3.19``, not
  ``alpine``), since an image built on Alpine 3.19 is not interchangeable
  with one built on 3.18.  Versions are only compared within a track; the
  plain track is ``""``.
* Date-stamped tags with a name before the date (Debian's
  ``stretch-20171210``, ``bookworm-20240110-slim``) are versions whose track
  keeps the name, with ``*`` where the date was: ``stretch-*``,
  ``bookworm-*-slim``.

Anything else (``latest``, ``edge``, ``stable``, ``main-abc123``,
``sha-1234abc``, code names such as ``bookworm`` or ``carbon``) is not a
version: :func:`parse_version` returns ``None`` and :func:`sort_tags` puts it
last.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from regdata.frames import VERSIONS, make_frame

__all__ = [
    "VERSIONS",
    "Version",
    "floating_tags",
    "parse_version",
    "sort_tags",
    "version_frame",
    "versions_of",
]

# Phase ranks: a release sorts after all its pre-releases.
_PHASES = {"dev": 0, "alpha": 1, "a": 1, "beta": 2, "b": 2, "pre": 3, "preview": 3, "rc": 4}
_CANONICAL_PHASE = {"a": "alpha", "b": "beta", "preview": "pre"}
_RELEASE_RANK = 9

_VERSION = re.compile(
    r"""
    (?P<v>[vV])?
    (?P<release>\d+(?:\.\d+)*)
    (?:
        (?P<sep>[-.]?)
        (?P<phase>alpha|beta|preview|pre|rc|dev|a|b)
        (?=[-._\d]|\Z)
        (?:\.?(?P<number>\d+))?
    )?
    (?:_(?P<underscore>\d+))?
    (?:-(?P<suffix>.+))?
    \Z
    """,
    re.VERBOSE | re.IGNORECASE,
)
# A name, then a YYYYMMDD stamp: Debian's snapshot tags.
_DATED = re.compile(
    r"(?P<prefix>[A-Za-z][A-Za-z0-9.]*(?:-[A-Za-z][A-Za-z0-9.]*)*)"
    r"-(?P<date>(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]))"
    r"(?:-(?P<suffix>.+))?\Z"
)
_REVISION = re.compile(r"(?:^|-)r(?P<n>\d+)\Z")


@dataclass(frozen=True)
class Version:
    """A tag read as a version: release numbers, pre-release, build and track."""

    tag: str
    release: tuple[int, ...]
    track: str = ""
    phase: str | None = None
    number: int | None = None
    build: int | None = None

    @property
    def precision(self) -> int:
        """How many numbers the release has: 1 for ``3``, 2 for ``3.19``, 3 for ``3.19.1``."""
        return len(self.release)

    @property
    def is_prerelease(self) -> bool:
        """True for ``-rc.1``, ``-beta2``, ``a4`` and the like."""
        return self.phase is not None

    @property
    def prerelease(self) -> str | None:
        """The normalised pre-release marker (``rc.1``, ``alpha``), or None for a release."""
        if self.phase is None:
            return None
        return self.phase if self.number is None else f"{self.phase}.{self.number}"

    @property
    def key(self) -> tuple[Any, ...]:
        """Comparison key within a track: release, then pre-release phase and number, then build."""
        rank = _RELEASE_RANK if self.phase is None else _PHASES[self.phase]
        return (
            self.release,
            rank,
            -1 if self.number is None else self.number,
            -1 if self.build is None else self.build,
        )

    @property
    def sort_key(self) -> tuple[Any, ...]:
        """Sort key across tracks: track name first (plain track first), then :attr:`key`, then tag."""
        return (self.track, *self.key, self.tag)

    def covers(self, other: Version) -> bool:
        """True when this is a floating tag that ``other`` is a more precise instance of.

        ``3.19`` covers ``3.19.1`` (not ``3.19.0-rc.1``); ``3.7-rc`` covers
        ``3.7.0a4`` and ``1.10-rc`` covers ``1.10beta2``; ``17.0.9`` covers
        ``17.0.9_9``.  Only within one track.
        """
        if other.track != self.track or other.key == self.key:
            return False
        n = len(self.release)
        if other.release[:n] != self.release:
            return False
        if len(other.release) > n:
            return self.is_prerelease == other.is_prerelease
        if self.is_prerelease and self.number is None and other.is_prerelease:
            return other.number is not None
        return (self.phase, self.number) == (other.phase, other.number) and (
            self.build is None and other.build is not None
        )

    def __str__(self) -> str:
        text = ".".join(str(n) for n in self.release)
        if self.prerelease is not None:
            text += f"-{self.prerelease}"
        if self.build is not None:
            text += f"+{self.build}"
        return text

    @property
    def release_text(self) -> str:
        """The release numbers alone, dotted (``2024.3.1`` for ``2024.03.01``)."""
        return ".".join(str(n) for n in self.release)


def _split_build(suffix: str | None) -> tuple[str, int | None]:
    """Take a build number off a track suffix: ``debian-12-r5`` → (``debian-12``, 5), ``1`` → ("", 1)."""
    if not suffix:
        return "", None
    if suffix.isdigit():
        return "", int(suffix)
    match = _REVISION.search(suffix)
    if match:
        return suffix[: match.start()], int(match["n"])
    return suffix, None


@functools.lru_cache(maxsize=65536)  # a Version is immutable; sorting and judging ask for the same tags
def parse_version(tag: str) -> Version | None:
    """Read ``tag`` as a version, or return None for tags that are not versions.

    >>> parse_version("1.25.3-alpine")
    Version(tag='1.25.3-alpine', release=(1, 25, 3), track='alpine', phase=None, number=None, build=None)
    >>> str(parse_version("v2.0.0-rc.1"))
    '2.0.0-rc.1'
    >>> parse_version("latest") is None
    True
    """
    if not isinstance(tag, str):
        return None
    match = _VERSION.match(tag)
    if match:
        phase = match["phase"]
        release = tuple(int(part) for part in match["release"].split("."))
        if phase is not None:
            phase = phase.lower()
            # An attached single letter reads as a pre-release only after a dotted release,
            # so that hex-looking tags (2b3, 1a2f) stay non-versions.
            if phase in ("a", "b") and (match["sep"] or len(release) < 2):
                return None
            phase = _CANONICAL_PHASE.get(phase, phase)
        track, build = _split_build(match["suffix"])
        if match["underscore"] is not None:
            if build is not None:
                return None
            build = int(match["underscore"])
        if track.startswith("-") or track.endswith("-"):
            return None
        return Version(
            tag=tag,
            release=release,
            track=track,
            phase=phase,
            number=int(match["number"]) if match["number"] is not None else None,
            build=build,
        )
    dated = _DATED.match(tag)
    if dated:
        rest, build = _split_build(dated["suffix"])
        track = f"{dated['prefix']}-*" + (f"-{rest}" if rest else "")
        return Version(tag=tag, release=(int(dated["date"]),), track=track, build=build)
    return None


def versions_of(tags: Iterable[str]) -> dict[str, Version | None]:
    """Parse each distinct tag once: ``{tag: Version or None}``."""
    return {tag: parse_version(tag) for tag in dict.fromkeys(tags)}


def sort_tags(tags: Iterable[str]) -> list[str]:
    """Sort tags: versions by track (plain track first), then ascending version; non-versions last.

    Non-versions keep alphabetical order.  Duplicates are kept.

    >>> sort_tags(["latest", "2.0.0", "2.0.0-rc.1", "1.9-alpine", "1.10-alpine", "1.10"])
    ['1.10', '2.0.0-rc.1', '2.0.0', '1.9-alpine', '1.10-alpine', 'latest']
    """
    items = list(tags)
    parsed = versions_of(items)
    versions = [t for t in items if parsed[t] is not None]
    others = [t for t in items if parsed[t] is None]

    def key(tag: str) -> tuple[Any, ...]:
        version = parsed[tag]
        assert version is not None
        return version.sort_key

    return sorted(versions, key=key) + sorted(others)


def floating_tags(versions: Sequence[Version]) -> set[str]:
    """The tags among ``versions`` that cover (float over) another one of them."""
    by_track: dict[str, list[Version]] = {}
    for version in versions:
        by_track.setdefault(version.track, []).append(version)
    floating: set[str] = set()
    for group in by_track.values():
        for version in group:
            if any(version.covers(other) for other in group):
                floating.add(version.tag)
    return floating


def version_frame(tags: Iterable[str]) -> pd.DataFrame:
    """One row per distinct tag, in :func:`sort_tags` order, with how it reads as a version.

    Columns (:data:`VERSIONS`): ``tag``, ``is_version``, ``track``, ``version``
    (normalised, e.g. ``2.0.0-rc.1``), ``release`` (``2.0.0``), ``precision``,
    ``prerelease`` (``rc.1``; NA for releases), ``build`` and ``floating`` (another
    of the given tags is a more precise instance of this one).  Non-versions have
    NA in the version columns.
    """
    ordered = sort_tags(dict.fromkeys(tags))
    parsed = versions_of(ordered)
    present = [v for v in parsed.values() if v is not None]
    floating = floating_tags(present)
    rows = []
    for tag in ordered:
        version = parsed[tag]
        if version is None:
            rows.append({"tag": tag, "is_version": False, "floating": False})
            continue
        rows.append(
            {
                "tag": tag,
                "is_version": True,
                "track": version.track,
                "version": str(version),
                "release": version.release_text,
                "precision": version.precision,
                "prerelease": version.prerelease,
                "build": version.build,
                "floating": tag in floating,
            }
        )
    return make_frame(rows, VERSIONS)
