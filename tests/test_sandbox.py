"""The sandbox registry: filled from data/, idempotent, read through mirrors, tags moved over time."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import requests

import regdata
from regdata.analysis.fleet import read_fleet
from regdata.analysis.freshness import classify_changes
from regdata.sandbox import DemoData, Sandbox, SandboxError, load_data, pinned_reference

FLEET = Path(__file__).resolve().parents[1] / "regdata" / "sandbox" / "data" / "fleet" / "kubernetes.yaml"


@pytest.fixture(scope="module")
def data() -> DemoData:
    return load_data()


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory, data: DemoData) -> Iterator[Sandbox]:
    with Sandbox.start(port=0, root=tmp_path_factory.mktemp("sandbox"), data=data) as sb:
        yield sb


@pytest.fixture(scope="module")
def filled(sandbox: Sandbox) -> regdata.sandbox.FillReport:
    return sandbox.fill(small=True)


def reader(sandbox: Sandbox, **options: object) -> regdata.Registry:
    options.setdefault("cache", None)
    return sandbox.registry(credentials=regdata.Credentials.none(), **options)


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


def test_fill_pushes_the_small_subset(
    sandbox: Sandbox, filled: regdata.sandbox.FillReport, data: DemoData
) -> None:
    small = data.selection(small=True)
    assert filled.tags == filled.pushed == sum(len(t) for t in small.values())
    assert filled.blobs > 0 and filled.manifests > 0
    with _session() as s:
        for image, tags in small.items():
            listed = s.get(f"{sandbox.url}/v2/library/{image}/tags/list", timeout=5).json()["tags"]
            assert sorted(listed) == sorted(tags)


def test_second_fill_only_looks(sandbox: Sandbox, filled: regdata.sandbox.FillReport) -> None:
    again = sandbox.fill(small=True)
    assert (again.pushed, again.unchanged, again.blobs, again.manifests) == (0, filled.tags, 0, 0)
    # One tag list per repository and one HEAD per tag: nothing else.
    assert again.requests == filled.tags + len({*sandbox.data.selection(small=True)})
    assert "already there" in str(again)


def test_mirrors_serve_docker_io_names(sandbox: Sandbox, filled: object, data: DemoData) -> None:
    assert sandbox.mirrors == {"docker.io": sandbox.host}
    df = reader(sandbox).get_image("nginx:1.13")
    assert set(df["registry"]) == {"docker.io"} and set(df["repository"]) == {"library/nginx"}
    assert df["error"].isna().all()
    hub = data.indexes[data.doc["images"]["nginx"]["tags"]["1.13"]]
    records = [data.manifests[d] for d in hub["manifests"]]
    assert sorted(df["platform"]) == sorted(
        "/".join(p for p in (r["os"], r["architecture"], r["variant"]) if p) for r in records
    )
    amd64 = df.loc[df["platform"] == "linux/amd64"].iloc[0]
    real = next(r for r in records if r["architecture"] == "amd64")
    # Real created time (newest history entry) and real compressed size.
    assert amd64["created"] == pd.Timestamp("2017-12-26T18:17:01Z")
    assert amd64["size"] == sum(layer[1] for layer in real["layers"]) == 44440075
    assert amd64["layers"] == len(real["layers"])
    assert amd64["media_type"] == "application/vnd.docker.distribution.manifest.list.v2+json"


def test_layer_sizes_are_real_while_contents_are_stand_ins(sandbox: Sandbox, filled: object) -> None:
    accept = "application/vnd.docker.distribution.manifest.v2+json"
    with _session() as s:
        index = s.get(
            f"{sandbox.url}/v2/library/nginx/manifests/1.13",
            timeout=5,
            headers={"Accept": "application/vnd.docker.distribution.manifest.list.v2+json"},
        ).json()
        child = index["manifests"][0]["digest"]
        manifest = s.get(
            f"{sandbox.url}/v2/library/nginx/manifests/{child}", timeout=5, headers={"Accept": accept}
        ).json()
        layer = manifest["layers"][0]
        blob = s.head(f"{sandbox.url}/v2/library/nginx/blobs/{layer['digest']}", timeout=5)
    assert blob.status_code == 200
    # Distribution 2.8 accepts a descriptor size other than the blob's: the sizes are Docker Hub's.
    assert int(blob.headers["Content-Length"]) < 4096 < layer["size"]


def test_history_is_real(sandbox: Sandbox, filled: object) -> None:
    history = reader(sandbox, platforms=["linux/amd64"]).history("busybox:1.28")
    assert list(history["created_by"]) == [
        "ADD file:413866e909560e078243ce3a4fe1ec87fa5c966a7d47d7f1d9448a2dcbc26a5a in / ",
        'CMD ["sh"]',
    ]
    assert list(history["created"]) == [pd.Timestamp("2018-01-24T04:29:35Z")] * 2
    assert list(history["empty_layer"]) == [False, True]


def test_2026_indexes_keep_their_attestations(sandbox: Sandbox, filled: object, data: DemoData) -> None:
    df = reader(sandbox, attestations=True).get_image("alpine:latest")
    hub = data.indexes[data.doc["images"]["alpine"]["recent"]["latest"]]
    records = [data.manifests[d] for d in hub["manifests"]]
    artifacts = df.loc[df["kind"] == "artifact"]
    assert len(artifacts) == sum(r["attestation"] for r in records) == 8
    assert set(artifacts["artifact_type"]) == {"attestation-manifest"}
    assert set(df["media_type"]) == {"application/vnd.oci.image.index.v1+json"}
    images = df.loc[df["kind"] != "artifact"]
    assert len(images) == 8 and images["created"].min() >= pd.Timestamp("2026-01-01", tz="UTC")


def test_windows_images_carry_os_version_and_loopback_foreign_layers(sandbox: Sandbox) -> None:
    sandbox.fill({"golang": ["1.9-nanoserver"]})
    df = reader(sandbox).get_image("golang:1.9-nanoserver")
    assert set(df["os"]) == {"windows"}
    assert df["os_version"].str.startswith("10.0.").all()
    child = df["manifest_digest"].iloc[0]
    with _session() as s:
        manifest = s.get(
            f"{sandbox.url}/v2/library/golang/manifests/{child}",
            timeout=5,
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        ).json()
    foreign = [x for x in manifest["layers"] if "foreign" in x["mediaType"]]
    assert foreign and all(u.startswith("http://127.0.0.1:9/") for x in foreign for u in x["urls"])


def test_fleet_pins_resolve_to_older_versions(sandbox: Sandbox, filled: object, data: DemoData) -> None:
    fleet = read_fleet(FLEET)
    pins = [str(r) for r in fleet.loc[fleet["digest"].notna(), "reference"]]
    assert len(pins) == 2
    # The pins written by scripts/make-demo-data are the sandbox's digests of those days.
    assert "nginx:1.13@" + pins[0].split("@")[1] == pinned_reference(
        data, "nginx", "1.13", "2017-12-15T00:00:00Z"
    )
    report = sandbox.fill(small=True, pins=pins)
    assert all(" as of " in what for what in report.pins.values()), report.pins
    reg = reader(sandbox, platforms=["linux/amd64"])
    nginx = reg.get_image(pins[0])
    assert nginx["created"].iloc[0] == pd.Timestamp("2017-12-12T05:15:03Z")  # before the 2017-12-26 rebuild
    redis = reg.get_image(pins[1])
    now = reg.get_image("redis:4.0-alpine")
    # A re-push: another index digest, the same amd64 image.
    assert redis["digest"].iloc[0] != now["digest"].iloc[0]
    assert redis["manifest_digest"].iloc[0] == now["manifest_digest"].iloc[0]
    assert sandbox.fill(small=True, pins=pins).pushed == 0


def test_a_pin_that_is_no_version_is_reported(sandbox: Sandbox, filled: object) -> None:
    report = sandbox.fill(
        {"alpine": []}, pins=["alpine:3.6@sha256:" + "1" * 64, "quay.io/x/y@sha256:" + "2" * 64]
    )
    assert report.pushed == 0
    assert "is no version of alpine:3.6" in report.pins["alpine:3.6@sha256:" + "1" * 64]
    assert "not in the demo data" in report.pins["quay.io/x/y@sha256:" + "2" * 64]


def test_tags_move_forward_in_time_and_never_back(sandbox: Sandbox, data: DemoData) -> None:
    reg = reader(sandbox, platforms=["linux/amd64"])
    sandbox.fill({"redis": ["4.0"]}, as_of="2017-12-15")
    assert reg.get_image("redis:4.0")["created"].iloc[0] == pd.Timestamp("2017-12-12T07:15:58Z")
    moved = sandbox.fill({"redis": ["4.0"]})
    assert moved.pushed == 1
    newest = reg.get_image("redis:4.0")
    assert newest["created"].iloc[0] == pd.Timestamp("2018-01-24T22:33:49Z")
    back = sandbox.fill({"redis": ["4.0"]}, as_of="2017-12-15")
    assert back.pushed == 0
    assert reg.get_image("redis:4.0")["digest"].iloc[0] == newest["digest"].iloc[0]
    versions = sandbox.versions("redis", "4.0")
    assert versions["digest"].iloc[-1] == newest["digest"].iloc[0]
    assert versions["seen_at"].is_monotonic_increasing
    assert versions["recorded"].iloc[-1] and not versions["recorded"].iloc[0]


def test_a_tag_that_did_not_exist_yet_is_not_pushed(sandbox: Sandbox) -> None:
    report = sandbox.fill({"alpine": ["3.7"]}, as_of="2016-01-01")
    assert report.tags == 0


def test_timeline_frame_tells_rebuilds_from_repushes(data: DemoData) -> None:
    changes = classify_changes(data.timeline())
    counts = changes["change"].value_counts()
    assert counts["repush"] > 0 and counts["rebuild"] > 0
    nginx = changes.loc[(changes["image"] == "nginx") & (changes["tag"] == "1.13")]
    assert nginx["change"].iloc[-1] == "repush"


def test_data_is_deterministic(data: DemoData) -> None:
    fresh = load_data()
    version = fresh.version_at("python", "3.6-windowsservercore", None)
    assert version is not None
    assert fresh.digest_of(version) == data.digest_of(version)


def test_unknown_images_and_tags_are_errors(sandbox: Sandbox) -> None:
    with pytest.raises(SandboxError, match="no image 'postgres'"):
        sandbox.fill(["postgres"])
    with pytest.raises(SandboxError, match="no tag 9.9 of nginx"):
        sandbox.fill({"nginx": ["9.9"]})


def test_missing_binary_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="apt-get install docker-registry"):
        Sandbox.start(binary=str(tmp_path / "nope"), root=tmp_path, port=0)


def test_a_taken_port_falls_back_to_a_free_one(sandbox: Sandbox, tmp_path: Path) -> None:
    with Sandbox.start(port=sandbox.port, root=tmp_path) as other:
        assert other.port != sandbox.port
        with _session() as s:
            assert s.get(f"{other.url}/v2/", timeout=5).status_code == 200
    assert not other.running
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", other.port)) != 0


def test_storage_is_kept_for_the_next_start(tmp_path: Path, data: DemoData) -> None:
    with Sandbox.start(port=0, root=tmp_path, data=data) as first:
        assert first.fill({"busybox": ["1.28"]}).pushed == 1
    with Sandbox.start(port=0, root=tmp_path, data=data) as second:
        again = second.fill({"busybox": ["1.28"]})
        assert (again.pushed, again.requests) == (0, 2)
    config = json.loads((tmp_path / "config.yml").read_text())
    assert config["http"]["addr"].startswith("127.0.0.1:")
