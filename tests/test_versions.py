"""Tests of regdata.analysis.versions: real-world tags read as versions, tracks, ordering."""

from __future__ import annotations

import json
import random
from functools import cache
from typing import Any

import pandas as pd
import pytest

from regdata.analysis.versions import (
    VERSIONS,
    Version,
    floating_tags,
    parse_version,
    sort_tags,
    version_frame,
)
from tests.support.dockerhub import open_data


@cache
def hub_tags() -> dict[str, list[str]]:
    with open_data("snapshot.json") as f:
        data: dict[str, Any] = json.load(f)
    return {image: list(tags) for image, tags in data.items()}


# tag -> (track, normalised version, precision, prerelease)
TABLE = [
    # the brief's shapes
    ("3.19", "", "3.19", 2, None),
    ("1.25.3-alpine", "alpine", "1.25.3", 3, None),
    ("v2.0.0-rc.1", "", "2.0.0-rc.1", 3, "rc.1"),
    ("2024.03.01", "", "2024.3.1", 3, None),
    ("3.12.1-slim-bookworm", "slim-bookworm", "3.12.1", 3, None),
    ("1.21", "", "1.21", 2, None),
    ("16-alpine3.19", "alpine3.19", "16", 1, None),
    ("8.0.0-beta2", "", "8.0.0-beta.2", 3, "beta.2"),
    ("1.0.0a1", "", "1.0.0-alpha.1", 3, "alpha.1"),
    ("2.0.0-alpha", "", "2.0.0-alpha", 3, "alpha"),
    ("1.2.3-dev", "", "1.2.3-dev", 3, "dev"),
    # nginx
    ("1", "", "1", 1, None),
    ("1.13.8", "", "1.13.8", 3, None),
    ("1.12.2-alpine-perl", "alpine-perl", "1.12.2", 3, None),
    ("1-perl", "perl", "1", 1, None),
    # redis
    ("4.0.7-32bit", "32bit", "4.0.7", 3, None),
    ("3.2-alpine", "alpine", "3.2", 2, None),
    # python
    ("3.7.0a4", "", "3.7.0-alpha.4", 3, "alpha.4"),
    ("3.7-rc", "", "3.7-rc", 2, "rc"),
    ("3.7-rc-alpine3.7", "alpine3.7", "3.7-rc", 2, "rc"),
    ("3.7.0a4-windowsservercore-1709", "windowsservercore-1709", "3.7.0-alpha.4", 3, "alpha.4"),
    ("2.7.14-windowsservercore-ltsc2016", "windowsservercore-ltsc2016", "2.7.14", 3, None),
    ("3.6.4-slim-stretch", "slim-stretch", "3.6.4", 3, None),
    ("2-alpine3.4", "alpine3.4", "2", 1, None),
    # node
    ("9.4.0-onbuild", "onbuild", "9.4.0", 3, None),
    ("4.8-wheezy", "wheezy", "4.8", 2, None),
    # golang
    ("1.10rc1", "", "1.10-rc.1", 2, "rc.1"),
    ("1.10beta2-alpine3.7", "alpine3.7", "1.10-beta.2", 2, "beta.2"),
    ("1.10-rc-nanoserver-sac2016", "nanoserver-sac2016", "1.10-rc", 2, "rc"),
    ("1.9.3-alpine3.6", "alpine3.6", "1.9.3", 3, None),
    # alpine, busybox
    ("3.7", "", "3.7", 2, None),
    ("1.28.0-uclibc", "uclibc", "1.28.0", 3, None),
    # debian: a name then a date stamp
    ("stretch-20171210", "stretch-*", "20171210", 1, None),
    ("rc-buggy-20171210", "rc-buggy-*", "20171210", 1, None),
    ("bookworm-20240110-slim", "bookworm-*-slim", "20240110", 1, None),
    ("9.3-slim", "slim", "9.3", 2, None),
    # build numbers are not tracks
    ("1.25.3-debian-12-r5", "debian-12", "1.25.3+5", 3, None),
    ("17.0.9_9-jdk", "jdk", "17.0.9+9", 3, None),
    ("1.2.3-1", "", "1.2.3+1", 3, None),
    # a word that starts like a pre-release marker is a track
    ("1.2-devel", "devel", "1.2", 2, None),
    ("1.2-alpine", "alpine", "1.2", 2, None),
    ("1.2-prefork", "prefork", "1.2", 2, None),
]

