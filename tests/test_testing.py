"""regdata.testing in use, as a user's tests would use it: every column of every kind of row.

Expected values come from the builders' own bytes and digests (computed with
hashlib, not with regdata), so these tests check regdata's parsing, digest
checks, scan, rows and frames end to end, with no server.
"""

from __future__ import annotations

import doctest
import hashlib
import itertools
import json
import threading
from typing import Any

import pandas as pd
import pytest

import regdata.testing
import regdata.testing.content
from regdata import Registry
from regdata.credentials import Credentials
from regdata.errors import (
    Cancelled,
    Denied,
    DigestMismatch,
    MalformedContent,
    NotFound,
    ServerError,
    Unauthorized,
)
from regdata.frames import HISTORY, IMAGE_KINDS, IMAGES
from regdata.oci.manifest import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    SCHEMA1,
    SCHEMA1_SIGNED,
)
from regdata.oci.reference import parse_reference
from regdata.testing import Content, MockRegistry, artifact, image, index, raw, schema1
from regdata.transport import RetryPolicy

pytestmark = pytest.mark.timeout(30)

REPO = "example.com/team/app"
HELM = "application/vnd.cncf.helm.chart"
OCI_CREATED = "org.opencontainers.image.created"
COLUMNS = [name for name, _ in IMAGES]
NEWLINE = b"\n"  # what corrupt() appends by default


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text).tz_convert("UTC")


def cell(value: Any) -> Any:
    """A frame cell as a plain value: every kind of missing is None."""
    if isinstance(value, dict):
        return value
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and value != value:
        return None
    if hasattr(value, "item") and not isinstance(value, pd.Timestamp):
        return value.item()  # numpy scalars
    return value


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{c: cell(row[c]) for c in frame.columns} for _, row in frame.astype(object).iterrows()]


def row(**values: Any) -> dict[str, Any]:
    """An expected images row: every column, None unless given."""
    unknown = set(values) - set(COLUMNS)
    assert not unknown, unknown
    base: dict[str, Any] = dict.fromkeys(COLUMNS)
    base.update(registry="example.com", repository="team/app")
    base.update(values)
    return base


def image_row(
    tag: str | None,
    img: Content,
    *,
    created: str | None,
    labels: dict[str, str] | None = None,
    source: str | None = "config",
    **extra: Any,
) -> dict[str, Any]:
    """The row of a single (not indexed) image."""
    os_name, arch, *variant = (img.platform or "").split("/")
    return row(
        tag=tag,
        digest=img.digest,
        media_type=img.media_type,
        kind="image",
        platform=img.platform,
        os=os_name,
        architecture=arch,
        variant=variant[0] if variant else None,
        manifest_digest=img.digest,
        config_digest=img.config_digest,
        created=ts(created) if created else None,
        size=img.size,
        layers=len(img.layers),
        labels=labels or {},
        created_source=source if created else None,
        **extra,
    )


def index_rows(tag: str, idx: Content, created: str) -> list[dict[str, Any]]:
    rows = []
    for child in idx.children:
        if child.kind != "image":
            continue
        os_name, arch, *variant = (child.platform or "").split("/")
        rows.append(
            row(
                tag=tag,
                digest=idx.digest,
                media_type=idx.media_type,
                kind="index",
                platform=child.platform,
                os=os_name,
                architecture=arch,
                variant=variant[0] if variant else None,
                manifest_digest=child.digest,
                config_digest=child.config_digest,
                created=ts(created),
                size=child.size,
                layers=len(child.layers),
                labels={},
                created_source="config",
            )
        )
    return rows


def check_schema(frame: pd.DataFrame, schema: Any = IMAGES) -> None:
    assert list(frame.columns) == [name for name, _ in schema]
    for name, dtype in schema:
        if dtype == "category":
            assert isinstance(frame[name].dtype, pd.CategoricalDtype), name
        else:
            assert frame[name].dtype == pd.api.types.pandas_dtype(dtype), (name, frame[name].dtype)
    if schema is IMAGES:
        assert list(frame["kind"].cat.categories) == list(IMAGE_KINDS)


# -- the repository every test reads -------------------------------------------


# The tags the Repo fixture pushes, one per kind of content or fault.
PUSHED = (
    "schema2",
    "oci",
    "multi",
    "chart",
    "old",
    "nocreated",
    "labelled",
    "tz",
    "zero",
    "noconfig",
    "tampered",
    "badjson",
)


