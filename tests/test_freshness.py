"""Tests of regdata.analysis.freshness on real Docker Hub tag histories and on hand-made frames.

``hub_images`` (also used by the snapshot and plot tests) turns snapshot.json
into an images frame: one row per tag and platform, ``created`` the newest
history date, ``size`` the compressed total, as a scan would give.
"""

from __future__ import annotations

import json
import math
from functools import cache
from typing import Any

import pandas as pd
import pytest

from regdata.analysis.freshness import (
    AGES,
    CADENCE,
    CADENCE_SUMMARY,
    CHANGES,
    NEWEST,
    SHARED,
    cadence_summary,
    classify_changes,
    newest_per_track,
    release_cadence,
    repush_share,
    shared_digests,
    tag_ages,
    usable_images,
)
from regdata.frames import IMAGE_CATEGORIES, IMAGES, make_frame
from tests.support.dockerhub import open_data

T = pd.Timestamp


@cache
def _snapshot(name: str) -> dict[str, Any]:
    with open_data(name) as f:
        data: dict[str, Any] = json.load(f)
    return data


def hub_rows(image: str, snapshot: str = "snapshot.json") -> list[dict[str, Any]]:
    """Images-frame rows of every tag of a real image."""
    rows = []
    for tag, record in _snapshot(snapshot)[image].items():
        for entry in record["platforms"]:
            if entry.get("is_attestation"):
                rows.append(
                    {
                        "registry": "docker.io",
                        "repository": f"library/{image}",
                        "tag": tag,
                        "digest": record["index_digest"],
                        "media_type": record["index_mime"],
                        "kind": "artifact",
                        "manifest_digest": entry["manifest_digest"],
                        "artifact_type": "attestation-manifest",
                    }
                )
                continue
            created = max((h["created"] for h in entry["history"] if h.get("created")), default=None)
            platform = "/".join(p for p in (entry["os"], entry["architecture"], entry.get("variant")) if p)
            rows.append(
                {
                    "registry": "docker.io",
                    "repository": f"library/{image}",
                    "tag": tag,
                    "digest": record["index_digest"],
                    "media_type": record["index_mime"] or entry["manifest_mime"],
                    "kind": "index" if record["index_mime"] else "image",
                    "platform": platform,
                    "os": entry["os"],
                    "architecture": entry["architecture"],
                    "variant": entry.get("variant"),
                    "manifest_digest": entry["manifest_digest"],
                    "config_digest": entry["image_id"],
                    "created": created,
                    "size": entry["total_size"],
                    "layers": len(entry["layers"]),
                    "labels": {},
                    "created_source": "config",
                    "os_version": entry.get("os_version"),
                }
            )
    return rows


def hub_images(*images: str, snapshot: str = "snapshot.json") -> pd.DataFrame:
    """An images frame of real images (all their tags and platforms)."""
    return make_frame([r for image in images for r in hub_rows(image, snapshot)], IMAGES, IMAGE_CATEGORIES)


def image_row(
    tag: str, created: str | None, digest: str, platform: str = "linux/amd64", **extra: Any
) -> dict[str, Any]:
    """A hand-made images-frame row of library/app."""
    os_name, arch, *variant = platform.split("/")
    return {
        "registry": "docker.io",
        "repository": "library/app",
        "tag": tag,
        "digest": digest,
        "kind": "index",
        "platform": platform,
        "os": os_name,
        "architecture": arch,
        "variant": variant[0] if variant else None,
        "manifest_digest": f"{digest}-{arch}",
        "created": created,
        "size": 1000,
        **extra,
    }


