"""Tests of regdata.analysis.fleet: reading references from lists, Kubernetes and compose; judging freshness."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from regdata.analysis.fleet import FLEET, FRESHNESS, fleet_freshness, read_fleet
from regdata.frames import IMAGE_CATEGORIES, IMAGES, make_frame

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32

KUBERNETES = f"""\
# a multi-document file, as kubectl get -o yaml or kustomize would give
apiVersion: v1
kind: Pod
metadata:
  name: debug
  namespace: tools
spec:
  containers:
  - name: shell
    image: busybox:1.28
  ephemeralContainers:
  - name: dbg
    image: docker.io/library/alpine:3.7
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: prod
spec:
  template:
    spec:
      initContainers:
      - name: migrate
        image: registry.example.com:5000/team/sub/app:1.2@{DIGEST}
      containers:
      - name: nginx
        image: nginx:1.13.8-alpine
        ports:
        - containerPort: 80
      - name: exporter
        image: quay.io/prometheus/nginx-exporter@{OTHER}
---
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: db}}
spec:
  template:
    spec:
      containers:
      - {{name: redis, image: "redis:4.0.7-alpine"}}
---
apiVersion: batch/v1
kind: CronJob
metadata: {{name: nightly}}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          initContainers: [{{name: wait, image: "busybox"}}]
          containers: [{{name: job, image: "Python:3.6"}}]
---
apiVersion: v1
kind: List
items:
- apiVersion: apps/v1
  kind: DaemonSet
  metadata: {{name: agent}}
  spec:
    template:
      spec:
        containers: [{{name: agent, image: "localhost:5000/agent:v2.0.0-rc.1"}}]
- apiVersion: apps/v1
  kind: ReplicaSet
  metadata: {{name: rs}}
  spec:
    template:
      spec:
        containers: [{{name: c, image: "ghcr.io/org/tool:sha-1234abc"}}]
- apiVersion: batch/v1
  kind: Job
  metadata: {{name: once}}
  spec:
    template:
      spec:
        containers: [{{name: once}}]
- apiVersion: v1
  kind: Service
  metadata: {{name: web}}
  spec:
    ports: [{{port: 80}}]
"""

COMPOSE = f"""\
services:
  web:
    image: nginx:1.13.8-alpine
    ports: ["8080:80"]
  app:
    image: registry.example.com:5000/team/sub/app:1.2@{DIGEST}
    container_name: app-1
  worker:
    build: ./worker
  cache:
    image: "${{REDIS_IMAGE:-redis:4.0.7}}"
  db:
    image: postgres:${{PG_TAG}}
  proxy:
    image: "traefik:${{TRAEFIK:-1.5}}-alpine"
"""

LIST = f"""\
# what runs in the lab
nginx:1.13.8-alpine
  redis:4.0.7   # cache