class Repo:
    """A repository with one tag of each kind, and one of each failure."""

    def __init__(self) -> None:
        self.mock = MockRegistry()
        self.schema2 = image(
            created="2024-01-02T03:04:05Z",
            platform="linux/amd64",
            labels={"a": "1", "b": "2"},
            layers=[1200, 3400],
            history=[
                "ADD rootfs.tar /",
                {
                    "created": "2024-01-02T03:04:05Z",
                    "created_by": "ENV X=1",
                    "empty_layer": True,
                    "comment": "buildkit",
                },
            ],
        )
        self.oci = image(
            created="2024-01-03T00:00:00Z",
            platform="linux/arm64/v8",
            layers=[500],
            oci=True,
            annotations={"org.opencontainers.image.source": "https://example.com/src"},
        )
        self.amd = image(
            created="2024-02-01T00:00:00Z",
            platform="linux/amd64",
            layers=[100, 10],
            history=["ADD a /", "RUN b"],
        )
        self.arm = image(
            created="2024-02-01T00:00:00Z", platform="linux/arm64/v8", layers=[200], history=["ADD a /"]
        )
        self.multi = index(self.amd, self.arm, attestations=True)
        self.chart = artifact(HELM, layers=[3000], annotations={"org.opencontainers.image.title": "app"})
        self.old = schema1(
            created="2016-05-01T00:00:00Z",
            architecture="amd64",
            labels={"v": "1"},
            history=["ADD rootfs /", "CMD sh"],
        )
        self.nocreated = image(platform="linux/amd64", layers=[1])
        self.labelled = image(
            created="2024-01-01T00:00:00Z", layers=[2], labels={OCI_CREATED: "2024-06-01T12:00:00Z"}
        )
        self.tz = image(created="2024-03-01T10:00:00.123456789+02:00", layers=[3])
        self.zero = image(created="0001-01-01T00:00:00Z", layers=[4])
        self.noconfig = image(created="2024-01-05T00:00:00Z", layers=[5])
        self.tampered = image(created="2024-01-06T00:00:00Z", layers=[6])
        self.badjson = raw(b"{oops", DOCKER_MANIFEST)
        m = self.mock
        for tag in PUSHED:
            m.push(f"{REPO}:{tag}", getattr(self, tag))
        m.tag(f"{REPO}:latest", f"{REPO}:multi")
        m.fail(f"{REPO}@{self.noconfig.config_digest}")
        m.fail(f"{REPO}:gone")
        m.corrupt(f"{REPO}:tampered")

    def expected(self) -> list[dict[str, Any]]:
        """Every row of get_repository, in order."""
        mismatch = (
            f"DigestMismatch: digest mismatch for manifest {REPO}:tampered: expected "
            f"{self.tampered.digest}, got {sha256(self.tampered.body + NEWLINE)}"
        )
        blob = f"example.com/v2/team/app/blobs/{self.noconfig.config_digest}"
        return [
            image_row("tz", self.tz, created="2024-03-01T10:00:00.123456789+02:00"),
            *index_rows("latest", self.multi, "2024-02-01T00:00:00Z"),
            *index_rows("multi", self.multi, "2024-02-01T00:00:00Z"),
            image_row(
                "oci",
                self.oci,
                created="2024-01-03T00:00:00Z",
                annotations={"org.opencontainers.image.source": "https://example.com/src"},
            ),
            image_row("schema2", self.schema2, created="2024-01-02T03:04:05Z", labels={"a": "1", "b": "2"}),
            image_row(
                "labelled",
                self.labelled,
                created="2024-01-01T00:00:00Z",
                labels={OCI_CREATED: "2024-06-01T12:00:00Z"},
            ),
            row(
                tag="old",
                digest=self.old.digest,
                media_type=SCHEMA1_SIGNED,
                kind="schema1",
                platform="linux/amd64",
                os="linux",
                architecture="amd64",
                manifest_digest=self.old.digest,
                created=ts("2016-05-01T00:00:00Z"),
                layers=2,
                labels={"v": "1"},
                created_source="config",
            ),
            # No created: tag order.
            row(tag="badjson", error="MalformedContent: manifest is not JSON (JSONDecodeError: '{oops'...)"),
            row(
                tag="chart",
                digest=self.chart.digest,
                media_type=OCI_MANIFEST,
                kind="artifact",
                manifest_digest=self.chart.digest,
                config_digest=sha256(b"{}"),
                size=3000,
                layers=1,
                labels={},
                artifact_type=HELM,
                annotations={"org.opencontainers.image.title": "app"},
            ),
            row(
                tag="gone",
                error="NotFound: 404 from example.com/v2/team/app/manifests/gone "
                "(MANIFEST_UNKNOWN: manifest unknown)",
            ),
            row(
                tag="noconfig",
                digest=self.noconfig.digest,
                media_type=DOCKER_MANIFEST,
                kind="image",
                manifest_digest=self.noconfig.digest,
                config_digest=self.noconfig.config_digest,
                labels={},
                error=f"NotFound: 404 from {blob} (BLOB_UNKNOWN: blob unknown to registry)",
            ),
            image_row("nocreated", self.nocreated, created=None),
            row(tag="tampered", error=mismatch),
            image_row("zero", self.zero, created=None),
        ]


@pytest.fixture
def repo() -> Repo:
    return Repo()


# -- get_repository --------------------------------------------------------------


