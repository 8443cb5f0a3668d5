"""Freshness of one repository's images: newest per track, cadence, shared digests, ages.

The functions take an images frame (:data:`regdata.frames.IMAGES`: one row
per tag and platform) and return new frames with declared schemas.

Freshness is judged on the images' ``created`` times, not on digests: a real
multi-arch index is re-pushed as each platform finishes building, so a tag's
digest can change several times for one build.  :func:`classify_changes`
tells those re-pushes from rebuilds in a tag's history.

Rows that cannot be judged are left out: rows with an ``error``, attestation
and other artifact rows, and rows without a ``created`` time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Hashable, Mapping
from typing import Any, Literal

import pandas as pd

from regdata.analysis.versions import Version, sort_tags, versions_of
from regdata.frames import (
    AGES,
    CADENCE,
    CADENCE_SUMMARY,
    CHANGE_KINDS,
    CHANGES,
    NEWEST,
    NOT_RUNNABLE,
    SHARED,
    make_frame,
)

__all__ = [
    "AGES",
    "CADENCE",
    "CADENCE_SUMMARY",
    "CHANGES",
    "CHANGE_KINDS",
    "DEFAULT_PLATFORM",
    "NEWEST",
    "SHARED",
    "cadence_summary",
    "classify_changes",
    "newest_per_track",
    "release_cadence",
    "repush_share",
    "shared_digests",
    "tag_ages",
    "usable_images",
]

DEFAULT_PLATFORM = "linux/amd64"
_DAY = pd.Timedelta(days=1)


def to_utc(values: Any) -> pd.Series:
    """Times (text, datetimes, timestamps) as a ``datetime64[ns, UTC]`` series."""
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    if not pd.api.types.is_datetime64_any_dtype(series.dtype):
        series = pd.to_datetime(series, utc=True, format="ISO8601")
    elif getattr(series.dt, "tz", None) is None:
        series = series.dt.tz_localize("UTC")
    return series.astype(pd.DatetimeTZDtype("ns", "UTC"))


def as_now(now: Any = None) -> pd.Timestamp:
    """``now`` as a UTC timestamp; the current time when None (naive times are taken as UTC)."""
    stamp = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def days(delta: Any) -> float | None:
    """A time difference in days, None when it is missing."""
    if delta is None or pd.isna(delta):
        return None
    return float(pd.Timedelta(delta) / _DAY)


def usable_images(images: pd.DataFrame, platform: str | None = None) -> pd.DataFrame:
    """The rows freshness can be judged on: no error, with a created time, and an image to run.

    Artifacts, and cosign's signatures, attestations and SBOMs (:data:`regdata.frames.NOT_RUNNABLE`),
    are about other images: never versions or candidates.

    With ``platform`` (``linux/amd64``, ``linux/arm/v7``), only that platform's rows.
    """
    keep = images["created"].notna()
    if "error" in images:
        error = images["error"]
        keep &= error.isna() | (error.astype("string") == "")
    if "kind" in images:
        keep &= ~images["kind"].astype("string").fillna("image").isin(NOT_RUNNABLE)
    if platform is not None:
        keep &= images["platform"].astype("string") == platform
    return images.loc[keep.fillna(False).astype(bool)]


def _text(value: Any) -> str | None:
    return (
        None
        if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value))
        else str(value)
    )


def _records(frame: pd.DataFrame) -> list[dict[Hashable, Any]]:
    """Rows as dicts with NA as None, so they can be compared and copied plainly."""
    out = frame.astype(object).where(frame.notna(), None)
    return out.to_dict("records")


def _group_key(row: Mapping[Hashable, Any]) -> tuple[str | None, str | None]:
    return _text(row.get("registry")), _text(row.get("repository"))


def _track_order(key: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple("" if part is None else str(part) for part in key)


def newest_per_track(
    images: pd.DataFrame,
    by: Literal["version", "created"] = "version",
    *,
    platform: str | None = None,
    prereleases: bool = False,
) -> pd.DataFrame:
    """The newest image of each track, per repository and platform.

    ``by="version"`` takes the highest version (among equal versions, the most
    precise tag: ``3.6.4`` over its floating ``3.6`` and ``3``);
    ``by="created"`` the newest ``created`` time (ties go to the higher
    version).  Pre-releases are candidates only with ``prereleases=True`` or in a
    track that has nothing else.  Tags that are not versions have no track and
    are left out.  ``platform`` keeps one platform; by default every platform
    gets its own row.

    Columns (:data:`NEWEST`): registry, repository, track, platform, tag,
    version, digest, manifest_digest, created, size, and ``candidates``, the
    number of tags that competed.
    """
    if by not in ("version", "created"):
        raise ValueError(f"by must be 'version' or 'created', not {by!r}")
    rows = _records(usable_images(images, platform))
    parsed = versions_of(str(r["tag"]) for r in rows)
    groups: dict[tuple[Any, ...], list[tuple[Version, dict[Hashable, Any]]]] = {}
    for row in rows:
        version = parsed[str(row["tag"])]
        if version is None:
            continue
        key = (*_group_key(row), version.track, _text(row.get("platform")))
        groups.setdefault(key, []).append((version, row))
    out = []
    for key in sorted(groups, key=_track_order):
        members = groups[key]
        releases = [m for m in members if not m[0].is_prerelease]
        candidates = members if prereleases or not releases else releases
        if by == "version":
            version, row = max(candidates, key=lambda m: (m[0].key, m[0].precision, m[1]["created"]))
        else:
            version, row = max(candidates, key=lambda m: (m[1]["created"], m[0].key, m[0].precision))
        out.append(
            {
                "registry": key[0],
                "repository": key[1],
                "track": key[2],
                "platform": key[3],
                "tag": version.tag,
                "version": str(version),
                "digest": row.get("digest"),
                "manifest_digest": row.get("manifest_digest"),
                "created": row["created"],
                "size": row.get("size"),
                "candidates": len(candidates),
            }
        )
    return make_frame(out, NEWEST)


def _clusters(times: list[pd.Timestamp], within: pd.Timedelta | None) -> list[list[int]]:
    """Indices of sorted ``times`` grouped into runs whose successive gaps are at most ``within``."""
    clusters: list[list[int]] = []
    for i, stamp in enumerate(times):
        if clusters and (
            stamp == times[clusters[-1][-1]]
            or (within is not None and stamp - times[clusters[-1][-1]] <= within)
        ):
            clusters[-1].append(i)
        else:
            clusters.append([i])
    return clusters


def release_cadence(
    images: pd.DataFrame,
    *,
    per: Literal["track", "repository"] = "track",
    platform: str | None = DEFAULT_PLATFORM,
    within: str | dt.timedelta | pd.Timedelta | None = "1h",
) -> pd.DataFrame:
    """One row per new image, with the time since the previous one of its track (or repository).

    A new image is a distinct ``created`` time.  Official images rebuild every
    version of a track in one batch, minutes apart, so created times within
    ``within`` of the previous one (default one hour; None for exact times)
    count as one release, dated by its first image.  ``per="repository"``
    pools all tags of a repository (non-versions included) instead of
    splitting by track.  Judged on ``platform`` (default ``linux/amd64``;
    None keeps each platform apart).

    Columns (:data:`CADENCE`): registry, repository, track (NA per repository),
    platform, created, previous (NA for the first), interval_days and tags
    (the tags of that release, in version order, comma separated).
    Summarise with :func:`cadence_summary`.
    """
    if per not in ("track", "repository"):
        raise ValueError(f"per must be 'track' or 'repository', not {per!r}")
    gap = None if within is None else pd.Timedelta(within)
    rows = _records(usable_images(images, platform))
    parsed = versions_of(str(r["tag"]) for r in rows)
    groups: dict[tuple[Any, ...], list[dict[Hashable, Any]]] = {}
    for row in rows:
        version = parsed[str(row["tag"])]
        if per == "track":
            if version is None:
                continue
            track: str | None = version.track
        else:
            track = None
        key = (*_group_key(row), track, _text(row.get("platform")))
        groups.setdefault(key, []).append(row)
    out = []
    for key in sorted(groups, key=_track_order):
        members = sorted(groups[key], key=lambda r: r["created"])
        times = [pd.Timestamp(r["created"]) for r in members]
        previous: pd.Timestamp | None = None
        for cluster in _clusters(times, gap):
            created = times[cluster[0]]
            tags = sort_tags(dict.fromkeys(str(members[i]["tag"]) for i in cluster))
            out.append(
                {
                    "registry": key[0],
                    "repository": key[1],
                    "track": key[2],
                    "platform": key[3],
                    "created": created,
                    "previous": previous,
                    "interval_days": days(created - previous) if previous is not None else None,
                    "tags": ", ".join(tags),
                }
            )
            previous = created
    frame = make_frame(out, CADENCE)
    frame["interval_days"] = frame["interval_days"].astype("float64")
    return frame


def cadence_summary(cadence: pd.DataFrame) -> pd.DataFrame:
    """Summary of a :func:`release_cadence` frame: one row per track (or repository) and platform.

    Columns (:data:`CADENCE_SUMMARY`): registry, repository, track, platform,
    images (releases seen), first, last, and mean/median/min/max of the days
    between releases (NaN with a single release).
    """
    out = []
    keys = ["registry", "repository", "track", "platform"]
    if len(cadence):
        for key, group in cadence.groupby(keys, dropna=False, sort=False):
            intervals = group["interval_days"].dropna()
            out.append(
                {
                    **dict(zip(keys, (_text(k) for k in key), strict=True)),
                    "images": len(group),
                    "first": group["created"].min(),
                    "last": group["created"].max(),
                    "mean_days": intervals.mean() if len(intervals) else None,
                    "median_days": intervals.median() if len(intervals) else None,
                    "min_days": intervals.min() if len(intervals) else None,
                    "max_days": intervals.max() if len(intervals) else None,
                }
            )
    frame = make_frame(out, CADENCE_SUMMARY)
    for column in ("mean_days", "median_days", "min_days", "max_days"):
        frame[column] = frame[column].astype("float64")
    return frame


def shared_digests(images: pd.DataFrame, *, min_tags: int = 2) -> pd.DataFrame:
    """Groups of tags that point at the same (top) digest, such as ``3``, ``3.6`` and ``3.6.4``.

    Only groups of at least ``min_tags`` tags (1 lists every digest).  Rows with
    an error but a digest still count: the tag is known to point there.

    Columns (:data:`SHARED`): registry, repository, digest, n_tags, tags (a
    tuple in version order), most_specific (the most precise, highest version
    tag of the group, else the first tag), platforms (distinct platforms seen)
    and created (the newest created time of the group's images).
    """
    rows = _records(images.loc[images["digest"].notna()])
    groups: dict[tuple[Any, ...], list[dict[Hashable, Any]]] = {}
    for row in rows:
        groups.setdefault((*_group_key(row), str(row["digest"])), []).append(row)
    out = []
    for key, members in groups.items():
        tags = sort_tags(dict.fromkeys(str(r["tag"]) for r in members))
        if len(tags) < min_tags:
            continue
        parsed = [v for v in versions_of(tags).values() if v is not None]
        best = max(parsed, key=lambda v: (v.precision, v.key)).tag if parsed else tags[0]
        created = [r["created"] for r in members if r.get("created") is not None]
        platforms = {r.get("platform") for r in members if r.get("platform") is not None}
        out.append(
            {
                "registry": key[0],
                "repository": key[1],
                "digest": key[2],
                "n_tags": len(tags),
                "tags": tuple(tags),
                "most_specific": best,
                "platforms": len(platforms),
                "created": max(created) if created else None,
            }
        )
    order = {tag: i for i, tag in enumerate(sort_tags(o["most_specific"] for o in out))}
    out.sort(key=lambda o: (o["registry"] or "", o["repository"] or "", order[o["most_specific"]]))
    return make_frame(out, SHARED)


def tag_ages(
    images: pd.DataFrame,
    now: Any = None,
    *,
    per: Literal["tag", "platform"] = "tag",
    platform: str | None = None,
) -> pd.DataFrame:
    """How old each tag's image is: ``now - created`` in days.

    ``per="platform"`` gives one row per tag and platform; ``per="tag"`` one per
    tag, for its newest platform image (the platform column says which).
    ``now`` defaults to the current time.

    Columns (:data:`AGES`): registry, repository, tag, platform, track, version
    (NA for non-versions), created, age_days.  Rows in :func:`sort_tags` order.
    """
    if per not in ("tag", "platform"):
        raise ValueError(f"per must be 'tag' or 'platform', not {per!r}")
    stamp = as_now(now)
    rows = _records(usable_images(images, platform))
    if per == "tag":
        newest: dict[tuple[Any, ...], dict[Hashable, Any]] = {}
        for row in rows:
            key = (*_group_key(row), str(row["tag"]))
            if key not in newest or row["created"] > newest[key]["created"]:
                newest[key] = row
        rows = list(newest.values())
    parsed = versions_of(str(r["tag"]) for r in rows)
    order = {tag: i for i, tag in enumerate(sort_tags(parsed))}
    rows.sort(key=lambda r: (*_track_order(_group_key(r)), order[str(r["tag"])], r.get("platform") or ""))
    out = []
    for row in rows:
        version = parsed[str(row["tag"])]
        out.append(
            {
                "registry": row.get("registry"),
                "repository": row.get("repository"),
                "tag": row["tag"],
                "platform": row.get("platform"),
                "track": version.track if version else None,
                "version": str(version) if version else None,
                "created": row["created"],
                "age_days": days(stamp - row["created"]),
            }
        )
    frame = make_frame(out, AGES)
    frame["age_days"] = frame["age_days"].astype("float64")
    return frame


def classify_changes(timeline: pd.DataFrame) -> pd.DataFrame:
    """Mark each change of a tag's digest as a ``rebuild`` or a mere ``repush``.

    ``timeline`` has one row per sighting of a tag's top digest, shaped like
    ``timeline.csv``: ``image`` (or ``repository``), ``tag``, ``seen_at``,
    ``index_digest`` (or ``digest``) and ``newest_created`` (the newest created
    time of the judged platform's image).  Per tag, in ``seen_at`` order, each
    row is:

    * ``first``: the tag's first sighting, nothing to compare with;
    * ``unchanged``: same digest as before;
    * ``rebuild``: a new digest with a newer image;
    * ``repush``: a new digest, same newest created time: the index was
      re-pushed (another platform finished), the image was not rebuilt;
    * ``revert``: a new digest with an older image (the tag was moved back);
    * ``unknown``: a created time is missing on either side.

    Columns (:data:`CHANGES`): image, tag, seen_at, index_digest,
    newest_created, previous_digest, previous_created, change.
    """
    image_col = "image" if "image" in timeline else "repository"
    digest_col = "index_digest" if "index_digest" in timeline else "digest"
    source = timeline.reset_index(drop=True)
    frame = pd.DataFrame(
        {
            "image": source[image_col].astype("string"),
            "tag": source["tag"].astype("string"),
            "seen_at": to_utc(source["seen_at"]),
            "index_digest": source[digest_col].astype("string"),
            "newest_created": to_utc(source["newest_created"]),
        }
    ).sort_values(["image", "tag", "seen_at"], kind="stable")
    groups = frame.groupby(["image", "tag"], sort=False, dropna=False)
    previous_digest = groups["index_digest"].shift()
    previous_created = groups["newest_created"].shift()
    new, old = frame["newest_created"], previous_created
    first = groups.cumcount() == 0
    same_digest = (previous_digest == frame["index_digest"]).fillna(False).astype(bool)
    known = new.notna() & old.notna()
    change = pd.Series("unknown", index=frame.index, dtype=object)
    change[known & (new > old)] = "rebuild"
    change[known & (new == old)] = "repush"
    change[known & (new < old)] = "revert"
    change[same_digest] = "unchanged"
    change[first] = "first"
    frame["previous_digest"] = previous_digest.astype("string")
    frame["previous_created"] = previous_created
    frame["change"] = pd.Categorical(change, categories=CHANGE_KINDS)
    frame = frame.reset_index(drop=True)
    return frame[[c for c, _ in CHANGES]].astype({c: d for c, d in CHANGES if d != "category"})


def repush_share(changes: pd.DataFrame) -> float:
    """The share of digest changes that were re-pushes (``first`` and ``unchanged`` rows left out).

    NaN when there are no changes.
    """
    kinds = changes["change"].astype("string")
    moved = kinds.isin(["rebuild", "repush", "revert", "unknown"])
    total = int(moved.sum())
    return float((kinds[moved] == "repush").sum()) / total if total else float("nan")
