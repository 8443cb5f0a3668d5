"""Plots of images and fleet frames (matplotlib).

Each function takes an optional ``ax`` and returns the axes it drew on; with
no ``ax`` it makes a figure sized for the data (taller for many tags).  Tick
labels are thinned to every Nth when there are more than the axis can show
without overlap, so 250 tags stay legible.  Dates use matplotlib's
``AutoDateLocator`` and ``ConciseDateFormatter``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import matplotlib.dates as mdates
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, Locator, NullLocator

from regdata.analysis.fleet import STATUS_COLOURS, STATUS_ORDER
from regdata.analysis.freshness import DEFAULT_PLATFORM, release_cadence, usable_images
from regdata.analysis.versions import Version, floating_tags, sort_tags, versions_of
from regdata.oci.reference import short_name

__all__ = [
    "STATUS_COLOURS",
    "fleet_freshness_plot",
    "release_cadence_plot",
    "size_over_versions",
    "tag_timeline",
]

_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")
_TICK_FONT = 7.5
# Room a tick label needs along its axis, in multiples of its font size.
_LABEL_PITCH = 1.4
_MAX_LEGEND = 12
# The tallest tag timeline regdata draws (inches): its every row labelled up to about 750 tags.
_TIMELINE_HIGH = 120.0


def _axes(ax: Axes | None, width: float, height: float) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, new = plt.subplots(figsize=(width, height), layout="constrained")
    return new


def _height_for(rows: int, per_row: float = 0.13, low: float = 4.0, high: float = 22.0) -> float:
    return min(max(1.8 + per_row * rows, low), high)


class _ThinLocator(Locator):
    """Ticks at given positions, every Nth one, N chosen at draw time so labels do not overlap.

    Deciding at draw time (rather than when plotting) uses the axes' final
    size, after the layout engine has run and whatever axes the caller gave.
    """

    def __init__(self, positions: Sequence[float], axis_name: Literal["x", "y"], font_points: float) -> None:
        self.positions = list(positions)
        self.axis_name = axis_name
        self.font_points = font_points

    def __call__(self) -> Sequence[float]:
        if not isinstance(self.axis, Axis) or not self.positions:
            return self.positions
        low, high = sorted(self.axis.get_view_interval())
        visible = [p for p in self.positions if low <= p <= high]
        axes = self.axis.axes
        box = axes.get_window_extent()
        length = box.height if self.axis_name == "y" else box.width
        pitch = self.font_points * _LABEL_PITCH * axes.figure.dpi / 72
        fits = max(1, int(length // pitch)) if pitch > 0 else len(visible)
        step = max(1, math.ceil(len(visible) / fits))
        return visible[::step]

    def tick_values(self, vmin: float, vmax: float) -> Sequence[float]:
        return [p for p in self.positions if vmin <= p <= vmax]


def _fit_ticks(
    ax: Axes,
    axis: Literal["x", "y"],
    positions: Sequence[float],
    labels: Sequence[str],
    rotation: float = 0,
) -> None:
    """Label positions with ``labels``, every Nth one so that they do not overlap."""
    text = dict(zip(positions, labels, strict=True))
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_locator(_ThinLocator(positions, axis, _TICK_FONT))
    target.set_major_formatter(FuncFormatter(lambda value, _: text.get(value, text.get(round(value), ""))))
    target.set_minor_locator(NullLocator())
    ax.tick_params(axis=axis, labelsize=_TICK_FONT, labelrotation=rotation)


def _date_axis(ax: Axes, label: str, times: pd.Series) -> None:
    """Dates on the x axis; the span goes into the axis label rather than an offset text.

    ConciseDateFormatter's offset text sits under the right end of the axis,
    where it runs into the axis label on narrow axes.
    """
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(
        mdates.ConciseDateFormatter(locator, show_offset=False)  # type: ignore[no-untyped-call]
    )
    first, last = times.min(), times.max()
    span = f"{first:%Y-%m-%d}" if first == last else f"{first:%Y-%m-%d} to {last:%Y-%m-%d}"
    ax.set_xlabel(f"{label} ({span}, UTC)")


def _title(ax: Axes, text: str) -> None:
    # A fixed height spares matplotlib measuring every tick label at each draw to place the
    # title above top-side labels, which these plots do not have (a second per 250 labels).
    ax.set_title(text, y=1.0)


def _no_data(ax: Axes, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="#777777")
    ax.set_xticks([])
    ax.set_yticks([])


def _short_repo(repository: Any) -> str:
    return "" if repository is None or pd.isna(repository) else str(repository).removeprefix("library/")


def _title_repo(frame: pd.DataFrame) -> str:
    repos = sorted({_short_repo(r) for r in frame["repository"].dropna()}) if "repository" in frame else []
    if len(repos) == 1:
        return f" — {repos[0]}"
    return f" — {len(repos)} repositories" if repos else ""


def _tag_labels(frame: pd.DataFrame) -> tuple[list[tuple[str, str]], list[str]]:
    """(repository, tag) pairs in version order, and their labels (``repo:tag`` when several repos)."""
    pairs = {(_short_repo(r), str(t)) for r, t in zip(frame["repository"], frame["tag"], strict=True)}
    order = {tag: i for i, tag in enumerate(sort_tags({t for _, t in pairs}))}
    ordered = sorted(pairs, key=lambda p: (p[0], order[p[1]]))
    several = len({r for r, _ in ordered}) > 1
    return ordered, [f"{r}:{t}" if several else t for r, t in ordered]


def _series(frame: pd.DataFrame) -> pd.Series:
    """Platform names to plot by; Windows ones with their OS build, as one tag has several."""
    versions = frame["os_version"] if "os_version" in frame else pd.Series(None, index=frame.index)
    names = []
    for platform, version in zip(frame["platform"], versions, strict=True):
        name = "" if pd.isna(platform) else str(platform)
        if not pd.isna(version) and version:
            name += " " + ".".join(str(version).split(".")[:3])
        names.append(name or None)
    return pd.Series(names, index=frame.index, dtype=object)


def _platform_order(names: pd.Series) -> list[str]:
    return sorted({str(n) for n in names.dropna()}, key=lambda p: (not p.startswith(DEFAULT_PLATFORM), p))


def _legend(ax: Axes, **kwargs: Any) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(
            handles[:_MAX_LEGEND],
            labels[:_MAX_LEGEND],
            fontsize="small",
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            borderaxespad=0.0,
            **kwargs,
        )


def tag_timeline(images: pd.DataFrame, ax: Axes | None = None, *, platform: str | None = None) -> Axes:
    """Created time of each tag's image, one marker shape per platform, tags in version order.

    Tags run top to bottom in :func:`~regdata.analysis.versions.sort_tags` order
    (versions by track, then non-versions).  ``platform`` keeps one platform.
    """
    rows = usable_images(images, platform)
    pairs, labels = _tag_labels(rows) if len(rows) else ([], [])
    # Every row gets its own label, so the figure grows with the tags: a thinned axis left
    # unlabelled dots beside a neighbour's name, and readers took the neighbour's date.
    ax = _axes(ax, 10.0, _height_for(len(pairs), per_row=0.155, high=_TIMELINE_HIGH))
    _title(ax, f"Image created time per tag{_title_repo(images)}")
    ax.set_xlabel("created (UTC)")
    ax.set_ylabel("tag (version order)")
    if not len(rows):
        _no_data(ax, "no images")
        ax.set_yticks([])
        return ax
    position = {pair: i for i, pair in enumerate(pairs)}
    ys = [position[(_short_repo(r), str(t))] for r, t in zip(rows["repository"], rows["tag"], strict=True)]
    plotted = rows.assign(_y=ys, _series=_series(rows))
    small = 18 if len(pairs) < 60 else 10
    for i, name in enumerate(_platform_order(plotted["_series"])):
        part = plotted.loc[plotted["_series"] == name]
        ax.scatter(
            part["created"].dt.tz_localize(None),
            part["_y"],
            s=small,
            marker=_MARKERS[i % len(_MARKERS)],
            label=str(name),
            alpha=0.75,
            linewidths=0.5,
        )
    ax.set_ylim(len(pairs), -1)
    ax.grid(axis="both", color="#e4e4e4", linewidth=0.5)
    ax.set_axisbelow(True)
    _date_axis(ax, "created", rows["created"])
    _fit_ticks(ax, "y", list(range(len(pairs))), labels)
    # Past what even a tall figure (or a caller's axes) can label, a tick mark on every row
    # shows that an unlabelled dot is a row of its own, not the labelled one beside it.
    ax.yaxis.set_minor_locator(FixedLocator(list(range(len(pairs)))))
    _legend(ax, title="platform", title_fontsize="small")
    return ax


def fleet_freshness_plot(freshness: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Lag of each deployed image behind the newest version of its track, bars coloured by status.

    Takes a :func:`~regdata.analysis.fleet.fleet_freshness` frame.  Rows without a lag
    (unknown, error) get an empty bar and their status written in; worst lags
    come first (at the top).
    """
    n = len(freshness)
    # Every bar needs its own label, so the figure grows with the fleet rather than thinning labels.
    ax = _axes(ax, 10.0, _height_for(n, per_row=0.155, low=3.0, high=45.0))
    counts = freshness["status"].astype("string").value_counts() if n else pd.Series(dtype="int64")
    summary = ", ".join(f"{counts[s]} {s}" for s in STATUS_COLOURS if s in counts)
    _title(ax, f"Fleet freshness ({n} images{': ' + summary if summary else ''})")
    ax.set_xlabel("lag behind the newest version of the track (days)")
    ax.set_ylabel("deployed image")
    if not n:
        _no_data(ax, "no deployed images")
        ax.set_yticks([])
        return ax
    rank = {s: i for i, s in enumerate(STATUS_ORDER)}  # the report's tables' order
    frame = freshness.assign(
        _rank=freshness["status"].astype("string").map(rank).fillna(len(rank)),
        _lag=freshness["lag_days"].astype("float64"),
    ).sort_values(["_rank", "_lag"], ascending=[True, False], na_position="last", kind="stable")
    labels = []
    for image, workload, container in zip(frame["image"], frame["workload"], frame["container"], strict=True):
        where = "/".join(str(p) for p in (workload, container) if p is not None and not pd.isna(p))
        text = ("" if pd.isna(image) else short_name(str(image))) + (f"  ({where})" if where else "")
        labels.append(text if len(text) <= 70 else text[:67] + "...")
    ys = list(range(n))
    lags = frame["_lag"].fillna(0.0).tolist()
    colours = [STATUS_COLOURS.get(str(s), "#9e9e9e") for s in frame["status"]]
    ax.barh(ys, lags, color=colours, height=0.7)
    # A dot shows the status also where there is no bar (no lag, or lag unknown).
    ax.scatter(lags, ys, c=colours, s=12 if n > 60 else 20, zorder=3, marker="o", linewidths=0, clip_on=False)
    ax.set_ylim(n - 0.5, -0.5)
    top = max([*lags, 1.0])
    if n <= 60:
        for y, (lag, status, newer) in enumerate(
            zip(frame["_lag"], frame["status"], frame["newer_versions"], strict=True)
        ):
            note = f"{lag:.1f} d" if not pd.isna(lag) else str(status)
            if not pd.isna(newer) and newer:
                note += f", {newer} newer"
            x = (0.0 if pd.isna(lag) else lag) + top * 0.015
            ax.text(x, y, note, va="center", fontsize=7, color="#333333")
    ax.set_xlim(-top * 0.015, top * (1.18 if n <= 60 else 1.02))
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    _fit_ticks(ax, "y", ys, labels)
    present = [s for s in STATUS_COLOURS if s in set(frame["status"].astype("string").dropna())]
    ax.legend(
        handles=[Patch(color=STATUS_COLOURS[s], label=s) for s in present],
        fontsize="small",
        loc="lower right",
        title="status",
        title_fontsize="small",
    )
    return ax