NOT_VERSIONS = [
    "latest",
    "edge",
    "stable",
    "mainline",
    "main-abc123",
    "sha-1234abc",
    "1234abc",
    "2b3",
    "1a2f",
    "alpine",
    "alpine3.7",
    "bookworm",
    "carbon-slim",
    "rc",
    "rc-alpine",
    "jessie-backports",
    "windowsservercore-1709",
    "stable-perl",
    "1.2.3-",
    "1.2.3--x",
    "v",
    "",
    "buster-20171399",
]


@pytest.mark.parametrize(("tag", "track", "version", "precision", "prerelease"), TABLE)
def test_real_world_tags(tag: str, track: str, version: str, precision: int, prerelease: str | None) -> None:
    parsed = parse_version(tag)
    assert parsed is not None, tag
    assert (parsed.track, str(parsed), parsed.precision, parsed.prerelease) == (
        track,
        version,
        precision,
        prerelease,
    )
    assert parsed.tag == tag
    assert parsed.is_prerelease == (prerelease is not None)


@pytest.mark.parametrize("tag", NOT_VERSIONS)
def test_non_versions(tag: str) -> None:
    assert parse_version(tag) is None


def test_prerelease_order() -> None:
    tags = [
        "2.0.0",
        "2.0.0-rc.2",
        "2.0.0-alpha",
        "2.0.0-rc.1",
        "2.0.0-beta",
        "1.9.9",
        "2.0.1-dev",
        "2.0.0-rc.10",
    ]
    assert sort_tags(tags) == [
        "1.9.9",
        "2.0.0-alpha",
        "2.0.0-beta",
        "2.0.0-rc.1",
        "2.0.0-rc.2",
        "2.0.0-rc.10",
        "2.0.0",
        "2.0.1-dev",
    ]


def test_pep440_and_go_prereleases_order_like_semver() -> None:
    assert sort_tags(["3.7.0", "3.7.0b1", "3.7.0a4", "3.7.0rc1", "3.7.0a10"]) == [
        "3.7.0a4",
        "3.7.0a10",
        "3.7.0b1",
        "3.7.0rc1",
        "3.7.0",
    ]
    assert sort_tags(["1.10", "1.10rc1", "1.10beta2", "1.9.3"]) == ["1.9.3", "1.10beta2", "1.10rc1", "1.10"]


def test_numbers_compare_as_numbers() -> None:
    assert sort_tags(["1.10", "1.9", "1.2", "1.10.1", "10", "9"]) == [
        "1.2",
        "1.9",
        "1.10",
        "1.10.1",
        "9",
        "10",
    ]


def test_tracks_are_kept_apart() -> None:
    tags = ["16-alpine3.19", "16-alpine3.18", "17-alpine", "16.1-alpine", "16", "17", "latest"]
    assert sort_tags(tags) == [
        "16",
        "17",
        "16.1-alpine",
        "17-alpine",
        "16-alpine3.18",
        "16-alpine3.19",
        "latest",
    ]
    alpine, alpine319 = parse_version("17-alpine"), parse_version("16-alpine3.19")
    assert alpine is not None and alpine319 is not None
    assert alpine.track != alpine319.track


def test_v_prefix_is_cosmetic() -> None:
    plain, prefixed = parse_version("1.2.3"), parse_version("v1.2.3")
    assert plain is not None and prefixed is not None
    assert plain.key == prefixed.key and plain.track == prefixed.track


def test_builds_sort_after_their_release() -> None:
    assert sort_tags(["17.0.9_10-jdk", "17.0.9-jdk", "17.0.9_9-jdk", "17.0.10_1-jdk"]) == [
        "17.0.9-jdk",
        "17.0.9_9-jdk",
        "17.0.9_10-jdk",
        "17.0.10_1-jdk",
    ]


def test_version_is_frozen_and_hashable() -> None:
    version = parse_version("1.2.3")
    assert isinstance(version, Version)
    with pytest.raises(AttributeError):
        version.tag = "x"  # type: ignore[misc]
    assert len({version, parse_version("1.2.3")}) == 1