registry.example.com:5000/team/sub/app:1.2@{DIGEST}
not a reference
ubuntu
"""


def schema_of(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return [(str(c), str(d)) for c, d in frame.dtypes.items()]


def records(frame: pd.DataFrame, columns: list[str]) -> list[tuple[Any, ...]]:
    out = frame[columns].astype(object).where(frame[columns].notna(), None)
    return [tuple(row) for row in out.itertuples(index=False)]


# -- reading ------------------------------------------------------------------


def test_kubernetes_manifests(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(KUBERNETES)
    fleet = read_fleet(path)
    assert schema_of(fleet) == list(FLEET)
    assert records(fleet, ["source", "workload", "container", "role", "namespace"]) == [
        (f"{path}#0/Pod/debug/shell", "Pod/debug", "shell", "container", "tools"),
        (f"{path}#0/Pod/debug/dbg", "Pod/debug", "dbg", "ephemeral", "tools"),
        (f"{path}#1/Deployment/web/migrate", "Deployment/web", "migrate", "init", "prod"),
        (f"{path}#1/Deployment/web/nginx", "Deployment/web", "nginx", "container", "prod"),
        (f"{path}#1/Deployment/web/exporter", "Deployment/web", "exporter", "container", "prod"),
        (f"{path}#3/StatefulSet/db/redis", "StatefulSet/db", "redis", "container", None),
        (f"{path}#4/CronJob/nightly/wait", "CronJob/nightly", "wait", "init", None),
        (f"{path}#4/CronJob/nightly/job", "CronJob/nightly", "job", "container", None),
        (f"{path}#5/DaemonSet/agent/agent", "DaemonSet/agent", "agent", "container", None),
        (f"{path}#5/ReplicaSet/rs/c", "ReplicaSet/rs", "c", "container", None),
        (f"{path}#5/Job/once/once", "Job/once", "once", "container", None),
    ]
    by_container = fleet.set_index("container")
    migrate = by_container.loc["migrate"]
    assert (migrate["registry"], migrate["repository"], migrate["tag"], migrate["digest"]) == (
        "registry.example.com:5000",
        "team/sub/app",
        "1.2",
        DIGEST,
    )
    assert migrate["reference"] == f"registry.example.com:5000/team/sub/app:1.2@{DIGEST}"
    assert migrate["image"] == f"registry.example.com:5000/team/sub/app:1.2@{DIGEST}"
    exporter = by_container.loc["exporter"]
    assert pd.isna(exporter["tag"]) and exporter["digest"] == OTHER
    assert by_container.loc["wait", "reference"] == "docker.io/library/busybox:latest"
    assert by_container.loc["wait", "image"] == "busybox"
    assert by_container.loc["agent", "registry"] == "localhost:5000"
    assert by_container.loc["c", "tag"] == "sha-1234abc"
    assert (
        by_container.loc["job", "error"]
        == "invalid reference 'Python:3.6': repository name must be lowercase"
    )
    assert pd.isna(by_container.loc["job", "reference"])
    assert by_container.loc["once", "error"] == "no image given"
    assert fleet["error"].notna().sum() == 2


def test_compose_file(tmp_path: Path) -> None:
    path = tmp_path / "docker-compose.yml"
    path.write_text(COMPOSE)
    fleet = read_fleet(path, env={"PG_TAG": "10.1"})
    assert records(fleet, ["source", "workload", "container", "reference", "error"]) == [
        (f"{path}#services/web", "web", "web", "docker.io/library/nginx:1.13.8-alpine", None),
        (
            f"{path}#services/app",
            "app",
            "app-1",
            f"registry.example.com:5000/team/sub/app:1.2@{DIGEST}",
            None,
        ),
        (f"{path}#services/cache", "cache", "cache", "docker.io/library/redis:4.0.7", None),
        (f"{path}#services/db", "db", "db", "docker.io/library/postgres:10.1", None),
        (f"{path}#services/proxy", "proxy", "proxy", "docker.io/library/traefik:1.5-alpine", None),
    ]
    assert (fleet["role"] == "service").all()
    unset = read_fleet(path).set_index("workload")
    assert unset.loc["db", "image"] == "postgres:${PG_TAG}"
    assert "invalid" in unset.loc["db", "error"]
    assert unset.loc["cache", "reference"] == "docker.io/library/redis:4.0.7"
    overridden = read_fleet(path, env={"REDIS_IMAGE": "redis:3.2.11"}).set_index("workload")
    assert overridden.loc["cache", "tag"] == "3.2.11"


def test_plain_list(tmp_path: Path) -> None:
    path = tmp_path / "images.txt"
    path.write_text(LIST)
    fleet = read_fleet(path)
    assert records(fleet, ["source", "reference", "tag"]) == [
        (f"{path}:2", "docker.io/library/nginx:1.13.8-alpine", "1.13.8-alpine"),
        (f"{path}:3", "docker.io/library/redis:4.0.7", "4.0.7"),
        (f"{path}:5", f"registry.example.com:5000/team/sub/app:1.2@{DIGEST}", "1.2"),
        (f"{path}:6", None, None),
        (f"{path}:7", "docker.io/library/ubuntu:latest", "latest"),
    ]
    assert fleet["error"].notna().tolist() == [False, False, False, True, False]
    assert fleet["workload"].isna().all() and (fleet["role"] == "list").all()


def test_detection_by_content_and_literal_text() -> None:
    assert read_fleet(KUBERNETES)["role"].iloc[0] == "container"
    assert read_fleet(KUBERNETES)["source"].iloc[0] == "<text>#0/Pod/debug/shell"
    assert (read_fleet(COMPOSE)["role"] == "service").all()
    assert read_fleet(LIST, name="lab.txt")["source"].iloc[0] == "lab.txt:2"
    one = read_fleet("nginx:1.13")
    assert records(one, ["source", "reference"]) == [("<text>:1", "docker.io/library/nginx:1.13")]
    yaml_list = read_fleet("- nginx:1.13\n- redis\n")
    assert yaml_list["reference"].tolist() == [
        "docker.io/library/nginx:1.13",
        "docker.io/library/redis:latest",
    ]
    forced = read_fleet("kind: x\n", kind="list")
    assert forced["error"].notna().all()


def test_bad_files_give_error_rows_not_exceptions(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: Pod\nspec: [unclosed\n")
    fleet = read_fleet(broken)
    assert len(fleet) == 1 and fleet["error"].iloc[0].startswith("YAML does not parse")
    assert fleet["source"].iloc[0] == str(broken)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert schema_of(read_fleet(empty)) == list(FLEET) and read_fleet(empty).empty
    with pytest.raises(FileNotFoundError):
        read_fleet(str(tmp_path / "missing.yaml"))


# -- freshness ----------------------------------------------------------------
# library/app as worked out by hand: dates at midnight UTC so that lags are whole days.
#   1.24.0, 1.24      -> D1  amd64 2024-01-10, arm64 2024-01-12   (an earlier build D0 of 2024-01-05)
#   1.25.3, 1.25, latest -> D3  amd64 2024-03-01, arm64 2024-03-01 (D2: same image, index pushed before arm64)
#   1.26.0-rc.1       -> D4  amd64 2024-03-20
#   1.24.0-alpine     -> D5  amd64 2024-01-11
#   1.25.3-alpine     -> D6  amd64 2024-03-02 (D9 of 2024-03-10 before that)
#   earlier scans also saw 1.25.3 -> D8 of 2024-02-20


def d(n: int) -> str:
    return f"sha256:{n:064x}"


def app_row(tag: str, digest: int, created: str, arch: str = "amd64", **extra: Any) -> dict[str, Any]:
    return {
        "registry": "docker.io",
        "repository": "library/app",
        "tag": tag,
        "digest": d(digest),
        "kind": "index",
        "platform": f"linux/{arch}",
        "os": "linux",
        "architecture": arch,
        "manifest_digest": d(1000 + digest * 10 + (arch == "arm64")),
        "created": f"{created}T00:00:00Z",
        "size": 50_000_000,
        **extra,
    }


def app_images() -> pd.DataFrame:
    earlier_scan = [
        app_row("1.24.0", 0, "2024-01-05"),
        {**app_row("1.25.3", 2, "2024-03-01"), "manifest_digest": d(1030)},  # the amd64 image of D3
        app_row("1.25.3", 8, "2024-02-20"),  # a build of 1.25.3 replaced on Mar 1
        app_row("1.25.3-alpine", 9, "2024-03-10"),  # the tag was later moved back to Mar 2's image
    ]
    current = (
        [app_row(tag, 1, "2024-01-10") for tag in ("1.24.0", "1.24")]
        + [app_row(tag, 1, "2024-01-12", "arm64") for tag in ("1.24.0", "1.24")]
        + [app_row(tag, 3, "2024-03-01") for tag in ("1.25.3", "1.25", "latest")]
        + [app_row(tag, 3, "2024-03-01", "arm64") for tag in ("1.25.3", "1.25", "latest")]
        + [
            app_row("1.26.0-rc.1", 4, "2024-03-20"),
            app_row("1.24.0-alpine", 5, "2024-01-11"),
            app_row("1.25.3-alpine", 6, "2024-03-02"),
            app_row("1.27.0", 7, "2024-03-25", error="manifest unknown"),
        ]
    )
    return make_frame(earlier_scan + current, IMAGES, IMAGE_CATEGORIES)


def team_images() -> pd.DataFrame:
    rows = [
        {
            "registry": "registry.example.com:5000",
            "repository": "team/sub/app",
            "tag": "1.2",
            "digest": DIGEST,
            "kind": "image",
            "platform": "linux/amd64",
            "created": "2024-02-01T00:00:00Z",
        }
    ]
    return make_frame(rows, IMAGES, IMAGE_CATEGORIES)


FLEET_LIST = f"""\
app:1.24.0
app:1.25
app:1.25.3@{d(99)}
app:1.25.3@{d(2)}
app:1.24.0@{d(0)}
app:1.25.3-alpine
app:1.24.0-alpine
app:latest
app:9.9
other/repo:1.0
App:1
app@{d(3)}
app:1.26.0-rc.1
registry.example.com:5000/team/sub/app:1.2@{DIGEST}
app:1.25.3@{d(1030)}
app:1.25.3@{d(8)}
app:1.25.3-alpine@{d(9)}
"""

COLUMNS = [
    "deployed_tag",
    "deployed_created",
    "candidate_tag",
    "newest_tag",
    "lag_days",
    "newer_versions",
    "tag_moved",
    "repush",
    "status",
]


def day(text: str) -> pd.Timestamp:
    return pd.Timestamp(f"{text}T00:00:00Z")


def test_fleet_freshness_worked_out_by_hand() -> None:
    fleet = read_fleet(FLEET_LIST)
    images = {"app": app_images(), "registry.example.com:5000/team/sub/app": team_images()}
    fresh = fleet_freshness(fleet, images, now="2024-04-01")
    assert schema_of(fresh) == list(FRESHNESS)
    got = records(fresh, COLUMNS)
    assert got == [
        # behind: 1.25.3 is newer (1.25 floats over it, the rc is a pre-release); Jan 10 -> Mar 1 = 51 days
        ("1.24.0", day("2024-01-10"), "1.25.3", "1.25.3", 51.0, 1, None, None, "behind"),
        # a floating tag following the newest version
        ("1.25", day("2024-03-01"), "1.25.3", "1.25.3", 0.0, 0, None, None, "current"),
        # pinned to a digest no frame knows, and the tag has moved: cannot tell rebuild from re-push
        ("1.25.3", None, "1.25.3", "1.25.3", None, 0, True, None, "unknown"),
        # pinned to the index pushed before arm64 finished: same created, a mere re-push
        ("1.25.3", day("2024-03-01"), "1.25.3", "1.25.3", 0.0, 0, True, True, "current"),
        # pinned to the earlier build of 1.24.0 (Jan 5): rebuilt since, and 1.25.3 exists: Jan 5 -> Mar 1
        ("1.24.0", day("2024-01-05"), "1.25.3", "1.25.3", 56.0, 1, True, False, "behind"),
        ("1.25.3-alpine", day("2024-03-02"), "1.25.3-alpine", "1.25.3-alpine", 0.0, 0, None, None, "current"),
        # Jan 11 -> Mar 2 = 51 days
        ("1.24.0-alpine", day("2024-01-11"), "1.25.3-alpine", "1.25.3-alpine", 51.0, 1, None, None, "behind"),
        ("latest", day("2024-03-01"), None, None, None, None, None, None, "current"),
        ("9.9", None, None, None, None, None, None, None, "unknown"),
        (None, None, None, None, None, None, None, None, "unknown"),
        (None, None, None, None, None, None, None, None, "error"),
        # a digest-only pin takes the most precise version tag pointing at it
        ("1.25.3", day("2024-03-01"), "1.25.3", "1.25.3", 0.0, 0, None, None, "current"),
        # a pre-release is compared with pre-releases too
        ("1.26.0-rc.1", day("2024-03-20"), "1.26.0-rc.1", "1.26.0-rc.1", 0.0, 0, None, None, "current"),
        ("1.2", day("2024-02-01"), "1.2", "1.2", 0.0, 0, False, False, "current"),
        # pinned to the platform manifest of the tag's current image: not moved
        ("1.25.3", day("2024-03-01"), "1.25.3", "1.25.3", 0.0, 0, False, False, "current"),
        # the newest version, but rebuilt since the pin: Feb 20 -> Mar 1
        ("1.25.3", day("2024-02-20"), "1.25.3", "1.25.3", 10.0, 0, True, False, "behind"),
        # the tag now points at an older image than the pinned one
        (
            "1.25.3-alpine",
            day("2024-03-10"),
            "1.25.3-alpine",
            "1.25.3-alpine",
            0.0,
            0,
            True,
            False,
            "unknown",
        ),
    ]
    reasons = fresh["reason"].tolist()
    assert reasons[0] == "1 newer version (newest 1.25.3)"
    assert reasons[1] == "1.25 follows the newest version (1.25.3)"
    assert "cannot be told" in reasons[2]
    assert reasons[3] == "tag 1.25.3 was re-pushed since the pin, same image (created unchanged)"
    assert reasons[6] == "1 newer version in track 'alpine' (newest 1.25.3-alpine)"
    assert reasons[7] == "latest is not a version tag: judged by digest only"
    assert reasons[8] == "tag 9.9 not among the linux/amd64 images of the repository"
    assert reasons[9] == "no images of docker.io/other/repo given"
    assert reasons[10].startswith("invalid reference 'App:1'")
    assert reasons[15] == "tag 1.25.3 was rebuilt 10.0 days after the pinned image"
    assert reasons[16] == "tag 1.25.3-alpine now points at an older image than the pin"
    assert fresh["age_days"].iloc[0] == 82.0  # Jan 10 -> Apr 1
    assert fresh["track"].tolist()[5] == "alpine"
    assert fresh["tag_digest"].iloc[2] == d(3)
    assert (fresh["platform"] == "linux/amd64").all()


def test_fleet_freshness_another_platform_and_one_concatenated_frame() -> None:
    fleet = read_fleet("app:1.24.0\napp:1.25.3-alpine\n")
    images = pd.concat([app_images(), team_images()], ignore_index=True)
    fresh = fleet_freshness(fleet, images, now="2024-04-01", platform="linux/arm64")
    assert records(fresh, ["deployed_created", "candidate_tag", "lag_days", "status"]) == [
        (day("2024-01-12"), "1.25.3", 49.0, "behind"),  # Jan 12 -> Mar 1 on arm64
        (None, None, None, "unknown"),  # no arm64 image of the alpine variant
    ]
    assert (fresh["platform"] == "linux/arm64").all()


def test_fleet_freshness_within_a_major_or_minor_line() -> None:
    """An image kept on an older line on purpose: held against that line only when asked."""
    fleet = read_fleet("app:1.24.0\napp:1.25.3-alpine\n")
    track = fleet_freshness(fleet, app_images(), now="2024-04-01")
    major = fleet_freshness(fleet, app_images(), now="2024-04-01", within="major")
    minor = fleet_freshness(fleet, app_images(), now="2024-04-01", within="minor")
    assert records(track, ["candidate_tag", "status"])[0] == ("1.25.3", "behind")
    assert records(major, ["candidate_tag", "status"])[0] == ("1.25.3", "behind")  # 1.25.3 is within 1.x
    assert records(minor, ["candidate_tag", "newer_versions", "lag_days", "status"])[0] == (
        "1.24.0",
        0,
        0.0,
        "current",
    )  # nothing newer within 1.24.x
    assert minor["reason"].iloc[0] == "newest version within 1.24.x"
    assert major["reason"].iloc[0] == "1 newer version within 1.x (newest 1.25.3)"
    assert minor["reason"].iloc[1] == "newest version in track 'alpine' within 1.25.x"
    with pytest.raises(ValueError, match="within must be one of"):
        fleet_freshness(fleet, app_images(), within="patch")  # type: ignore[arg-type]


def test_fleet_freshness_on_real_images_and_empty() -> None:
    from test_freshness import hub_images

    fleet = read_fleet("nginx:1.12.2\nnginx:1.13\nnginx:1-alpine\nredis:3.2.11-32bit\nredis:4.0.7-32bit\n")
    images = {"nginx": hub_images("nginx"), "docker.io/library/redis": hub_images("redis")}
    fresh = fleet_freshness(fleet, images, now="2018-02-01").set_index("tag")
    assert fresh["status"].astype(str).to_dict() == {
        "1.12.2": "behind",
        "1.13": "current",
        "1-alpine": "current",
        "3.2.11-32bit": "behind",
        "4.0.7-32bit": "current",
    }
    assert fresh.loc["1.12.2", "candidate_tag"] == "1.13.8"
    assert fresh.loc["3.2.11-32bit", "track"] == "32bit"
    assert (
        fresh.loc["1-alpine", "reason"]
        == "1-alpine follows the newest version in track 'alpine' (1.13.8-alpine)"
    )
    assert not math.isnan(fresh.loc["1.12.2", "lag_days"])
    empty = fleet_freshness(read_fleet("# nothing\n"), {})
    assert empty.empty and schema_of(empty) == list(FRESHNESS)
    assert list(empty["status"].cat.categories) == ["current", "behind", "unknown", "error"]


def test_a_container_without_a_name_is_named_by_its_place() -> None:
    fleet = read_fleet(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n"
        "  initContainers: [{image: busybox}]\n  containers: [{image: nginx:1.25}]\n"
    )
    assert fleet["container"].tolist() == ["initContainers[0]", "containers[0]"]