def release_cadence_plot(
    images: pd.DataFrame,
    ax: Axes | None = None,
    *,
    per: Literal["track", "repository"] = "track",
    platform: str | None = DEFAULT_PLATFORM,
) -> Axes:
    """Releases over time, one row per track (or repository), labelled with the median interval.

    A release is a new created time (see
    :func:`~regdata.analysis.freshness.release_cadence`, whose ``per`` and
    ``platform`` this passes on); the spacing of the markers is the cadence.
    """
    cadence = release_cadence(images, per=per, platform=platform) if len(images) else None
    groups: list[tuple[str, pd.DataFrame]] = []
    if cadence is not None and len(cadence):
        keys = cadence["repository"].map(_short_repo)
        several = keys.nunique() > 1
        if per == "track":
            names = cadence["track"].fillna("").map(lambda t: t or "(plain)")
            keys = (keys + ":" + names) if several else names
        for name, part in cadence.groupby(keys, sort=False):
            groups.append((str(name), part))
        groups.sort(key=lambda g: g[0])
    ax = _axes(ax, 10.0, _height_for(len(groups), per_row=0.28, low=3.5))
    where = f", {platform}" if platform else ""
    _title(ax, f"Release cadence per {per}{_title_repo(images)}{where}")
    ax.set_xlabel("release (created time, UTC)")
    ax.set_ylabel(per)
    if not groups:
        _no_data(ax, "no releases")
        ax.set_yticks([])
        return ax
    labels = []
    for y, (name, part) in enumerate(groups):
        times = part["created"].dt.tz_localize(None)
        ax.plot(times, [y] * len(part), color="#1f77b4", linewidth=0.6, alpha=0.5)
        ax.scatter(times, [y] * len(part), s=16, color="#1f77b4", zorder=3)
        median = part["interval_days"].median()
        every = f", every {median:.1f} d" if not pd.isna(median) else ""
        count = f"{len(part)} release{'s' if len(part) > 1 else ''}"
        labels.append(f"{name} ({count}{every})")
    ax.set_ylim(-1, len(groups))
    ax.invert_yaxis()
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    _date_axis(ax, "release", cadence["created"] if cadence is not None else pd.Series(dtype=object))
    _fit_ticks(ax, "y", list(range(len(groups))), labels)
    return ax