def test_every_column_of_every_row(repo: Repo) -> None:
    df = repo.mock.registry().get_repository(REPO)
    check_schema(df)
    got = records(df)
    want = repo.expected()
    assert [r["tag"] for r in got] == [r["tag"] for r in want]
    for g, w in zip(got, want, strict=True):
        assert g == w, g["tag"]


def test_sort_order_is_created_desc_nat_last_then_tag_then_platform(repo: Repo) -> None:
    df = repo.mock.registry().get_repository(REPO)
    created = df["created"]
    known = created.dropna()
    assert known.is_monotonic_decreasing
    assert created.isna().tolist() == sorted(created.isna().tolist())  # NaT last
    keys = [(r["created"], r["tag"], r["platform"] or "") for r in records(df)]
    for (c1, t1, p1), (c2, t2, p2) in itertools.pairwise(keys):
        if c1 == c2:  # both None (NaT), or the same time
            assert (t1, p1) <= (t2, p2)


def test_timezone_offset_is_utc_with_nanoseconds(repo: Repo) -> None:
    created = repo.mock.registry().get_image(f"{REPO}:tz")["created"].iloc[0]
    assert isinstance(created, pd.Timestamp)
    assert created == pd.Timestamp("2024-03-01T08:00:00.123456789Z")
    assert created.nanosecond == 789
    assert str(created.tz) == "UTC"


def test_zero_time_is_nat(repo: Repo) -> None:
    df = repo.mock.registry().get_image(f"{REPO}:zero")
    assert df.loc[0, "created"] is pd.NaT
    assert df.loc[0, "created_source"] is pd.NA


def test_labels_win_takes_the_label_time(repo: Repo) -> None:
    reg = repo.mock.registry(labels_win=True)
    df = reg.get_image(f"{REPO}:labelled")
    assert df.loc[0, "created"] == ts("2024-06-01T12:00:00Z")
    assert df.loc[0, "created_source"] == f"label:{OCI_CREATED}"
    # Without a label, the config's time, saying so.
    other = reg.get_image(f"{REPO}:schema2")
    assert other.loc[0, "created_source"] == "config"
    # A label-schema build date is the second choice.
    repo.mock.push(
        f"{REPO}:ls",
        image(created="2024-01-01T00:00:00Z", labels={"org.label-schema.build-date": "2023-12-31T00:00:00Z"}),
    )
    ls = reg.get_image(f"{REPO}:ls")
    assert (ls.loc[0, "created"], ls.loc[0, "created_source"]) == (
        ts("2023-12-31T00:00:00Z"),
        "label:org.label-schema.build-date",
    )


def test_labels_win_with_an_unreadable_label_falls_back_to_config() -> None:
    mock = MockRegistry()
    mock.push(f"{REPO}:x", image(created="2024-01-01T00:00:00Z", labels={OCI_CREATED: "yesterday"}))
    df = mock.registry(labels_win=True).get_image(f"{REPO}:x")
    assert df.loc[0, "error"] is pd.NA
    assert (df.loc[0, "created"], df.loc[0, "created_source"]) == (ts("2024-01-01T00:00:00Z"), "config")


def test_a_created_time_out_of_nanosecond_range_loses_one_cell_not_the_frame() -> None:
    mock = MockRegistry()
    mock.push(f"{REPO}:future", image(created="2500-01-01T00:00:00Z"))
    mock.push(f"{REPO}:ok", image(created="2024-01-01T00:00:00Z"))
    df = mock.registry().get_repository(REPO)
    assert df["tag"].tolist() == ["ok", "future"]
    assert df.loc[1, "created"] is pd.NaT


def test_platforms_filter(repo: Repo) -> None:
    df = repo.mock.registry(platforms=["linux/arm64"]).get_repository(REPO)
    check_schema(df)
    kept = [(r["tag"], r["platform"]) for r in records(df)]
    assert kept == [
        ("latest", "linux/arm64/v8"),
        ("multi", "linux/arm64/v8"),
        ("oci", "linux/arm64/v8"),
        # Errors with no platform to judge by stay; artifacts, having no platform, go.
        ("badjson", None),
        ("gone", None),
        ("noconfig", None),
        ("tampered", None),
    ]
    assert repo.mock.registry(platforms=["linux/arm64/v7"]).get_image(f"{REPO}:oci").empty
    assert len(repo.mock.registry(platforms=["linux/arm64/v8"]).get_image(f"{REPO}:oci")) == 1


def test_platforms_filter_normalises_the_arm64_variant() -> None:
    mock = MockRegistry()
    mock.push(f"{REPO}:1", index(image(platform="linux/amd64"), image(platform="linux/arm64")))
    df = mock.registry(platforms=["linux/arm64/v8"]).get_image(f"{REPO}:1")
    assert df["platform"].tolist() == ["linux/arm64"]


