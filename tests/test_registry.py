"""The Registry against the real registry: the images and history frames, row by row."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest

import regdata
from regdata.frames import HISTORY, IMAGES
from tests.support.builder import (
    ArtifactSpec,
    Builder,
    History,
    ImageSpec,
    Platform,
    Schema1Spec,
    helm_chart_spec,
)
from tests.support.registry_server import RegistryServer


def registry_client(**kwargs: object) -> regdata.Registry:
    kwargs.setdefault("cache", None)
    kwargs.setdefault("credentials", regdata.Credentials.none())
    return regdata.Registry(**kwargs)  # type: ignore[arg-type]


def assert_schema(frame: pd.DataFrame, schema: tuple[tuple[str, str], ...]) -> None:
    assert [c for c, _ in schema] == list(frame.columns)
    for column, dtype in schema:
        assert str(frame[column].dtype) == dtype or (
            dtype == "string" and str(frame[column].dtype) == "string"
        ), column


@pytest.fixture(scope="module")
def app(registry: RegistryServer, builder: Builder) -> dict[str, object]:
    """One repository holding every kind of tag."""
    repo = "frames/app"
    pushed = {
        "docker": builder.push_image(
            repo,
            ImageSpec(format="docker", created="2024-01-02T03:04:05Z", labels={"team": "data"}),
            tags=["1.0"],
        ),
        "oci": builder.push_image(
            repo,
            ImageSpec(format="oci", created="2024-03-01T10:00:00.123456789+02:00"),
            tags=["2.0", "stable"],
        ),
        "list": builder.push_multiarch(
            repo,
            ["linux/amd64", "linux/arm/v7", "linux/arm64/v8"],
            tags=["3.0"],
            format="docker",
            spec=ImageSpec(created="2024-05-01T00:00:00Z"),
        ),
        "index": builder.push_multiarch(
            repo,
            ["linux/amd64", "linux/arm64/v8"],
            tags=["4.0", "latest"],
            format="oci",
            attest=True,
            spec=ImageSpec(created="2024-06-01T00:00:00Z"),
        ),
        "artifact": builder.push_artifact(repo, helm_chart_spec(), tags=["chart"]),
        "empty-artifact": builder.push_artifact(repo, ArtifactSpec(), tags=["sbom"]),
        "schema1": builder.push_schema1(repo, "0.9", Schema1Spec()),
        "nocreated": builder.push_image(repo, ImageSpec(created=None, history=()), tags=["nocreated"]),
        "zero": builder.push_image(repo, ImageSpec(created="0001-01-01T00:00:00Z"), tags=["zero"]),
        "labelled": builder.push_image(
            repo,
            ImageSpec(
                created="2020-01-01T00:00:00Z",
                labels={"org.opencontainers.image.created": "2023-07-07T07:07:07Z"},
            ),
            tags=["labelled"],
        ),
    }
    return {"repo": f"{registry.host}/{repo}", "pushed": pushed}


def test_every_kind_of_tag_becomes_rows(app: dict[str, object]) -> None:
    reg = registry_client()
    df = reg.get_repository(str(app["repo"]))
    pushed = app["pushed"]
    assert isinstance(pushed, dict)
    assert_schema(df, IMAGES)
    assert df["error"].isna().all(), df[df["error"].notna()][["tag", "error"]]
    by_tag = {tag: group for tag, group in df.groupby("tag")}
    assert set(by_tag) == {
        "1.0",
        "2.0",
        "stable",
        "3.0",
        "4.0",
        "latest",
        "chart",
        "sbom",
        "0.9",
        "nocreated",
        "zero",
        "labelled",
    }

    one = by_tag["1.0"].iloc[0]
    assert one["kind"] == "image" and one["platform"] == "linux/amd64"
    assert one["digest"] == pushed["docker"].digest == one["manifest_digest"]
    assert one["config_digest"] == pushed["docker"].config_digest
    assert one["created"] == pd.Timestamp("2024-01-02T03:04:05Z")
    assert one["labels"] == {"team": "data"}
    assert one["size"] == sum(layer.size for layer in pushed["docker"].layers)
    assert one["layers"] == len(pushed["docker"].layers)

    two = by_tag["2.0"].iloc[0]
    assert two["created"] == pd.Timestamp("2024-03-01T08:00:00.123456789Z")  # offset to UTC, ns kept
    assert two["created"].nanosecond == 789
    assert by_tag["stable"].iloc[0]["digest"] == two["digest"]

    three = by_tag["3.0"]
    assert sorted(three["platform"]) == ["linux/amd64", "linux/arm/v7", "linux/arm64/v8"]
    assert set(three["kind"]) == {"index"} and set(three["digest"]) == {pushed["list"].digest}
    arm = three[three["platform"] == "linux/arm/v7"].iloc[0]
    assert (arm["os"], arm["architecture"], arm["variant"]) == ("linux", "arm", "v7")
    assert {c.digest for c in pushed["list"].children} == set(three["manifest_digest"])

    four = by_tag["4.0"]
    assert sorted(four["platform"]) == ["linux/amd64", "linux/arm64/v8"]  # attestations are not images
    assert "unknown/unknown" not in set(df["platform"].dropna())

    chart = by_tag["chart"].iloc[0]
    assert chart["kind"] == "artifact" and pd.isna(chart["platform"]) and pd.isna(chart["created"])
    assert chart["artifact_type"] == "application/vnd.cncf.helm.config.v1+json"
    assert by_tag["sbom"].iloc[0]["artifact_type"] == "application/vnd.example.regdata.v1+json"

    old = by_tag["0.9"].iloc[0]
    assert old["kind"] == "schema1" and old["digest"] == pushed["schema1"].digest
    assert old["platform"] == "linux/amd64" and pd.notna(old["created"])

    assert pd.isna(by_tag["nocreated"].iloc[0]["created"])
    assert pd.isna(by_tag["zero"].iloc[0]["created"])
    labelled = by_tag["labelled"].iloc[0]
    assert labelled["created"] == pd.Timestamp("2020-01-01T00:00:00Z")
    assert labelled["created_source"] == "config"


def test_sorted_newest_first_nat_last(app: dict[str, object]) -> None:
    df = registry_client().get_repository(str(app["repo"]))
    created = df["created"]
    known = created.dropna()
    assert known.is_monotonic_decreasing
    assert created.isna().sum() == len(created) - len(known)
    assert created.iloc[len(known) :].isna().all()
    again = registry_client(concurrency=1).get_repository(str(app["repo"]))
    pd.testing.assert_frame_equal(df, again)


def test_labels_can_win(app: dict[str, object]) -> None:
    df = registry_client(labels_win=True).get_image(f"{app['repo']}:labelled")
    row = df.iloc[0]
    assert row["created"] == pd.Timestamp("2023-07-07T07:07:07Z")
    assert row["created_source"] == "label:org.opencontainers.image.created"


def test_attestations_on_request_and_platform_filter(app: dict[str, object]) -> None:
    df = registry_client(attestations=True).get_image(f"{app['repo']}:4.0")
    att = df[df["artifact_type"] == "attestation-manifest"]
    assert len(att) == 2 and set(att["kind"]) == {"artifact"}
    assert all("vnd.docker.reference.digest" in a for a in att["annotations"])
    arm = registry_client(platforms=["linux/arm64"]).get_repository(str(app["repo"]))
    assert set(arm["platform"]) == {"linux/arm64/v8"}
    assert set(arm["tag"]) == {"3.0", "4.0", "latest"}


def test_get_image_by_tag_digest_and_default(app: dict[str, object]) -> None:
    reg = registry_client()
    pushed = app["pushed"]
    assert isinstance(pushed, dict)
    latest = reg.get_image(str(app["repo"]))
    assert set(latest["tag"]) == {"latest"} and len(latest) == 2
    by_digest = reg.get_image(f"{app['repo']}@{pushed['index'].digest}")
    assert set(by_digest["manifest_digest"]) == set(latest["manifest_digest"])
    # By digest there is no tag: NA, and the digest in the digest column, not the tag column.
    assert by_digest["tag"].isna().all()
    assert set(by_digest["digest"]) == {pushed["index"].digest}
    one = reg.get_image(f"{app['repo']}@{pushed['docker'].digest}")
    assert one["tag"].isna().all() and one["digest"].tolist() == [pushed["docker"].digest]
    assert reg.get_image(regdata.parse_reference(f"{app['repo']}:1.0"))["tag"].tolist() == ["1.0"]
    with pytest.raises(regdata.NotFound, match="MANIFEST_UNKNOWN"):
        reg.get_image(f"{app['repo']}:nope")


def test_history_frame(app: dict[str, object], builder: Builder, registry: RegistryServer) -> None:
    history = (
        History(created="2024-01-01T00:00:00Z", created_by="ADD rootfs /"),
        History(
            created="2024-01-01T00:00:01Z", created_by='CMD ["sh"]', empty_layer=True, comment="buildkit"
        ),
    )
    builder.push_image("frames/hist", ImageSpec(history=history), tags=["1"])
    h = registry_client().history(f"{registry.host}/frames/hist:1")
    assert_schema(h, HISTORY)
    assert h["step"].tolist() == [0, 1]
    assert h["empty_layer"].tolist() == [False, True]
    assert h["created_by"].tolist() == ["ADD rootfs /", 'CMD ["sh"]']
    assert h["comment"].iloc[1] == "buildkit"
    multi = registry_client().history(f"{app['repo']}:3.0")
    assert multi.groupby("platform").size().to_dict() == {
        "linux/amd64": 1,
        "linux/arm/v7": 1,
        "linux/arm64/v8": 1,
    }
    old = registry_client().history(f"{app['repo']}:0.9")
    assert len(old) >= 1 and old["platform"].iloc[0] == "linux/amd64"


def test_a_malformed_history_fails_only_what_reads_it(
    registry: RegistryServer, builder: Builder, repo_name: str
) -> None:
    """get_repository reads ``created``, not the history: a history of the wrong shape costs
    its row nothing there, and history() says what is wrong with it."""
    builder.push_image(
        repo_name,
        ImageSpec(created="2024-01-01T00:00:00Z", config_extra={"history": [{"created": 12}, "step"]}),
        tags=["odd"],
    )
    df = registry_client().get_repository(f"{registry.host}/{repo_name}")
    assert len(df) == 1 and pd.isna(df.loc[0, "error"])
    assert df.loc[0, "created"] == pd.Timestamp("2024-01-01T00:00:00Z")
    with pytest.raises(regdata.MalformedContent, match="time is not a string"):
        registry_client().history(f"{registry.host}/{repo_name}:odd")


def test_an_index_listing_too_many_manifests_is_one_error_row(
    registry: RegistryServer, builder: Builder, repo_name: str
) -> None:
    builder.push_multiarch(repo_name, ["linux/amd64", "linux/arm64/v8", "linux/arm/v7"], tags=["wide"])
    builder.push_image(repo_name, ImageSpec(), tags=["plain"])
    reg = registry_client()
    reg.options = dataclasses.replace(reg.options, max_index_entries=2)
    df = reg.get_repository(f"{registry.host}/{repo_name}")
    wide = df[df["tag"] == "wide"]
    assert len(wide) == 1 and wide.iloc[0]["kind"] == "index"
    assert wide.iloc[0]["error"] == "index lists 3 manifests, over the 2 a scan reads of one index"
    assert df[df["tag"] == "plain"]["error"].isna().all()
    assert (reg.requests["kind"] == "blob").sum() == 1  # the plain image's config only


def test_a_platform_filter_reads_a_variant_as_the_config_writes_it(
    registry: RegistryServer, builder: Builder, repo_name: str
) -> None:
    """A variant holding a "/" is odd but no error: with a filter set too."""
    builder.push_image(repo_name, ImageSpec(platform=Platform("linux", "arm", "v7/x")), tags=["odd"])
    df = regdata.Registry(
        cache=None, credentials=regdata.Credentials.none(), platforms=["linux/arm"]
    ).get_repository(f"{registry.host}/{repo_name}")
    assert df["error"].isna().all() and df["variant"].tolist() == ["v7/x"]


def test_one_bad_tag_never_loses_the_rest(registry: RegistryServer, builder: Builder, repo_name: str) -> None:
    good = builder.push_image(repo_name, ImageSpec(created="2024-01-01T00:00:00Z"), tags=["good"])
    bad = builder.push_image(
        repo_name, ImageSpec(created="2024-02-01T00:00:00Z", labels={"x": "y"}), tags=["noconfig"]
    )
    multi = builder.push_multiarch(repo_name, ["linux/amd64", "linux/arm64"], tags=["multi"])
    assert bad.config_digest is not None
    builder.delete_blob(repo_name, bad.config_digest)
    builder.delete_manifest(repo_name, multi.children[1].digest)
    df = registry_client().get_repository(f"{registry.host}/{repo_name}")
    rows = {(r.tag, r.platform if pd.notna(r.platform) else None): r for r in df.itertuples()}
    assert rows[("good", "linux/amd64")].error is pd.NA or pd.isna(rows[("good", "linux/amd64")].error)
    assert rows[("good", "linux/amd64")].digest == good.digest
    broken = df[df["tag"] == "noconfig"].iloc[0]
    assert "NotFound" in broken["error"] and "BLOB_UNKNOWN" in broken["error"]
    assert broken["digest"] == bad.digest and pd.isna(broken["created"]) and pd.isna(broken["size"])
    multi_rows = df[df["tag"] == "multi"]
    assert len(multi_rows) == 2
    missing = multi_rows[multi_rows["manifest_digest"] == multi.children[1].digest].iloc[0]
    assert "MANIFEST_UNKNOWN" in missing["error"] and missing["platform"] == "linux/arm64"
    fine = multi_rows[multi_rows["manifest_digest"] == multi.children[0].digest].iloc[0]
    assert pd.isna(fine["error"]) and pd.notna(fine["created"])


def test_whole_repository_failures_raise(registry: RegistryServer) -> None:
    reg = registry_client()
    with pytest.raises(regdata.NotFound, match="NAME_UNKNOWN"):
        reg.get_repository(f"{registry.host}/no/such/repository")
    with pytest.raises(regdata.InvalidReference):
        reg.get_repository("Not A Reference")


def test_shared_digests_are_fetched_once(registry: RegistryServer, builder: Builder, repo_name: str) -> None:
    builder.push_multiarch(repo_name, ["linux/amd64", "linux/arm64"], tags=[f"t{i}" for i in range(6)])
    reg = registry_client()
    df = reg.get_repository(f"{registry.host}/{repo_name}")
    assert len(df) == 12 and df["error"].isna().all()
    log = reg.requests
    ok = log[log["status"] == 200]
    assert (ok["kind"] == "manifest").sum() == 6 + 2  # six tags, then each platform manifest once
    assert (ok["kind"] == "blob").sum() == 2  # each config once


def test_empty_repository_keeps_its_schema(
    registry: RegistryServer, builder: Builder, repo_name: str
) -> None:
    pushed = builder.push_image(repo_name, ImageSpec(), tags=["only"])
    builder.delete_manifest(repo_name, pushed.digest)
    df = registry_client().get_repository(f"{registry.host}/{repo_name}")
    assert df.empty
    assert_schema(df, IMAGES)


def test_request_log_frame(app: dict[str, object]) -> None:
    reg = registry_client()
    reg.get_repository(str(app["repo"]))
    log = reg.requests
    assert list(log.columns) == [
        "started",
        "host",
        "repository",
        "kind",
        "method",
        "status",
        "duration_s",
        "bytes",
        "attempt",
        "cache",
        "error",
        "proxy",
        "pull",
    ]
    assert str(log["started"].dtype) == "datetime64[ns, UTC]"
    assert not log["pull"].any()  # this registry announces no quota: it counts no pulls
    assert {"tags", "manifest", "blob"} <= set(log["kind"].astype(str))
    assert (log["duration_s"] >= 0).all()


def test_cross_check_with_skopeo(registry: RegistryServer, builder: Builder, skopeo, repo_name: str) -> None:  # type: ignore[no-untyped-def]
    platforms = ["linux/amd64", "linux/arm/v7", "linux/arm64/v8", "linux/ppc64le"]
    children = [
        builder.push_image(
            repo_name,
            ImageSpec(platform=Platform.parse(p), format="oci", created=f"2024-0{i + 1}-15T12:00:00Z"),
        )
        for i, p in enumerate(platforms)
    ]
    builder.push_index(repo_name, children, tags=["1.0"], attestations=True)
    builder.push_image(repo_name, ImageSpec(format="docker", created="2023-12-31T23:59:59Z"), tags=["single"])
    df = registry_client().get_repository(f"{registry.host}/{repo_name}")
    assert len(df) == len(platforms) + 1
    for tag in ("1.0", "single"):
        raw = skopeo.inspect_raw(registry, f"{repo_name}:{tag}")
        assert raw.returncode == 0, raw.stderr
        top = regdata.oci.digest.compute(raw.stdout.encode())
        assert set(df[df["tag"] == tag]["digest"]) == {top}
    for row in df.itertuples():
        args = [
            "inspect",
            "--tls-verify=false",
            "--no-creds",
            "--override-os",
            row.os,
            "--override-arch",
            row.architecture,
        ]
        if pd.notna(row.variant):
            args += ["--override-variant", row.variant]
        out = skopeo.run(*args, f"docker://{registry.host}/{repo_name}:{row.tag}")
        assert out.returncode == 0, out.stderr
        info = json.loads(out.stdout)
        assert info["Digest"] == row.digest  # skopeo names the top manifest, index or image
        raw = skopeo.inspect_raw(registry, f"{repo_name}@{row.manifest_digest}")
        assert regdata.oci.digest.compute(raw.stdout.encode()) == row.manifest_digest
        assert pd.Timestamp(info["Created"]) == row.created
        assert info["Os"] == row.os and info["Architecture"] == row.architecture
        assert len(info["Layers"]) == row.layers


def test_progress_reports_every_task(app: dict[str, object]) -> None:
    calls: list[tuple[int, int]] = []
    df = registry_client(progress=lambda done, total: calls.append((done, total))).get_repository(
        str(app["repo"])
    )
    assert calls and calls[-1][0] == calls[-1][1]
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert calls[-1][1] >= df["tag"].nunique()
    quiet = registry_client(progress=True).get_image(f"{app['repo']}:1.0")  # a tqdm bar on stderr
    assert len(quiet) == 1


def test_created_time_out_of_range_is_said_in_the_row(registry: RegistryServer, builder: Builder) -> None:
    """A created time pandas cannot hold is NaT, and the row says so in ``error``, the rest kept."""
    repo = "frames/times"
    far = builder.push_image(
        repo, ImageSpec(created="2999-01-01T00:00:00Z", labels={"team": "x"}), tags=["far"]
    )
    builder.push_image(repo, ImageSpec(created="0001-01-02T00:00:00Z"), tags=["early"])
    builder.push_image(repo, ImageSpec(created="0001-01-01T00:00:00Z"), tags=["zero"])  # Go's "not set"
    builder.push_image(repo, ImageSpec(created="2024-01-01T00:00:00Z"), tags=["now"])
    df = registry_client().get_repository(f"{registry.host}/{repo}").set_index("tag")
    for tag, year in (("far", "2999"), ("early", "0001")):
        row = df.loc[tag]
        assert pd.isna(row["created"])
        assert f"{year}-01-0" in row["error"] and "outside" in row["error"], row["error"]
    kept = df.loc["far"]
    assert (
        kept["digest"] == far.digest and kept["platform"] == "linux/amd64" and kept["labels"] == {"team": "x"}
    )
    assert kept["size"] == sum(layer.size for layer in far.layers)
    assert pd.isna(df.loc["zero", "created"]) and pd.isna(df.loc["zero", "error"])
    assert pd.isna(df.loc["now", "error"]) and df.loc["now", "created"] == pd.Timestamp(
        "2024-01-01T00:00:00Z"
    )