def _track_of(parsed: Mapping[str, Version | None], tag: str) -> str:
    version = parsed.get(tag)
    return version.track if version is not None else ""


def size_over_versions(
    images: pd.DataFrame,
    ax: Axes | None = None,
    *,
    track: str | None = None,
    floating: bool = False,
) -> Axes:
    """Compressed image size (MB) of each version, one line per platform, versions in order.

    Only version tags; with ``track`` only that track.  Floating tags (``3``,
    ``3.6`` beside ``3.6.4``) show the same image twice and are left out unless
    ``floating=True``.  Lines do not join different tracks.
    """
    rows = usable_images(images)
    rows = rows.loc[rows["size"].notna()]
    parsed = versions_of(str(t) for t in rows["tag"])
    versions = [v for v in parsed.values() if v is not None and (track is None or v.track == track)]
    if not floating:
        hidden = floating_tags(versions)
        versions = [v for v in versions if v.tag not in hidden]
    ordered = sort_tags(v.tag for v in versions)
    ax = _axes(ax, max(8.0, min(0.12 * len(ordered) + 4.0, 20.0)), 5.5)
    which = f" in track {track!r}" if track else ""
    _title(ax, f"Compressed image size by version{which}{_title_repo(images)}")
    ax.set_xlabel("tag (version order)")
    ax.set_ylabel("size (MB)")
    if not ordered:
        _no_data(ax, "no versioned images with a size")
        ax.set_xticks([])
        return ax
    position = {tag: i for i, tag in enumerate(ordered)}
    kept = rows.loc[rows["tag"].astype(str).isin(position)]
    kept = kept.assign(
        _x=kept["tag"].astype(str).map(position),
        _mb=kept["size"].astype("float64") / 1e6,
        _track=kept["tag"].astype(str).map(lambda t: _track_of(parsed, t)),
        _series=_series(kept),
    )
    platforms = _platform_order(kept["_series"])
    colours = [f"C{i % 10}" for i in range(len(platforms))]
    for i, name in enumerate(platforms):
        part = kept.loc[kept["_series"] == name].sort_values("_x")
        first = True
        for _, segment in part.groupby("_track", sort=False):
            ax.plot(
                segment["_x"],
                segment["_mb"],
                marker=_MARKERS[i % len(_MARKERS)],
                markersize=3.5,
                linewidth=1.0,
                color=colours[i],
                label=str(name) if first else None,
            )
            first = False
    tracks = [_track_of(parsed, t) for t in ordered]
    for x in range(1, len(ordered)):
        if tracks[x] != tracks[x - 1]:
            ax.axvline(x - 0.5, color="#cccccc", linewidth=0.6, zorder=0)
    ax.set_xlim(-1, len(ordered))
    sizes = kept["_mb"].loc[kept["_mb"] > 0]
    # Windows images (GBs) beside Alpine ones (MBs) would flatten the small ones to zero.
    if len(sizes) and sizes.max() / sizes.min() > 30:
        ax.set_yscale("log")
        ax.set_ylabel("size (MB, log scale)")
    else:
        ax.set_ylim(bottom=0)
    ax.grid(axis="y", color="#eeeeee", linewidth=0.6)
    _fit_ticks(ax, "x", list(range(len(ordered))), ordered, rotation=90)
    _legend(ax, title="platform", title_fontsize="small")
    return ax