def test_attestations(repo: Repo) -> None:
    plain = repo.mock.registry().get_image(f"{REPO}:multi")
    assert plain["kind"].tolist() == ["index", "index"]
    df = repo.mock.registry(attestations=True).get_image(f"{REPO}:multi")
    check_schema(df)
    got = records(df)
    assert [r["kind"] for r in got] == ["index", "index", "artifact", "artifact"]
    proofs = [c for c in repo.multi.children if c.kind == "attestation"]
    images = [c for c in repo.multi.children if c.kind == "image"]
    want = sorted(
        (
            row(
                tag="multi",
                digest=repo.multi.digest,
                media_type=OCI_INDEX,
                kind="artifact",
                manifest_digest=proof.digest,
                artifact_type="attestation-manifest",
                annotations={
                    "vnd.docker.reference.digest": subject.digest,
                    "vnd.docker.reference.type": "attestation-manifest",
                },
            )
            for proof, subject in zip(proofs, images, strict=True)
        ),
        key=lambda r: r["manifest_digest"],
    )
    assert got[2:] == want


def test_shared_digest_is_fetched_once(repo: Repo) -> None:
    reg = repo.mock.registry()
    reg.get_repository(REPO)
    calls = repo.mock.calls
    for child in (repo.amd, repo.arm):
        assert calls.count(("manifest", f"{REPO}@{child.digest}")) == 1
        assert calls.count(("blob", f"{REPO}@{child.config_digest}")) == 1
    assert calls.count(("manifest", f"{REPO}:latest")) == 1
    assert calls.count(("manifest", f"{REPO}:multi")) == 1
    assert calls[0] == ("tags", REPO)


def test_empty_repository_has_the_schema() -> None:
    mock = MockRegistry()
    mock.push(f"{REPO}:1", image())
    mock.untag(f"{REPO}:1")
    reg = mock.registry()
    assert reg.tags(REPO) == []
    df = reg.get_repository(REPO)
    assert df.empty
    check_schema(df)
    # The manifest stays, by digest.
    assert len(reg.get_image(f"{REPO}@{image().digest}")) == 1


def test_unknown_repository_raises() -> None:
    mock = MockRegistry()
    mock.push("example.com/other:1", image())
    reg = mock.registry()
    with pytest.raises(NotFound) as info:
        reg.get_repository(REPO)
    assert info.value.codes == ("NAME_UNKNOWN",)
    assert info.value.status == 404
    with pytest.raises(NotFound):
        reg.tags(REPO)


# -- get_image, history, tags -----------------------------------------------------


def test_get_image_by_tag_digest_and_default_latest(repo: Repo) -> None:
    reg = repo.mock.registry()
    by_tag = records(reg.get_image(f"{REPO}:schema2"))
    assert by_tag == [
        image_row("schema2", repo.schema2, created="2024-01-02T03:04:05Z", labels={"a": "1", "b": "2"})
    ]
    by_digest = records(reg.get_image(f"{REPO}@{repo.schema2.digest}"))
    assert by_digest == [dict(by_tag[0], tag=None)]  # by digest: no tag, the digest in its column
    both = records(reg.get_image(f"{REPO}:whatever@{repo.schema2.digest}"))
    assert both == [dict(by_tag[0], tag="whatever")]
    latest = records(reg.get_image(REPO))
    assert latest == index_rows("latest", repo.multi, "2024-02-01T00:00:00Z")
    # An index entry by its own digest is a plain image.
    child = records(reg.get_image(f"{REPO}@{repo.arm.digest}"))
    assert child == [image_row(None, repo.arm, created="2024-02-01T00:00:00Z")]


def test_get_image_raises_when_the_top_manifest_fails(repo: Repo) -> None:
    reg = repo.mock.registry()
    with pytest.raises(NotFound):
        reg.get_image(f"{REPO}:gone")
    with pytest.raises(NotFound):
        reg.get_image(f"{REPO}:never-pushed")
    with pytest.raises(DigestMismatch) as mismatch:
        reg.get_image(f"{REPO}:tampered")
    assert mismatch.value.expected == repo.tampered.digest
    with pytest.raises(MalformedContent):
        reg.get_image(f"{REPO}:badjson")
    # A missing config is a row with an error, not an exception.
    df = reg.get_image(f"{REPO}:noconfig")
    assert str(df.loc[0, "error"]).startswith("NotFound: 404 from example.com/v2/team/app/blobs/")