def schema_of(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return [(str(c), str(d)) for c, d in frame.dtypes.items()]


EMPTY = make_frame([], IMAGES, IMAGE_CATEGORIES)


# -- newest per track ---------------------------------------------------------


def test_newest_per_track_by_version_and_by_created_on_real_python() -> None:
    python = hub_images("python")
    by_version = newest_per_track(python, platform="linux/amd64").set_index("track")
    by_created = newest_per_track(python, by="created", platform="linux/amd64").set_index("track")
    # The plain track's highest release is 3.6.4: 3.7.0a4 is a pre-release, 3.6 and 3 float over 3.6.4.
    assert by_version.loc["", "tag"] == "3.6.4"
    assert by_version.loc["alpine3.7", "tag"] == "3.6.4-alpine3.7"
    assert by_version.loc["wheezy", "tag"] == "3.4.7-wheezy"
    # Official images rebuild every version in one batch: the last one built was 2.7.14.
    assert by_created.loc["alpine", "tag"] == "2.7.14-alpine"
    assert by_created.loc["alpine", "created"] == T("2018-01-10T05:42:08Z")
    assert by_version.loc["alpine", "created"] == T("2018-01-10T05:27:36Z")
    assert set(by_version.index) == set(by_created.index)
    assert "windowsservercore" not in by_version.index  # no linux/amd64 image there
    assert by_version.loc["", "candidates"] == 10


def test_newest_per_track_prereleases_and_platforms() -> None:
    python = hub_images("python")
    with_pre = newest_per_track(python, platform="linux/amd64", prereleases=True).set_index("track")
    assert with_pre.loc["", "tag"] == "3.7.0a4"
    windows = newest_per_track(python, platform="windows/amd64").set_index("track")
    assert windows.loc["windowsservercore-1709", "tag"] == "3.6.4-windowsservercore-1709"
    every = newest_per_track(python)
    assert every.groupby("track")["platform"].nunique()[""] == 8


def test_newest_per_track_a_track_of_prereleases_only_still_counts() -> None:
    frame = make_frame(
        [
            image_row("2.0.0-rc.1", "2024-01-01", "d1"),
            image_row("2.0.0-rc.2", "2024-01-02", "d2"),
            image_row("2.0.0-rc.2-slim", "2024-01-02", "d3"),
        ],
        IMAGES,
        IMAGE_CATEGORIES,
    )
    newest = newest_per_track(frame)
    assert newest["tag"].tolist() == ["2.0.0-rc.2", "2.0.0-rc.2-slim"]
    assert newest["version"].tolist() == ["2.0.0-rc.2", "2.0.0-rc.2"]


def test_newest_per_track_skips_errors_and_artifacts_and_keeps_schema() -> None:
    frame = make_frame(
        [
            image_row("1.0", "2024-01-01", "d1"),
            image_row("2.0", None, "d2", error="manifest unknown"),
            {**image_row("3.0", None, "d3"), "kind": "artifact", "platform": None},
        ],
        IMAGES,
        IMAGE_CATEGORIES,
    )
    assert newest_per_track(frame)["tag"].tolist() == ["1.0"]
    for by in ("version", "created"):
        assert schema_of(newest_per_track(EMPTY, by=by)) == list(NEWEST)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="by must be"):
        newest_per_track(frame, by="size")  # type: ignore[arg-type]


def test_usable_images_drops_attestations_of_real_2026_indexes() -> None:
    recent = hub_images("alpine", snapshot="snapshot_recent.json")
    assert (recent["kind"] == "artifact").sum() > 0
    usable = usable_images(recent)
    assert (usable["kind"] != "artifact").all() and usable["created"].notna().all()
    assert len(usable_images(recent, "linux/amd64")) == recent["tag"].nunique()


# -- cadence ------------------------------------------------------------------


def test_release_cadence_intervals_by_hand() -> None:
    frame = make_frame(
        [
            image_row("1.0.0", "2024-01-01T00:00Z", "a"),
            image_row("1.0", "2024-01-01T00:00Z", "a"),
            image_row("1.1.0", "2024-01-11T00:00Z", "b"),
            image_row("1.1.0-slim", "2024-01-11T00:20Z", "c"),  # another track
            image_row("1.2.0", "2024-01-31T00:00Z", "d"),
            image_row("2.0.0", "2024-01-31T00:30Z", "e"),  # same batch as 1.2.0
            image_row("1.2.0", "2024-01-31T06:00Z", "d", platform="linux/arm64"),
            image_row("latest", "2024-02-10T00:00Z", "f"),  # not a version: only per repository
        ],
        IMAGES,
        IMAGE_CATEGORIES,
    )
    cadence = release_cadence(frame)
    assert schema_of(cadence) == list(CADENCE)
    plain = cadence.loc[cadence["track"] == ""]
    assert plain["interval_days"].tolist()[1:] == [10.0, 20.0]
    assert math.isnan(plain["interval_days"].iloc[0])
    assert plain["tags"].tolist() == ["1.0, 1.0.0", "1.1.0", "1.2.0, 2.0.0"]
    exact = release_cadence(frame, within=None)
    assert exact.loc[exact["track"] == "", "interval_days"].round(4).tolist()[1:] == [10.0, 20.0, 0.0208]
    per_repo = release_cadence(frame, per="repository")
    assert per_repo["track"].isna().all()
    assert per_repo["interval_days"].tolist()[1:] == [10.0, 20.0, 10.0]
    summary = cadence_summary(cadence).set_index("track")
    assert schema_of(cadence_summary(cadence)) == list(CADENCE_SUMMARY)
    assert summary.loc["", ["images", "mean_days", "median_days", "min_days", "max_days"]].tolist() == [
        3,
        15.0,
        15.0,
        10.0,
        20.0,
    ]
    assert summary.loc["slim", "images"] == 1 and math.isnan(summary.loc["slim", "mean_days"])
    arm = release_cadence(frame, platform="linux/arm64")
    assert arm["platform"].tolist() == ["linux/arm64"]
    assert release_cadence(frame, platform=None)["platform"].nunique() == 2


def test_release_cadence_on_real_images_and_empty() -> None:
    node = release_cadence(hub_images("node"))
    plain = node.loc[node["track"] == ""]
    # node 4.8.7 (Dec 12), 6.12.3/8.9.4 (Jan 4) and 9.4.0 (Jan 11) were separate builds.
    assert len(plain) == 3
    assert plain["tags"].iloc[-1] == "9, 9.4, 9.4.0"
    assert schema_of(release_cadence(EMPTY)) == list(CADENCE)
    assert schema_of(cadence_summary(release_cadence(EMPTY))) == list(CADENCE_SUMMARY)


