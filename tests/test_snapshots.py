"""Tests of regdata.analysis.snapshots: exact round trips through Parquet and CSV; diffs of two scans."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from test_freshness import hub_images

from regdata.analysis import snapshots
from regdata.analysis.fleet import fleet_freshness, read_fleet
from regdata.analysis.freshness import shared_digests, tag_ages
from regdata.analysis.snapshots import DIFF, diff_snapshots, load_snapshot, save_snapshot
from regdata.frames import HISTORY, IMAGE_CATEGORIES, IMAGES, REQUEST_CATEGORIES, REQUESTS, make_frame

FORMATS = ["parquet", "csv"]


def awkward_images() -> pd.DataFrame:
    """Real nginx rows plus the values that break naive CSV: NA vs empty, dicts, commas, quotes, newlines."""
    frame = hub_images("nginx")
    frame.at[0, "labels"] = {
        "maintainer": "NGINX Docker Maintainers <docker-maint@nginx.com>",
        "n": None,
        "nested": {"a": [1, 2.5, True]},
    }
    frame.at[1, "annotations"] = {}
    frame.at[2, "annotations"] = {"org.opencontainers.image.title": 'a "quoted", comma\nnewline'}
    frame.loc[3, "size"] = pd.NA
    frame.loc[4, "error"] = 'manifest unknown: tag, "x"\nnot found'
    frame.loc[5, "os_version"] = ""
    frame.loc[6, "created"] = pd.NaT
    frame.loc[7, "created"] = pd.Timestamp("2018-01-01T00:00:00.123456789Z")
    frame.loc[8, "kind"] = pd.NA
    frame.loc[9, "tag"] = "NA"
    frame.loc[10, "variant"] = "null"
    return frame


@pytest.mark.parametrize("fmt", FORMATS)
def test_images_round_trip_exactly(tmp_path: Path, fmt: str) -> None:
    frame = awkward_images()
    path = save_snapshot(frame, tmp_path / f"images.{fmt}")
    back = load_snapshot(path)
    pd.testing.assert_frame_equal(back, frame)
    assert back.at[0, "labels"]["nested"] == {"a": [1, 2.5, True]}
    assert back.at[1, "annotations"] == {} and back.at[3, "annotations"] is None
    assert back.at[5, "os_version"] == "" and pd.isna(back.at[6, "os_version"])
    assert back.at[7, "created"].nanosecond == 789
    assert back.at[9, "tag"] == "NA" and back.at[10, "variant"] == "null"


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("schema", [IMAGES, HISTORY, REQUESTS], ids=["images", "history", "requests"])
def test_empty_frames_keep_their_schema(tmp_path: Path, fmt: str, schema: Any) -> None:
    name = {IMAGES: "images", HISTORY: "history", REQUESTS: "requests"}[schema]
    categories = {"images": IMAGE_CATEGORIES, "history": None, "requests": REQUEST_CATEGORIES}[name]
    frame = make_frame([], schema, categories)
    back = load_snapshot(save_snapshot(frame, tmp_path / f"{name}.{fmt}"))
    pd.testing.assert_frame_equal(back, frame)
    for column, dtype in frame.dtypes.items():
        if isinstance(dtype, pd.CategoricalDtype):
            assert list(back[column].cat.categories) == list(dtype.categories)


@pytest.mark.parametrize("fmt", FORMATS)
def test_analytics_frames_round_trip(tmp_path: Path, fmt: str) -> None:
    images = hub_images("redis")
    shared = shared_digests(images)  # a column of tuples
    ages = tag_ages(images, now="2018-02-01")  # floats, NA strings
    fresh = fleet_freshness(
        read_fleet("redis:3.2\nredis@sha256:" + "0" * 64 + "\nRedis\n"), {"redis": images}, now="2018-02-01"
    )  # nullable booleans, a status category
    for name, frame in {"shared": shared, "ages": ages, "fresh": fresh}.items():
        back = load_snapshot(save_snapshot(frame, tmp_path / f"{name}.{fmt}"))
        pd.testing.assert_frame_equal(back, frame)
    assert isinstance(load_snapshot(tmp_path / f"shared.{fmt}").at[0, "tags"], tuple)


def test_frame_index_is_not_kept(tmp_path: Path) -> None:
    frame = hub_images("alpine").iloc[5:9]
    back = load_snapshot(save_snapshot(frame, tmp_path / "part.csv"))
    pd.testing.assert_frame_equal(back, frame.reset_index(drop=True))


def test_csv_is_written_when_pyarrow_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshots, "_has_pyarrow", lambda: False)
    frame = hub_images("alpine")
    with pytest.warns(UserWarning, match="pyarrow is not installed"):
        path = save_snapshot(frame, tmp_path / "images.parquet")
    assert path.read_text().startswith("#regdata-snapshot ")
    pd.testing.assert_frame_equal(load_snapshot(path), frame)


def test_other_suffixes_are_csv(tmp_path: Path) -> None:
    path = save_snapshot(hub_images("alpine"), tmp_path / "images.snapshot")
    assert path.read_text().startswith("#regdata-snapshot ")


# -- diff ---------------------------------------------------------------------


def d(n: int) -> str:
    return f"sha256:{n:064x}"


def row(
    tag: str,
    digest: int,
    created: str | None,
    platform: str = "linux/amd64",
    manifest: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "registry": "docker.io",
        "repository": "library/app",
        "tag": tag,
        "digest": d(digest),
        "kind": "index",
        "platform": platform,
        "manifest_digest": d(manifest if manifest is not None else digest + 100),
        "created": None if created is None else f"{created}T00:00:00Z",
        **extra,
    }


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return make_frame(rows, IMAGES, IMAGE_CATEGORIES)


def test_diff_snapshots_by_hand() -> None:
    old = frame(
        [
            row("1.0", 1, "2024-01-01"),
            row("1.0", 1, "2024-01-01", "linux/arm64", manifest=201),
            row("1.1", 2, "2024-02-01"),
            row("1.1", 2, "2024-02-01", "linux/arm64", manifest=202),
            row("latest", 2, "2024-02-01"),
            row("0.9", 9, "2023-12-01"),
            row("broken", 8, "2024-01-01"),
            {**row("1.1", 2, None, platform=None), "kind": "artifact"},
        ]
    )
    new = frame(
        [
            row("1.0", 1, "2024-01-01"),  # unchanged
            row("1.0", 1, "2024-01-01", "linux/arm64", manifest=201),
            row("1.1", 3, "2024-02-01", manifest=102),  # index re-pushed, amd64 image the same
            row("1.1", 3, "2024-02-01", "linux/arm64", manifest=303),  # arm64 pushed later, same created
            row("latest", 4, "2024-03-01"),  # rebuilt
            row("1.2", 4, "2024-03-01"),  # new tag
            row("broken", 8, None, error="blob unknown", kind="index"),  # failed to read: not "removed"
            {**row("1.1", 3, None, platform=None), "kind": "artifact"},
        ]
    )
    diff = diff_snapshots(old, new)
    assert [(c, str(t)) for c, t in diff.dtypes.items()] == list(DIFF)
    got = diff[["tag", "platform", "change", "rebuild"]].astype(object).values.tolist()
    assert got == [
        ["0.9", "linux/amd64", "removed", False],
        ["1.1", "linux/amd64", "moved", False],
        ["1.1", "linux/arm64", "moved", False],
        ["1.2", "linux/amd64", "added", False],
        ["latest", "linux/amd64", "moved", True],
    ]
    latest = diff.iloc[-1]
    assert (latest["old_digest"], latest["new_digest"]) == (d(2), d(4))
    assert (latest["old_created"], latest["new_created"]) == (
        pd.Timestamp("2024-02-01", tz="UTC"),
        pd.Timestamp("2024-03-01", tz="UTC"),
    )
    removed = diff.iloc[0]
    assert (
        removed["old_digest"] == d(9) and pd.isna(removed["new_digest"]) and pd.isna(removed["new_created"])
    )
    added = diff.set_index("tag").loc["1.2"]
    assert added["new_manifest_digest"] == d(104) and pd.isna(added["old_digest"])
    assert list(diff["change"].cat.categories) == ["added", "removed", "moved"]


def test_diff_of_identical_and_empty_snapshots() -> None:
    images = hub_images("busybox")
    assert diff_snapshots(images, images).empty
    empty = make_frame([], IMAGES, IMAGE_CATEGORIES)
    everything = diff_snapshots(empty, images)
    assert (everything["change"] == "added").all() and len(everything) == len(images)
    assert [(c, str(t)) for c, t in diff_snapshots(empty, empty).dtypes.items()] == list(DIFF)


def test_diff_keeps_windows_os_builds_apart() -> None:
    old = hub_images("python")
    windows = old.loc[old["tag"] == "3.6.4-windowsservercore"]
    assert len(windows) == 2 and windows["platform"].nunique() == 1  # one per OS build
    new = old.copy()
    second = windows.index[1]
    new.loc[second, "manifest_digest"] = d(7)
    new.loc[second, "created"] = new.loc[second, "created"] + pd.Timedelta(days=3)
    diff = diff_snapshots(old, new)
    assert len(diff) == 1
    assert diff.iloc[0][["tag", "os_version", "change", "rebuild"]].tolist() == [
        "3.6.4-windowsservercore",
        new.loc[second, "os_version"],
        "moved",
        True,
    ]


def test_diff_of_real_snapshots_2018_and_2026() -> None:
    old, new = hub_images("alpine"), hub_images("alpine", snapshot="snapshot_recent.json")
    diff = diff_snapshots(old, new)
    moved = diff.loc[diff["change"] == "moved"]
    # alpine:latest was rebuilt many times between 2018 and 2026, on every platform it had in 2018.
    assert set(moved["tag"]) == {"latest"} and moved["rebuild"].all()
    assert set(diff.loc[diff["change"] == "added", "tag"]) == {"3", "latest"}
    assert "3.7" in set(diff.loc[diff["change"] == "removed", "tag"])


def test_a_tag_whose_created_time_was_lost_is_still_compared() -> None:
    """A created time out of range is said in ``error``, but the row was read: it moves, it is added."""
    from regdata.oci.manifest import TIME_OUT_OF_RANGE

    def frame(digest: str, tags: list[str]) -> pd.DataFrame:
        return make_frame(
            [
                {
                    "registry": "r",
                    "repository": "a",
                    "tag": tag,
                    "platform": "linux/amd64",
                    "kind": "image",
                    "digest": digest,
                    "manifest_digest": digest,
                    "error": f"{TIME_OUT_OF_RANGE}: '2999-01-01T00:00:00Z'",
                }
                for tag in tags
            ],
            IMAGES,
            IMAGE_CATEGORIES,
        )

    diff = diff_snapshots(frame("sha256:old", ["far"]), frame("sha256:new", ["far", "later"]))
    assert dict(zip(diff["tag"], diff["change"], strict=True)) == {"far": "moved", "later": "added"}