def test_history(repo: Repo) -> None:
    reg = repo.mock.registry()
    h = reg.history(f"{REPO}:schema2")
    check_schema(h, HISTORY)
    base = {
        "registry": "example.com",
        "repository": "team/app",
        "tag": "schema2",
        "platform": "linux/amd64",
        "error": None,
    }
    assert records(h) == [
        dict(
            base,
            step=0,
            created=ts("2024-01-02T03:04:05Z"),
            created_by="ADD rootfs.tar /",
            empty_layer=False,
            comment=None,
        ),
        dict(
            base,
            step=1,
            created=ts("2024-01-02T03:04:05Z"),
            created_by="ENV X=1",
            empty_layer=True,
            comment="buildkit",
        ),
    ]
    # An index: one row per entry per platform, by platform then step.
    multi = records(reg.history(f"{REPO}:multi"))
    assert [(r["platform"], r["step"], r["created_by"]) for r in multi] == [
        ("linux/amd64", 0, "ADD a /"),
        ("linux/amd64", 1, "RUN b"),
        ("linux/arm64/v8", 0, "ADD a /"),
    ]
    assert {r["tag"] for r in multi} == {"multi"}
    # schema1: from v1Compatibility, oldest first.
    old = records(reg.history(f"{REPO}:old"))
    assert [(r["step"], r["created_by"], r["created"], r["empty_layer"]) for r in old] == [
        (0, "ADD rootfs /", ts("2016-05-01T00:00:00Z"), False),
        (1, "CMD sh", ts("2016-05-01T00:00:00Z"), False),
    ]
    # No history: an empty frame with the schema.
    none = reg.history(f"{REPO}:nocreated")
    assert none.empty
    check_schema(none, HISTORY)
    with pytest.raises(NotFound):
        reg.history(f"{REPO}:gone")


def test_tags_lists_pushed_and_fault_tags_sorted(repo: Repo) -> None:
    assert repo.mock.registry().tags(REPO) == sorted([*PUSHED, "latest", "gone"])


def test_repository_fault_fails_the_tag_list() -> None:
    mock = MockRegistry()
    mock.push(f"{REPO}:1", image())
    mock.fail(REPO, 403)
    with pytest.raises(Denied) as info:
        mock.registry().get_repository(REPO)
    assert info.value.codes == ("DENIED",)


# -- formats ----------------------------------------------------------------------


