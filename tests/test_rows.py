"""regdata.client.rows: from parsed manifests and configs to row dicts, with nothing fetched.

Manifests and configs are built with regdata.testing and parsed with regdata's
own parsers, then handed to the row functions directly.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest

from regdata.client.rows import LABEL_TIMES, created_of, error_row, history_rows, image_row, schema1_row
from regdata.oci.manifest import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    ImageConfig,
    ImageManifest,
    Index,
    Platform,
    Schema1Manifest,
    parse_config,
    parse_manifest,
)
from regdata.oci.reference import Reference
from regdata.testing import Content, artifact, image, index, schema1

REF = Reference("example.com", "team/app", "1.0", None)
OCI_CREATED, LABEL_SCHEMA = LABEL_TIMES
BASE = {"registry": "example.com", "repository": "team/app", "tag": "1.0"}


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text).tz_convert("UTC")


def parsed(content: Content) -> ImageManifest:
    manifest = parse_manifest(content.body, content.media_type)
    assert isinstance(manifest, ImageManifest)
    return manifest


def config_of(content: Content) -> ImageConfig:
    assert content.config is not None
    return parse_config(content.config)


def config(created: str | None = None, labels: dict[str, str] | None = None) -> ImageConfig:
    return config_of(image(created=created, labels=labels))


# -- created_of ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("created", "labels", "labels_win", "expected"),
    [
        ("2024-01-01T00:00:00Z", None, False, (ts("2024-01-01T00:00:00Z"), "config")),
        ("2024-01-01T00:00:00Z", None, True, (ts("2024-01-01T00:00:00Z"), "config")),
        (None, None, False, (None, None)),
        (None, None, True, (None, None)),
        ("0001-01-01T00:00:00Z", None, False, (None, None)),
        (
            "2024-01-01T00:00:00Z",
            {OCI_CREATED: "2024-06-01T00:00:00Z"},
            False,
            (ts("2024-01-01T00:00:00Z"), "config"),
        ),
        (
            "2024-01-01T00:00:00Z",
            {OCI_CREATED: "2024-06-01T00:00:00+02:00"},
            True,
            (ts("2024-05-31T22:00:00Z"), f"label:{OCI_CREATED}"),
        ),
        (
            None,
            {LABEL_SCHEMA: "2023-01-01T00:00:00Z"},
            True,
            (ts("2023-01-01T00:00:00Z"), f"label:{LABEL_SCHEMA}"),
        ),
        # The OCI label is trusted first.
        (
            None,
            {LABEL_SCHEMA: "2023-01-01T00:00:00Z", OCI_CREATED: "2022-01-01T00:00:00Z"},
            True,
            (ts("2022-01-01T00:00:00Z"), f"label:{OCI_CREATED}"),
        ),
        # An empty or zero label time does not win.
        (
            "2024-01-01T00:00:00Z",
            {OCI_CREATED: "", LABEL_SCHEMA: "0001-01-01T00:00:00Z"},
            True,
            (ts("2024-01-01T00:00:00Z"), "config"),
        ),
    ],
)
def test_created_of(
    created: str | None, labels: dict[str, str] | None, labels_win: bool, expected: tuple[Any, Any]
) -> None:
    assert created_of(config(created, labels), labels_win) == expected


def test_created_of_an_unreadable_label_falls_back() -> None:
    got = created_of(config("2024-01-01T00:00:00Z", {OCI_CREATED: "last tuesday"}), True)
    assert got == (ts("2024-01-01T00:00:00Z"), "config")


# -- image_row -------------------------------------------------------------------


def test_image_row_of_a_single_image() -> None:
    img = image(
        created="2024-01-02T03:04:05Z",
        platform="linux/arm/v7",
        labels={"a": "1"},
        layers=[10, 20, 30],
        annotations={"k": "v"},
        config={"os.version": "5.0"},
    )
    row = image_row(
        REF, "1.0", img.digest, img.media_type, "image", img.digest, parsed(img), config_of(img), None, False
    )
    assert row == dict(
        BASE,
        digest=img.digest,
        media_type=DOCKER_MANIFEST,
        kind="image",
        manifest_digest=img.digest,
        config_digest=img.config_digest,
        size=60,
        layers=3,
        artifact_type=None,
        annotations={"k": "v"},
        labels={"a": "1"},
        platform="linux/arm/v7",
        os="linux",
        architecture="arm",
        variant="v7",
        os_version="5.0",
        created=ts("2024-01-02T03:04:05Z"),
        created_source="config",
    )


def test_image_row_of_an_index_entry_falls_back_to_the_declared_platform() -> None:
    child = image(platform="linux/arm64/v8", config={"os": None, "architecture": None, "variant": None})
    idx = index(child)
    top = parse_manifest(idx.body, idx.media_type)
    assert isinstance(top, Index)
    descriptor = top.manifests[0]
    assert descriptor.platform == Platform("linux", "arm64", "v8")
    row = image_row(
        REF,
        "1.0",
        idx.digest,
        idx.media_type,
        "index",
        child.digest,
        parsed(child),
        config_of(child),
        descriptor,
        False,
    )
    assert (row["digest"], row["manifest_digest"], row["kind"]) == (idx.digest, child.digest, "index")
    assert (row["platform"], row["os"], row["architecture"], row["variant"]) == (
        "linux/arm64/v8",
        "linux",
        "arm64",
        "v8",
    )
    assert (row["created"], row["created_source"], row["labels"]) == (None, None, {})


def test_image_row_without_config_has_no_platform_or_time() -> None:
    img = image(created="2024-01-01T00:00:00Z", layers=[5])
    row = image_row(
        REF, "1.0", img.digest, img.media_type, "image", img.digest, parsed(img), None, None, True
    )
    assert "platform" not in row
    assert (row["os"], row["architecture"], row["labels"], row["size"]) == (None, None, {}, 5)
    assert "created" not in row


def test_image_row_of_an_artifact() -> None:
    modern = artifact("application/vnd.example+json", layers=[7], annotations={"t": "x"})
    row = image_row(
        REF,
        "1.0",
        modern.digest,
        modern.media_type,
        "artifact",
        modern.digest,
        parsed(modern),
        None,
        None,
        False,
    )
    assert row == dict(
        BASE,
        digest=modern.digest,
        media_type=modern.media_type,
        kind="artifact",
        manifest_digest=modern.digest,
        config_digest=modern.config_digest,
        size=7,
        layers=1,
        artifact_type="application/vnd.example+json",
        annotations={"t": "x"},
        labels={},
    )
    helm = artifact(config_media_type="application/vnd.cncf.helm.config.v1+json", config=b"{}")
    manifest = parsed(helm)
    assert manifest.is_artifact
    row = image_row(
        REF, "1.0", helm.digest, helm.media_type, "artifact", helm.digest, manifest, None, None, False
    )
    assert row["artifact_type"] == "application/vnd.cncf.helm.config.v1+json"
    assert row["annotations"] is None


# -- schema1_row -----------------------------------------------------------------


def test_schema1_row() -> None:
    old = schema1(
        created="2016-05-01T00:00:00Z",
        architecture="arm64",
        labels={"l": "v"},
        history=["ADD / /", "RUN x", "CMD y"],
    )
    manifest = parse_manifest(old.body, old.media_type)
    assert isinstance(manifest, Schema1Manifest)
    assert len(manifest.history) == 3 and len(manifest.layers) == 3
    row = schema1_row(REF, "1.0", old.digest, manifest, False)
    assert row == dict(
        BASE,
        digest=old.digest,
        media_type=old.media_type,
        kind="schema1",
        manifest_digest=old.digest,
        platform="linux/arm64",
        os="linux",
        architecture="arm64",
        variant=None,
        created=ts("2016-05-01T00:00:00Z"),
        created_source="config",
        layers=3,
        labels={"l": "v"},
    )
    history = history_rows(REF, "1.0", row["platform"], manifest.config())
    assert [(h["step"], h["created_by"], h["empty_layer"], h["comment"]) for h in history] == [
        (0, "ADD / /", False, None),
        (1, "RUN x", False, None),
        (2, "CMD y", False, None),
    ]


def test_schema1_row_labels_win_and_no_architecture() -> None:
    old = schema1(architecture="", labels={OCI_CREATED: "2020-01-01T00:00:00Z"})
    manifest = parse_manifest(old.body, old.media_type)
    assert isinstance(manifest, Schema1Manifest)
    row = schema1_row(REF, "1.0", old.digest, manifest, True)
    assert (row["platform"], row["architecture"], row["os"]) == (None, None, "linux")
    assert (row["created"], row["created_source"]) == (ts("2020-01-01T00:00:00Z"), f"label:{OCI_CREATED}")


# -- error_row, history_rows ---------------------------------------------------------


def test_error_row() -> None:
    assert error_row(REF, "1.0", "boom") == dict(
        BASE, digest=None, media_type=None, kind=None, manifest_digest=None, error="boom"
    )
    row = error_row(
        REF,
        "1.0",
        "boom",
        digest="sha256:x",
        media_type=OCI_INDEX,
        kind="index",
        platform=Platform("windows", "amd64", None, "10.0"),
        manifest_digest="sha256:y",
    )
    assert row == dict(
        BASE,
        digest="sha256:x",
        media_type=OCI_INDEX,
        kind="index",
        manifest_digest="sha256:y",
        error="boom",
        platform="windows/amd64",
        os="windows",
        architecture="amd64",
        variant=None,
        os_version="10.0",
    )


def test_history_rows() -> None:
    img = image(
        created="2024-01-01T00:00:00Z",
        history=[
            "ADD x /",
            {"created_by": "ENV A=1", "empty_layer": True, "comment": "c"},
            {"created": "2024-03-01T10:00:00.5+02:00"},
        ],
    )
    rows = history_rows(REF, "1.0", "linux/amd64", config_of(img))
    assert rows == [
        dict(
            BASE,
            platform="linux/amd64",
            step=0,
            created=ts("2024-01-01T00:00:00Z"),
            created_by="ADD x /",
            empty_layer=False,
            comment=None,
        ),
        dict(
            BASE,
            platform="linux/amd64",
            step=1,
            created=None,
            created_by="ENV A=1",
            empty_layer=True,
            comment="c",
        ),
        dict(
            BASE,
            platform="linux/amd64",
            step=2,
            created=ts("2024-03-01T08:00:00.5Z"),
            created_by="",
            empty_layer=False,
            comment=None,
        ),
    ]
    assert history_rows(REF, "1.0", None, config()) == []


def test_builders_write_what_the_parsers_read() -> None:
    img = image(
        created="2024-01-01T00:00:00Z", platform="linux/arm/v6", labels={"a": "b"}, layers=[1, 2], oci=True
    )
    doc = json.loads(img.config or b"")
    assert (doc["os"], doc["architecture"], doc["variant"], doc["created"]) == (
        "linux",
        "arm",
        "v6",
        "2024-01-01T00:00:00Z",
    )
    assert doc["config"]["Labels"] == {"a": "b"}
    assert len(doc["rootfs"]["diff_ids"]) == 2
    manifest = parsed(img)
    assert manifest.config.digest == img.config_digest and manifest.size == 3 and not manifest.is_artifact
    idx = index(img, attestations=True)
    top = parse_manifest(idx.body, None)  # recognised by its shape and mediaType
    assert isinstance(top, Index)
    assert [d.is_attestation for d in top.manifests] == [False, True]
    assert top.manifests[1].annotations["vnd.docker.reference.digest"] == img.digest


def test_error_row_of_a_digest_reference_has_no_tag() -> None:
    digest = "sha256:" + "ab" * 32
    row = error_row(Reference("example.com", "team/app", None, digest), None, "boom")
    assert row["tag"] is None and row["digest"] == digest and row["error"] == "boom"


@pytest.mark.parametrize("created", ["2999-01-01T00:00:00Z", "0001-06-01T00:00:00Z", "1500-01-01T00:00:00Z"])
def test_a_created_time_out_of_range_is_said(created: str) -> None:
    content = image(created=created, labels={"a": "b"})
    row = image_row(
        REF,
        "1.0",
        "sha256:t",
        content.media_type,
        "image",
        "sha256:t",
        parsed(content),
        config_of(content),
        None,
        labels_win=False,
    )
    assert row["created"] is None and row["labels"] == {"a": "b"} and row["platform"] == "linux/amd64"
    assert created[:10] in row["error"] and "outside" in row["error"]


def test_go_zero_time_is_absent_not_out_of_range() -> None:
    content = image(created="0001-01-01T00:00:00Z")
    row = image_row(
        REF,
        "1.0",
        "sha256:t",
        content.media_type,
        "image",
        "sha256:t",
        parsed(content),
        config_of(content),
        None,
        labels_win=False,
    )
    assert row["created"] is None and "error" not in row
