"""Tests of regdata.analysis.plots: every plot renders, empty or with 250 tags, without overlapping tick labels."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import pandas as pd
import pytest
from matplotlib.axes import Axes
from test_freshness import hub_images

from regdata.analysis.fleet import fleet_freshness, read_fleet
from regdata.analysis.plots import (
    fleet_freshness_plot,
    release_cadence_plot,
    size_over_versions,
    tag_timeline,
)
from regdata.frames import IMAGE_CATEGORIES, IMAGES, make_frame

DPI = 40  # enough to lay text out; low to keep the tests fast


@cache
def images_250() -> pd.DataFrame:
    """250 real tags: all of python's and the first 86 of node's, every platform."""
    frame = hub_images("python", "node")
    pairs = list(zip(frame["repository"], frame["tag"], strict=True))
    keep = set(list(dict.fromkeys(pairs))[:250])
    return frame.loc[[p in keep for p in pairs]].reset_index(drop=True)


@cache
def fleet_250() -> pd.DataFrame:
    frame = images_250()
    refs = dict.fromkeys(
        f"{r.removeprefix('library/')}:{t}" for r, t in zip(frame["repository"], frame["tag"], strict=True)
    )
    fleet = read_fleet("\n".join([*refs, "Bad:Ref"]))
    return fleet_freshness(fleet, frame, now="2018-02-01")


def empty_images() -> pd.DataFrame:
    return make_frame([], IMAGES, IMAGE_CATEGORIES)


def images_plot(function: Callable[..., Axes]) -> Callable[[pd.DataFrame, Axes | None], Axes]:
    return lambda frame, ax: function(frame, ax=ax)


def fleet_plot(frame: pd.DataFrame, ax: Axes | None) -> Axes:
    if frame.empty:
        return fleet_freshness_plot(fleet_freshness(read_fleet("# none\n"), {}), ax=ax)
    return fleet_freshness_plot(fleet_250(), ax=ax)


PLOTS = {
    "tag_timeline": images_plot(tag_timeline),
    "release_cadence_plot": images_plot(release_cadence_plot),
    "size_over_versions": images_plot(size_over_versions),
    "fleet_freshness_plot": fleet_plot,
}


def overlapping(ax: Axes) -> list[tuple[str, str]]:
    """Pairs of visible tick labels (on either axis) whose boxes overlap.

    Labels of one axis stand in a row, so comparing each with its neighbours
    along the axis finds every overlap.
    """
    renderer = ax.figure.canvas.get_renderer()  # type: ignore[attr-defined]
    clashes = []
    for labels, along in ((ax.get_xticklabels(), "x0"), (ax.get_yticklabels(), "y0")):
        shown = [label for label in labels if label.get_visible() and label.get_text()]
        boxes = sorted(
            ((label.get_window_extent(renderer), label.get_text()) for label in shown),
            key=lambda item: float(getattr(item[0], along)),
        )
        for (box_a, text_a), (box_b, text_b) in itertools.pairwise(boxes):
            if box_a.overlaps(box_b):
                clashes.append((text_a, text_b))
    return clashes


def render(ax: Axes, path: Path) -> None:
    ax.figure.savefig(path, dpi=DPI)
    assert path.stat().st_size > 0


@pytest.fixture(autouse=True)
def _close_figures() -> Any:
    yield
    plt.close("all")


@pytest.mark.parametrize("name", list(PLOTS))
def test_renders_empty(name: str, tmp_path: Path) -> None:
    ax = PLOTS[name](empty_images(), None)
    assert isinstance(ax, Axes) and ax.get_title()
    render(ax, tmp_path / f"{name}-empty.png")


@pytest.mark.parametrize("name", list(PLOTS))
def test_renders_250_tags_without_overlapping_labels(name: str, tmp_path: Path) -> None:
    ax = PLOTS[name](images_250(), None)
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    render(ax, tmp_path / f"{name}.png")
    assert overlapping(ax) == []
    assert len([t for t in ax.get_yticklabels() + ax.get_xticklabels() if t.get_text()]) >= 3


def test_a_given_small_axes_thins_labels_further(tmp_path: Path) -> None:
    _, (left, _right) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    assert tag_timeline(images_250(), ax=left) is left
    render(left, tmp_path / "two.png")
    assert overlapping(left) == []
    shown = [t.get_text() for t in left.get_yticklabels() if t.get_text()]
    assert 5 <= len(shown) < 60
    assert shown[0] == "node:4"  # tags run top-down in version order, from the first one


def test_timeline_markers_per_platform_and_dates() -> None:
    ax = tag_timeline(hub_images("nginx"))
    handles, labels = ax.get_legend_handles_labels()
    assert labels[0] == "linux/amd64" and len(labels) == 6
    assert len({h.get_paths()[0].vertices.tobytes() for h in handles}) == 6  # a marker shape each
    ax.figure.set_dpi(DPI)
    ax.figure.canvas.draw()
    assert any(t.get_text() in ("Jan", "2018") for t in ax.get_xticklabels())


def test_fleet_bars_coloured_by_status() -> None:
    fresh = fleet_250()
    ax = fleet_freshness_plot(fresh.iloc[::25])
    colours = {tuple(round(c, 3) for c in patch.get_facecolor()) for patch in ax.patches}
    assert len(colours) >= 2
    legend = ax.get_legend()
    assert legend is not None
    assert {t.get_text() for t in legend.get_texts()} <= {"current", "behind", "unknown", "error"}


def test_size_in_megabytes_and_log_scale_for_windows() -> None:
    nginx = size_over_versions(hub_images("nginx"), track="alpine")
    assert nginx.get_yscale() == "linear" and nginx.get_ylabel() == "size (MB)"
    ys = [y for line in nginx.get_lines() for y in line.get_ydata()]
    assert min(ys) > 1 and max(ys) < 100  # nginx alpine images are a few MB
    assert size_over_versions(hub_images("python")).get_yscale() == "log"


def test_every_row_of_250_tags_is_labelled_with_its_own_tag(tmp_path: Path) -> None:
    """A dot sits beside its own tag's name: each y tick's label is the tag plotted at that y."""
    frame = images_250()
    ax = tag_timeline(frame)
    render(ax, tmp_path / "timeline.png")
    label_at = {
        round(float(y)): label.get_text()
        for y, label in zip(ax.get_yticks(), ax.get_yticklabels(), strict=True)
    }
    points = [(float(x), round(float(y))) for c in ax.collections for x, y in c.get_offsets()]
    assert {y for _, y in points} == set(label_at) and all(label_at.values())  # each row labelled
    # Every dot: its date is the created time of the tag named at its row.
    several = frame["repository"].nunique() > 1
    truth = {
        (
            float(mdates.date2num(created.tz_localize(None))),
            f"{repo.rsplit('/', 1)[-1]}:{tag}" if several else str(tag),
        )
        for repo, tag, created in zip(frame["repository"], frame["tag"], frame["created"], strict=True)
        if pd.notna(created)
    }
    wrong = [(label_at[y], x) for x, y in points if (x, label_at[y]) not in truth]
    assert wrong == []
    assert overlapping(ax) == []