def test_docker_and_oci_media_types() -> None:
    docker, oci = image(), image(oci=True)
    assert json.loads(docker.body)["mediaType"] == DOCKER_MANIFEST
    assert json.loads(docker.body)["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    assert json.loads(oci.body)["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert index(docker).media_type == DOCKER_LIST
    assert index(oci).media_type == OCI_INDEX
    assert index(docker, attestations=True).media_type == OCI_INDEX
    assert index(docker, oci=True).media_type == OCI_INDEX
    for content in (docker, oci, index(docker), artifact(HELM), schema1(), schema1(signed=False), raw("{}")):
        if content.kind != "schema1":
            assert content.digest == sha256(content.body)
    with pytest.raises(ValueError):
        index(schema1())


def test_docker_list_rows() -> None:
    mock = MockRegistry()
    amd, arm = image(platform="linux/amd64"), image(platform="linux/arm/v7")
    idx = index(amd, arm)
    mock.push(f"{REPO}:1", idx)
    df = mock.registry().get_image(f"{REPO}:1")
    assert df["media_type"].tolist() == [DOCKER_LIST, DOCKER_LIST]
    assert df["platform"].tolist() == ["linux/amd64", "linux/arm/v7"]
    assert df["variant"].tolist() == [pd.NA, "v7"]


def test_schema1_signed_and_unsigned() -> None:
    mock = MockRegistry()
    signed, unsigned = schema1(created="2016-01-01T00:00:00Z"), schema1(signed=False, architecture="arm")
    assert signed.digest != sha256(signed.body)  # over the payload: the body without signatures
    assert b'"signatures"' in signed.body
    doc = json.loads(signed.body)
    del doc["signatures"]
    assert signed.digest == sha256(json.dumps(doc, indent=3).encode())
    mock.push(f"{REPO}:s", signed)
    mock.push(f"{REPO}:u", unsigned)
    reg = mock.registry()
    s = records(reg.get_image(f"{REPO}:s"))[0]
    assert (s["digest"], s["media_type"], s["kind"], s["created"]) == (
        signed.digest,
        SCHEMA1_SIGNED,
        "schema1",
        ts("2016-01-01T00:00:00Z"),
    )
    u = records(reg.get_image(f"{REPO}:u"))[0]
    assert (u["digest"], u["media_type"], u["platform"], u["created"], u["created_source"]) == (
        unsigned.digest,
        SCHEMA1,
        "linux/arm",
        None,
        None,
    )
    assert records(reg.get_image(f"{REPO}@{signed.digest}"))[0]["kind"] == "schema1"


def test_helm_chart_without_artifact_type() -> None:
    mock = MockRegistry()
    chart = artifact(
        config_media_type="application/vnd.cncf.helm.config.v1+json",
        config=b'{"name":"app","version":"1.0.0"}',
        layers=[3000],
        layer_media_type="application/vnd.cncf.helm.chart.content.v1.tar+gzip",
    )
    mock.push(f"{REPO}:chart", chart)
    r = records(mock.registry().get_image(f"{REPO}:chart"))[0]
    assert (r["kind"], r["artifact_type"], r["size"], r["config_digest"]) == (
        "artifact",
        "application/vnd.cncf.helm.config.v1+json",
        3000,
        sha256(b'{"name":"app","version":"1.0.0"}'),
    )
    # No config fetch for an artifact.
    assert [k for k, _ in mock.calls] == ["manifest"]


def test_artifact_with_subject_and_empty_config() -> None:
    mock = MockRegistry()
    subject = image()
    sbom = artifact("application/spdx+json", layers=[10], subject=subject)
    assert json.loads(sbom.body)["config"]["mediaType"] == OCI_EMPTY
    assert json.loads(sbom.body)["subject"]["digest"] == subject.digest
    mock.push(f"{REPO}:sbom", sbom)
    assert len(mock.registry().get_image(f"{REPO}@{subject.digest}")) == 1  # pushed along


def test_index_edge_cases() -> None:
    mock = MockRegistry()
    amd = image(platform="linux/amd64")
    mock.push(f"{REPO}:empty", index())
    mock.push(f"{REPO}:nested", index(index(amd)))
    mock.push(f"{REPO}:missing", index(amd, image(platform="linux/s390x")))
    s390 = image(platform="linux/s390x")
    mock.fail(f"{REPO}@{s390.digest}")
    reg = mock.registry()
    empty = records(reg.get_image(f"{REPO}:empty"))
    assert [(r["kind"], r["error"]) for r in empty] == [("index", "index lists no manifests")]
    nested = records(reg.get_image(f"{REPO}:nested"))
    assert nested[0]["error"] == f"ContentError: index entry {index(amd).digest} is not an image manifest"
    missing = records(reg.get_image(f"{REPO}:missing"))
    assert [(r["platform"], r["error"] is None) for r in missing] == [
        ("linux/amd64", True),
        ("linux/s390x", False),
    ]
    assert missing[1]["manifest_digest"] == s390.digest
    assert missing[1]["error"].startswith("NotFound: 404 from example.com/v2/team/app/manifests/sha256:")


def test_config_fields_and_raw_config() -> None:
    mock = MockRegistry()
    win = image(
        platform="windows/amd64", config={"os.version": "10.0.17763.1", "created": "2024-01-01T00:00:00Z"}
    )
    mock.push(f"{REPO}:win", index(win))
    bad = image(config=b"{oops")
    mock.push(f"{REPO}:bad", bad)
    gone = image(config={"os": None, "architecture": None})
    mock.push(f"{REPO}:declared", index(image(platform="linux/ppc64le", config={"os": None})))
    mock.push(f"{REPO}:undeclared", gone)
    reg = mock.registry()
    w = records(reg.get_image(f"{REPO}:win"))[0]
    assert (w["platform"], w["os_version"], w["created"]) == (
        "windows/amd64",
        "10.0.17763.1",
        ts("2024-01-01T00:00:00Z"),
    )
    assert json.loads(index(win).body)["manifests"][0]["platform"]["os.version"] == "10.0.17763.1"
    b = records(reg.get_image(f"{REPO}:bad"))[0]
    assert b["error"] == "MalformedContent: image config is not JSON (JSONDecodeError: '{oops'...)"
    assert b["config_digest"] == sha256(b"{oops")
    # An index entry's declared platform stands in for what the config leaves out.
    d = records(reg.get_image(f"{REPO}:declared"))[0]
    assert (d["platform"], d["os"], d["architecture"]) == ("linux/ppc64le", "linux", "ppc64le")
    u = records(reg.get_image(f"{REPO}:undeclared"))[0]
    assert (u["platform"], u["os"], u["error"]) == (None, None, None)


# -- faults ------------------------------------------------------------------------


def test_corrupt_with_malformed_json_on_a_new_tag() -> None:
    mock = MockRegistry()
    mock.push(f"{REPO}:ok", image())
    mock.corrupt(f"{REPO}:broken", b'{"schemaVersion": 2, "mediaType": ')
    reg = mock.registry()
    assert reg.tags(REPO) == ["broken", "ok"]
    df = reg.get_repository(REPO)
    assert df["error"].tolist()[0].startswith("MalformedContent: manifest is not JSON")
    assert df["error"].isna().tolist() == [False, True]


def test_corrupt_config_is_a_digest_mismatch_row() -> None:
    mock = MockRegistry()
    img = image(created="2024-01-01T00:00:00Z")
    mock.push(f"{REPO}:1", img)
    mock.corrupt(f"{REPO}@{img.config_digest}")
    r = records(mock.registry().get_image(f"{REPO}:1"))[0]
    assert r["error"] == (
        f"DigestMismatch: digest mismatch for blob {img.config_digest} of {REPO}: "
        f"expected {img.config_digest}, got {sha256((img.config or b'') + NEWLINE)}"
    )
    assert (r["created"], r["size"], r["config_digest"]) == (None, None, img.config_digest)


FAST = RetryPolicy(initial=0.01, maximum=0.02)


def test_fail_with_a_status_an_exception_and_times() -> None:
    mock = MockRegistry()
    mock.push(f"{REPO}:1", image())
    # Under the real retry layer now: a 503 once is retried, and the row is good.
    mock.fail(f"{REPO}:1", 503, times=1)
    reg = mock.registry(retry=FAST)
    assert len(reg.get_image(f"{REPO}:1")) == 1
    assert reg.requests[["kind", "status", "attempt"]].values.tolist() == [
        ["manifest", 503, 1],
        ["manifest", 200, 2],
        ["blob", 200, 1],
    ]
    # A 503 every time outlasts the retries.
    mock.fail(f"{REPO}:1", 503)
    with pytest.raises(ServerError) as info:
        reg.get_image(f"{REPO}:1")
    assert info.value.temporary and info.value.status == 503
    assert mock.calls.count(("manifest", f"{REPO}:1")) == 2 + FAST.attempts
    mock.fail(f"{REPO}:1", RuntimeError("boom"))
    r = records(reg.get_repository(REPO))[0]
    assert r["error"] == "RuntimeError: boom"
    with pytest.raises(RuntimeError):
        reg.get_image(f"{REPO}:1")


def test_a_429_twice_with_retry_after_is_retried_and_the_row_is_good() -> None:
    mock = MockRegistry()
    img = image(created="2024-01-01T00:00:00Z")
    mock.push(f"{REPO}:1", img)
    mock.fail(f"{REPO}:1", 429, times=2, retry_after=0.05)
    reg = mock.registry()
    df = reg.get_repository(REPO)
    assert df["error"].isna().all() and df.loc[0, "digest"] == img.digest
    log = reg.requests
    manifests = log[log["kind"] == "manifest"]
    assert manifests["status"].tolist() == [429, 429, 200]
    assert manifests["attempt"].tolist() == [1, 2, 3]
    assert (manifests["started"].diff().dropna() >= pd.Timedelta(0.04, "s")).all()  # Retry-After waited for


def test_a_dropped_connection_is_retried_then_an_error_row() -> None:
    mock = MockRegistry()
    mock.push(f"{REPO}:1", image())
    mock.push(f"{REPO}:2", image(layers=[2]))
    mock.drop(f"{REPO}:1", times=1)
    reg = mock.registry(retry=FAST)
    assert reg.get_repository(REPO)["error"].isna().all()
    mock.drop(f"{REPO}:2")
    df = reg.get_repository(REPO)
    assert str(df.set_index("tag").loc["2", "error"]).startswith(
        "TransportError: connection failed for GET https://example.com/v2/team/app/manifests/2"
    )
    mock.fail(f"{REPO}:1", ConnectionResetError("reset by peer"), times=1)
    assert len(reg.get_image(f"{REPO}:1")) == 1


def test_a_delay_runs_into_the_budget() -> None:
    mock = MockRegistry()
    mock.push(f"{REPO}:1", image())
    mock.push(f"{REPO}:2", image(layers=[2]))
    mock.delay(f"{REPO}:2", 5.0)
    df = mock.registry(budget=0.3).get_repository(REPO).set_index("tag")
    assert df.loc["1", "error"] is pd.NA
    assert str(df.loc["2", "error"]).startswith("timed out")


def test_basic_auth_challenge_and_credentials() -> None:
    mock = MockRegistry(users={"alice": "s3cret-Pw"})
    mock.push(f"{REPO}:1", image())
    with pytest.raises(Unauthorized):
        mock.registry().tags(REPO)
    reg = mock.registry(credentials=Credentials.from_mapping({"example.com": ("alice", "s3cret-Pw")}))
    assert reg.tags(REPO) == ["1"]
    assert reg.requests["status"].tolist() == [401, 200]  # the challenge, then with credentials
    assert "s3cret" not in reg.requests.to_string()


def test_the_cache_under_the_mock() -> None:
    mock = MockRegistry()
    mock.push(f"{REPO}:1", image(created="2024-01-01T00:00:00Z"))
    reg = mock.registry(cache="memory://")
    first = reg.get_repository(REPO)
    again = reg.get_repository(REPO)
    pd.testing.assert_frame_equal(first, again)
    assert set(reg.requests["cache"]) >= {"miss", "hit"}
    assert mock.calls.count(("blob", f"{REPO}@{image(created='2024-01-01T00:00:00Z').config_digest}")) == 1


def test_requests_log(repo: Repo) -> None:
    reg = repo.mock.registry()
    reg.get_image(f"{REPO}:schema2")
    with pytest.raises(NotFound):
        reg.get_image(f"{REPO}:gone")
    log = records(reg.requests)
    assert [
        (r["kind"], r["method"], r["status"], r["bytes"], r["cache"], r["host"], r["repository"]) for r in log
    ] == [
        ("manifest", "GET", 200, len(repo.schema2.body), "none", "example.com", "team/app"),
        ("blob", "GET", 200, len(repo.schema2.config or b""), "none", "example.com", "team/app"),
        ("manifest", "GET", 404, log[2]["bytes"], "none", "example.com", "team/app"),
    ]
    assert [r["error"] for r in log] == [None, None, "HTTP 404"]
    assert all(r["attempt"] == 1 and r["duration_s"] >= 0 for r in log)
    # Each Registry has its own log; the mock sees every client's calls.
    other = repo.mock.registry()
    assert other.requests.empty
    other.tags(REPO)
    assert repo.mock.calls[-1] == ("tags", REPO)


def test_remote_head_catalog_and_docker_hub() -> None:
    mock = MockRegistry()
    alpine = image(created="2024-01-01T00:00:00Z")
    mock.push("alpine:3.19", alpine)
    mock.push(f"{REPO}:1", schema1())
    mock.push("example.com/team/b:1", image())
    factory = mock.factory()
    reg = Registry(factory=factory)
    r = records(reg.get_image("alpine:3.19"))[0]
    assert (r["registry"], r["repository"], r["tag"]) == ("docker.io", "library/alpine", "3.19")
    assert reg.requests["host"].tolist()[0] == "registry-1.docker.io"
    assert reg.catalog("example.com") == ["team/app", "team/b"]
    remote = factory.remote("example.com")
    assert factory.remote("EXAMPLE.com") is remote
    assert remote.head(parse_reference(f"{REPO}:1")) == (schema1().digest, SCHEMA1_SIGNED)
    # The mock's own record: a real Remote keeps none.
    assert mock.calls[-2:] == [("catalog", "example.com"), ("manifest_head", f"{REPO}:1")]
    with pytest.raises(NotFound):
        remote.head(parse_reference(f"{REPO}:2"))


def test_cancel_and_budget() -> None:
    mock = MockRegistry()
    mock.push(f"{REPO}:1", image())
    factory = mock.factory()
    reg = Registry(factory=factory)
    remote = factory.remote("example.com")
    factory.cancel()  # as the real factory: stops the Remotes it made...
    with pytest.raises(Cancelled):
        remote.blob(parse_reference(REPO).repo, image().config_digest or "")
    assert reg.tags(REPO) == ["1"]  # ...and later calls get a fresh one (Flux's Cancel)
    slow = MockRegistry(latency=0.05)
    for i in range(12):
        slow.push(f"{REPO}:{i}", image(layers=[i]))
    df = slow.registry(budget=0.3, concurrency=2).get_repository(REPO)
    assert len(df) == 12
    errors = df["error"].dropna().tolist()
    assert errors and all(e.startswith("timed out") for e in errors)
    assert df["error"].isna().any()


def test_concurrent_scans_are_complete() -> None:
    mock = MockRegistry()
    for i in range(40):
        mock.push(
            f"{REPO}:t{i:02d}",
            index(image(platform="linux/amd64", layers=[i]), image(platform="linux/arm64", layers=[i])),
        )
    reg = mock.registry(concurrency=16)
    frames: list[pd.DataFrame] = []

    def run() -> None:
        frames.append(reg.get_repository(REPO))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for df in frames:
        assert len(df) == 80 and df["error"].isna().all()
        assert df["tag"].tolist() == sorted(f"t{i:02d}" for i in range(40) for _ in range(2))


def test_builder_errors() -> None:
    mock = MockRegistry()
    img = image()
    with pytest.raises(ValueError):
        mock.push(f"{REPO}@{image(layers=[1]).digest}", img)
    assert mock.push(f"{REPO}@{img.digest}", img) == img.digest
    with pytest.raises(KeyError):
        mock.tag(f"{REPO}:a", f"{REPO}:nope")
    with pytest.raises(KeyError):
        mock.untag(f"{REPO}:nope")
    with pytest.raises(ValueError):
        image(layers=[-1])
    with pytest.raises(ValueError):
        schema1(history=["a"], layers=2)
    with pytest.raises(ValueError):
        image(platform="linux")
    # A tag copied across repositories carries its content along.
    mock.tag("example.com/other/app:x", f"{REPO}@{img.digest}")
    assert records(mock.registry().get_image("example.com/other/app:x"))[0]["digest"] == img.digest


def test_module_doctests() -> None:
    for module in (regdata.testing, regdata.testing.content):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.attempted >= 5 and result.failed == 0, module.__name__


def test_tags_and_catalog_are_paged_with_link_headers() -> None:
    mock = MockRegistry()
    for tag in ("a", "b", "c", "d", "e"):
        mock.push(f"{REPO}:{tag}", image())
    for name in ("x", "y", "z"):
        mock.push(f"example.com/{name}:1", image())
    reg = mock.registry()
    remote = reg.remote("example.com")
    remote.page_size = 2  # type: ignore[attr-defined]
    assert reg.tags(REPO) == ["a", "b", "c", "d", "e"]
    assert reg.catalog("example.com") == ["team/app", "x", "y", "z"]
    assert reg.requests["kind"].tolist() == ["tags"] * 3 + ["catalog"] * 2


def test_no_password_in_any_repr() -> None:
    mock = MockRegistry(users={"alice": "s3cret-Pw"})
    transport = mock.transport()
    for text in (repr(mock), repr(transport), repr(transport.store), repr(mock.registry())):
        assert "s3cret" not in text