# -- shared digests, ages -----------------------------------------------------


def test_shared_digests_on_real_python() -> None:
    shared = shared_digests(hub_images("python"))
    assert schema_of(shared) == list(SHARED)
    groups = {row.most_specific: row for row in shared.itertuples()}
    assert groups["3.6.4"].tags == ("3", "3.6", "3.6.4", "latest")
    assert groups["3.6.4"].platforms == 8
    assert groups["3.7.0a4"].tags == ("3.7-rc", "3.7.0a4", "rc")
    assert groups["3.6.4-alpine"].n_tags == 8
    assert (shared["n_tags"] >= 2).all()
    every = shared_digests(hub_images("python"), min_tags=1)
    assert every["n_tags"].sum() == 164
    assert schema_of(shared_digests(EMPTY)) == list(SHARED)


def test_tag_ages() -> None:
    frame = make_frame(
        [
            image_row("1.0", "2024-01-01T00:00:00Z", "a"),
            image_row("1.0", "2024-01-05T00:00:00Z", "a", platform="linux/arm64"),
            image_row("latest", "2024-01-21T12:00:00Z", "b"),
        ],
        IMAGES,
        IMAGE_CATEGORIES,
    )
    per_tag = tag_ages(frame, now="2024-02-01")
    assert schema_of(per_tag) == list(AGES)
    assert per_tag[["tag", "platform", "age_days"]].values.tolist() == [
        ["1.0", "linux/arm64", 27.0],
        ["latest", "linux/amd64", 10.5],
    ]
    per_platform = tag_ages(frame, now=T("2024-02-01", tz="UTC"), per="platform")
    assert per_platform["age_days"].tolist() == [31.0, 27.0, 10.5]
    assert tag_ages(frame, now="2024-02-01", platform="linux/amd64")["age_days"].tolist() == [31.0, 10.5]
    assert (tag_ages(frame)["age_days"] > 0).all()  # now defaults to the current time
    assert schema_of(tag_ages(EMPTY)) == list(AGES)


# -- re-push or rebuild -------------------------------------------------------


def test_classify_changes_by_hand() -> None:
    timeline = pd.DataFrame(
        [
            ("app", "1", "2024-01-01T00:00Z", "sha256:a", "2024-01-01T00:00Z"),
            ("app", "1", "2024-01-01T01:00Z", "sha256:b", "2024-01-01T00:00Z"),  # arm64 finished: same image
            ("app", "1", "2024-01-09T00:00Z", "sha256:c", "2024-01-08T00:00Z"),  # rebuilt
            ("app", "1", "2024-01-10T00:00Z", "sha256:d", "2024-01-05T00:00Z"),  # moved back
            ("app", "1", "2024-01-11T00:00Z", "sha256:d", "2024-01-05T00:00Z"),  # seen again
            ("app", "1", "2024-01-12T00:00Z", "sha256:e", None),
            ("app", "2", "2024-01-01T00:00Z", "sha256:f", "2024-01-01T00:00Z"),
        ],
        columns=["image", "tag", "seen_at", "index_digest", "newest_created"],
    )
    changes = classify_changes(timeline.sample(frac=1.0, random_state=1))
    assert schema_of(changes) == list(CHANGES)
    assert changes["change"].astype(str).tolist() == [
        "first",
        "repush",
        "rebuild",
        "revert",
        "unchanged",
        "unknown",
        "first",
    ]
    assert changes["previous_digest"].iloc[1] == "sha256:a"
    assert repush_share(changes) == pytest.approx(1 / 4)
    assert schema_of(classify_changes(timeline.iloc[:0])) == list(CHANGES)
    assert math.isnan(repush_share(classify_changes(timeline.iloc[:0])))


def test_about_46_percent_of_real_digest_changes_are_repushes() -> None:
    timeline = pd.read_csv(open_data("timeline.csv"))
    changes = classify_changes(timeline)
    counts = changes["change"].value_counts()
    share = repush_share(changes)
    print(
        f"\nre-push share of {int(counts.drop(['first', 'unchanged']).sum())} digest changes: {share:.1%} "
        f"({ {str(k): int(v) for k, v in counts.items()} })"
    )
    assert share == pytest.approx(0.46, abs=0.01)
    assert counts["first"] == timeline.groupby(["image", "tag"]).ngroups
    # The January 2017 rollback of the alpine-based tags moved 20 tags back to older images.
    assert counts["revert"] == 20
    # The amd64 image of a few tags was missing from the record: neither rebuild nor re-push.
    assert counts["unknown"] == 39
    moves = changes.loc[changes["change"].isin(["rebuild", "repush"])]
    per_image = moves.groupby("image")["change"].apply(lambda c: float((c == "repush").mean()))
    print("re-push share per image:", {k: round(v, 3) for k, v in per_image.items()})
    # Alpine's images are single builds pushed at once; the others' platforms finish one by one.
    assert per_image["alpine"] < 0.1
    assert per_image.drop("alpine").between(0.3, 0.7).all()