def test_floating_tags_cover_their_precise_versions() -> None:
    def v(tag: str) -> Version:
        parsed = parse_version(tag)
        assert parsed is not None
        return parsed

    assert v("3.19").covers(v("3.19.1"))
    assert v("3").covers(v("3.19.1"))
    assert not v("3.19").covers(v("3.20.0"))
    assert not v("3.19").covers(v("3.19.0-rc.1"))  # a release tag does not follow pre-releases
    assert v("3.7-rc").covers(v("3.7.0a4"))
    assert v("1.10-rc").covers(v("1.10beta2"))
    assert v("17.0.9").covers(v("17.0.9_9"))
    assert not v("3.19-alpine").covers(v("3.19.1"))  # other track
    assert not v("3.19.1").covers(v("3.19.1"))
    assert floating_tags([v(t) for t in ["1", "1.28", "1.28.0", "1-glibc", "1.28.0-glibc"]]) == {
        "1",
        "1.28",
        "1-glibc",
    }


def test_sort_tags_on_real_images() -> None:
    tags = hub_tags()
    assert sort_tags(tags["alpine"]) == ["3.1", "3.2", "3.3", "3.4", "3.5", "3.6", "3.7", "edge", "latest"]
    redis = sort_tags(tags["redis"])
    assert redis[:6] == ["3", "3.2", "3.2.11", "4", "4.0", "4.0.7"]
    assert redis[-3:] == ["32bit", "alpine", "latest"]
    nginx = sort_tags(tags["nginx"])
    assert nginx.index("1.12.2") < nginx.index("1.13") < nginx.index("1.13.8") < nginx.index("1-alpine")
    golang = sort_tags(tags["golang"])
    assert golang[:7] == ["1", "1.8", "1.8.6", "1.9", "1.9.3", "1.10-rc", "1.10rc1"]


def test_every_real_tag_sorts_deterministically() -> None:
    for image, tags in hub_tags().items():
        expected = sort_tags(tags)
        shuffled = list(tags)
        random.Random(image).shuffle(shuffled)
        assert sort_tags(shuffled) == expected, image
        assert sorted(expected) == sorted(tags)


def test_real_tag_families_share_their_track() -> None:
    tags = hub_tags()["python"]
    parsed = {t: parse_version(t) for t in tags}
    family = {v.track for t, v in parsed.items() if v is not None and t.endswith("-alpine3.7")}
    assert family == {"alpine3.7"}
    non_versions = {t for t, v in parsed.items() if v is None}
    assert len(non_versions) == 23  # of 164: bare variants, code names and rc channels
    assert non_versions >= {
        "latest",
        "alpine",
        "slim",
        "rc",
        "rc-alpine",
        "windowsservercore-1709",
        "onbuild",
    }


def test_version_frame() -> None:
    frame = version_frame(["latest", "3.6", "3.6.4", "3.6.4-alpine", "3.7.0a4", "3.6.4", "stretch-20171210"])
    assert list(frame.columns) == [c for c, _ in VERSIONS]
    assert [str(d) for d in frame.dtypes] == [d for _, d in VERSIONS]
    assert frame["tag"].tolist() == ["3.6", "3.6.4", "3.7.0a4", "3.6.4-alpine", "stretch-20171210", "latest"]
    row = frame.set_index("tag").loc["3.7.0a4"]
    assert (row["version"], row["release"], row["precision"], row["prerelease"]) == (
        "3.7.0-alpha.4",
        "3.7.0",
        3,
        "alpha.4",
    )
    assert frame.set_index("tag")["floating"].to_dict() == {
        "3.6": True,
        "3.6.4": False,
        "3.7.0a4": False,
        "3.6.4-alpine": False,
        "stretch-20171210": False,
        "latest": False,
    }
    latest = frame.iloc[-1]
    assert not latest["is_version"] and pd.isna(latest["track"]) and pd.isna(latest["precision"])


def test_version_frame_empty_keeps_schema() -> None:
    frame = version_frame([])
    assert frame.empty
    assert [(c, str(d)) for c, d in frame.dtypes.items()] == list(VERSIONS)
