"""Freshness within a pull quota: the targeted judgement, through a Docker-Hub-like stand-in.

The stand-in (tests/support/hubproxy.py) sits in front of the real test
registry and counts pulls as Docker Hub does.  The targeted judgement must
equal the full one, count the pulls the stand-in counted, keep its quota
floor, lose no row, and not retry a 429 for a quota used up.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from regdata import Credentials, Registry
from regdata.analysis.fleet import read_fleet
from regdata.analysis.targeted import AGREES_WITH_FULL
from regdata.report import FleetScan, judge_fleet, read_fleets, scan_fleet
from regdata.sandbox import Sandbox
from regdata.sandbox.demo import FLEET_FILES
from regdata.sandbox.demodata import data_dir, load_data
from tests.support.builder import Builder, ImageSpec
from tests.support.hubproxy import start_hub
from tests.support.registry_server import RegistryServer

NOW = "2018-01-27T12:00:00Z"


def judged(
    host: str, fleet: pd.DataFrame, *, full: bool, now: str = NOW, **options: object
) -> tuple[pd.DataFrame, FleetScan, Registry]:
    reg = Registry(cache=None, credentials=Credentials.none(), mirrors={"docker.io": host}, **options)  # type: ignore[arg-type]
    scan = scan_fleet(reg, fleet, full=full)
    return judge_fleet(scan, now=now), scan, reg


def agreed(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[list(AGREES_WITH_FULL)].reset_index(drop=True)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sandbox, pd.DataFrame]]:
    """The demo's sandbox, filled with every demo image, and the demo fleet."""
    root = data_dir()
    fleet = read_fleets([root / f for f in FLEET_FILES])
    pins = [str(r) for r in fleet.loc[fleet["digest"].notna(), "reference"]]
    with Sandbox.start(port=0, root=tmp_path_factory.mktemp("sandbox"), data=load_data(root)) as sandbox:
        sandbox.fill(pins=pins)
        yield sandbox, fleet


def test_demo_fleet_targeted_equals_full_and_pulls_are_counted_as_the_hub_counts(
    demo: tuple[Sandbox, pd.DataFrame],
) -> None:
    sandbox, fleet = demo
    with start_hub(sandbox.host, limit=100_000) as (hub, quota):
        full, full_scan, _ = judged(hub.host, fleet, full=True)
        full_pulls = quota.pulls
        targeted, scan, reg = judged(hub.host, fleet, full=False)
        pulls = quota.pulls - full_pulls
    pd.testing.assert_frame_equal(agreed(targeted), agreed(full))
    deployed = int(fleet["error"].isna().sum())
    assert scan.pulls == {hub.host: pulls} and int(reg.requests["pull"].sum()) == pulls
    assert pulls <= 4 * deployed, f"{pulls} pulls for {deployed} deployed images"
    assert sum(full_scan.pulls.values()) == full_pulls > 5 * pulls
    assert scan.estimated_pulls is not None and pulls <= scan.estimated_pulls
    requests = reg.requests
    pulls_rows = requests[requests["pull"].fillna(False).astype(bool)]
    assert set(pulls_rows["kind"]) == {"manifest"} and set(pulls_rows["method"]) == {"GET"}
    assert f"{hub.host}: " in scan.pull_summary() and "left of 100000 per 6 h" in scan.pull_summary()


def test_demo_fleet_at_a_limit_of_100_is_judged_whole(demo: tuple[Sandbox, pd.DataFrame]) -> None:
    sandbox, fleet = demo
    with start_hub(sandbox.host, limit=100) as (hub, quota):
        freshness, scan, reg = judged(hub.host, fleet, full=False)
    assert quota.refused == 0 and quota.remaining >= 10  # the default floor keeps 10% of 100
    assert not scan.blocked and not freshness["reason"].str.startswith("pull quota").any()
    assert reg.rate_limits[hub.host].limit == 100


def test_quota_floor_at_a_limit_of_10_leaves_the_rest_unknown_and_loses_nothing(
    demo: tuple[Sandbox, pd.DataFrame],
) -> None:
    sandbox, fleet = demo
    with start_hub(sandbox.host, limit=10) as (hub, quota):
        freshness, scan, reg = judged(hub.host, fleet, full=False)
    assert quota.refused == 0, "a pull was sent past the quota"
    assert quota.remaining == 2, "the default floor keeps 2 of 10"
    assert len(freshness) == len(fleet) and list(freshness["source"]) == list(fleet["source"])
    stopped = freshness["reason"].fillna("").str.startswith("pull quota: ")
    assert stopped.sum() >= 5
    assert (freshness.loc[stopped, "status"] == "unknown").all()
    assert freshness.loc[stopped, "reason"].str.contains(r"pull quota: \d+ left of 10 per 6 h").all()
    assert freshness.loc[stopped, "candidate_tag"].isna().all()
    assert int(reg.requests["pull"].sum()) == quota.pulls == 8
    assert scan.pull_summary().startswith("8 pulls") and "2 left of 10 per 6 h" in scan.pull_summary()
    # What was judged agrees with the full judgement.
    with start_hub(sandbox.host, limit=100_000) as (hub2, _):
        full, _, _ = judged(hub2.host, fleet, full=True)
    judged_rows = ~stopped & ~freshness["status"].isin(["unknown", "error"])
    assert judged_rows.any()
    pd.testing.assert_frame_equal(agreed(freshness[judged_rows]), agreed(full[judged_rows]))


def test_an_exhausted_quota_429_is_not_retried_and_says_so(demo: tuple[Sandbox, pd.DataFrame]) -> None:
    sandbox, fleet = demo
    with start_hub(sandbox.host, limit=10, remaining=0) as (hub, quota):
        # No floor: the pulls go out, and the registry refuses each with Docker Hub's body.
        freshness, _, reg = judged(hub.host, fleet, full=False, quota_floor=None)
    requests = reg.requests
    refused = requests[(requests["status"] == 429)]
    assert len(refused) == quota.refused >= 1
    assert (refused["attempt"] == 1).all(), "a 429 for a used-up quota was retried"
    reasons = freshness["reason"].fillna("")
    assert reasons.str.startswith("pull quota used up").sum() >= 5
    assert (freshness.loc[reasons.str.startswith("pull quota used up"), "status"] == "unknown").all()


# -- the test fleets -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shop(registry: RegistryServer, builder: Builder) -> dict[str, str]:
    """Repositories shaped to trip a targeted judgement: moved pins, floating tags, a newest
    version without the judged platform, pre-releases, an attestation-only index."""
    repo = "library/tgt-web"
    digests: dict[str, str] = {}
    days = iter(range(1, 28))

    def spec(tag: str) -> ImageSpec:
        return ImageSpec(created=f"2024-03-{next(days):02d}T00:00:00Z", labels={"v": tag})

    for tags in (["1.0.0"], ["1.1.0"], ["1.2.0"], ["1.2.1", "1.2", "1"], ["2.0.0-rc.1"]):
        pushed = builder.push_multiarch(
            repo, ["linux/amd64", "linux/arm64/v8"], tags=tags, seed=tags[0], spec=spec(tags[0]), attest=True
        )
        digests[tags[0]] = pushed.digest
    # The highest version has no amd64 image: the judgement must go on to 1.2.1.
    builder.push_multiarch(repo, ["linux/arm64/v8"], tags=["1.3.0"], seed="1.3.0", spec=spec("1.3.0"))
    # 1.1 was pinned, then the tag rebuilt; 1.0 re-pushed (same image, another index).
    old = builder.push_multiarch(repo, ["linux/amd64"], seed="old-1.1", spec=spec("old"))
    digests["old-1.1"] = old.digest
    builder.push_multiarch(
        repo, ["linux/amd64", "linux/arm64/v8"], tags=["latest"], seed="1.2.1", spec=spec("latest")
    )
    for tag in ("3.0.0-alpine", "3.1.0-alpine"):
        builder.push_image("library/tgt-web", spec(tag), tags=[tag])
    # A repository whose newest version is an index without the judged platform, and nothing else.
    for n, (tag, platforms) in enumerate(
        (("1.0.0", ["linux/amd64"]), ("1.1.0", ["linux/amd64"]), ("1.3.0", ["linux/arm64/v8"]))
    ):
        builder.push_multiarch(
            "library/tgt-arm",
            platforms,
            tags=[tag],
            seed=f"arm-{tag}",
            spec=ImageSpec(created=f"2024-01-0{n + 1}T00:00:00Z"),
        )
    builder.push_image(
        "library/tgt-db", ImageSpec(created="2024-01-01T00:00:00Z"), tags=["5", "5.0", "5.0.1"]
    )
    builder.push_image(
        "library/tgt-db", ImageSpec(created="2024-02-01T00:00:00Z", labels={"v": "6"}), tags=["6.0.0"]
    )
    return digests


def shop_fleet(digests: dict[str, str]) -> pd.DataFrame:
    return read_fleet(
        "\n".join(
            [
                "tgt-web:1.0.0",
                "tgt-web:1.1.0",
                f"tgt-web:1.1.0@{digests['old-1.1']}",
                f"tgt-web:1.0.0@{digests['1.0.0']}",
                "tgt-web:1.2",
                "tgt-web:1",
                "tgt-web:latest",
                "tgt-web:2.0.0-rc.1",
                "tgt-web:3.0.0-alpine",
                "tgt-web:9.9.9",
                "tgt-web:1.3.0",
                "tgt-db:5",
                "tgt-db:5.0.1",
                "tgt-missing:1",
                f"tgt-web@{digests['1.2.0']}",
                "tgt-arm:1.0.0",
            ]
        )
    )


@pytest.mark.parametrize("within", ["track", "major", "minor"])
def test_test_fleet_targeted_equals_full(registry: RegistryServer, shop: dict[str, str], within: str) -> None:
    fleet = shop_fleet(shop)
    with start_hub(registry.host, limit=100_000) as (hub, quota):
        reg = Registry(cache=None, credentials=Credentials.none(), mirrors={"docker.io": hub.host})
        full = judge_fleet(
            scan_fleet(reg, fleet, full=True, within=within),  # type: ignore[arg-type]
            now="2024-06-01",
            within=within,
        )  # type: ignore[arg-type]
        before = quota.pulls
        reg = Registry(cache=None, credentials=Credentials.none(), mirrors={"docker.io": hub.host})
        scan = scan_fleet(reg, fleet, within=within)  # type: ignore[arg-type]
        targeted = judge_fleet(scan, now="2024-06-01")
        pulls = quota.pulls - before
    pd.testing.assert_frame_equal(agreed(targeted), agreed(full))
    assert int(reg.requests["pull"].sum()) == pulls
    rows = targeted.set_index("image")
    if within == "track":
        assert rows.loc["tgt-web:1.0.0", "candidate_tag"] == "1.2.1"  # 1.3.0 has no amd64 image
        assert rows.loc["tgt-web:1.0.0", "newer_versions"] == 3  # 1.1.0, 1.2.0, 1.2.1; 1.3.0 read: unusable
    assert rows.loc[f"tgt-web:1.1.0@{shop['old-1.1']}", "tag_moved"]
    assert rows.loc["tgt-missing:1", "status"] == "error"
    # 1.3.0 was read and has no linux/amd64 image: not a newer version, as in the full scan.
    if within != "minor":
        assert (rows.loc["tgt-arm:1.0.0", "candidate_tag"], rows.loc["tgt-arm:1.0.0", "newer_versions"]) == (
            "1.1.0",
            1,
        )


def test_a_targeted_scan_refuses_a_judgement_it_did_not_read_for(
    registry: RegistryServer, shop: dict[str, str]
) -> None:
    reg = Registry(cache=None, credentials=Credentials.none(), mirrors={"docker.io": registry.host})
    scan = scan_fleet(reg, read_fleet("tgt-db:5"))
    with pytest.raises(ValueError, match="full=True"):
        judge_fleet(scan, platform="linux/arm64")
    assert judge_fleet(scan)["status"].tolist() == ["behind"]


def test_a_warm_cache_costs_no_request_within_the_ttl_and_no_pull_after(
    registry: RegistryServer,
    shop: dict[str, str],
    tmp_path: Path,
) -> None:
    fleet = shop_fleet(shop)
    with start_hub(registry.host, limit=100_000) as (hub, quota):

        def run(ttl: float) -> tuple[pd.DataFrame, Registry]:
            reg = Registry(
                cache=f"sqlite:///{tmp_path / 'c.sqlite'}",
                cache_ttl=ttl,
                credentials=Credentials.none(),
                mirrors={"docker.io": hub.host},
            )
            with reg:
                return judge_fleet(scan_fleet(reg, fleet), now="2024-06-01"), reg

        cold, _ = run(300)
        pulls = quota.pulls
        warm, reg = run(300)
        sent = reg.requests[reg.requests["cache"] != "hit"]
        # Nothing is asked again, the missing repository's 404 included (kept for the TTL too).
        assert sent.empty, sent[["kind", "status"]]
        assert quota.pulls == pulls
        stale, reg = run(0)
        assert quota.pulls == pulls
        kinds = set(reg.requests.loc[reg.requests["cache"] != "hit", "kind"])
        assert kinds <= {"tags", "manifest_head"}
    pd.testing.assert_frame_equal(agreed(warm), agreed(cold))
    pd.testing.assert_frame_equal(agreed(stale), agreed(cold))


def test_cli_says_what_the_run_cost_in_pulls_and_full_reads_every_tag(
    registry: RegistryServer,
    shop: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from regdata import cli

    monkeypatch.setenv("REGDATA_CACHE", "memory://")
    (tmp_path / "fleet.txt").write_text("tgt-db:5\ntgt-web:1.0.0\n")
    with start_hub(registry.host, limit=100) as (hub, quota):
        outputs = []
        for extra in ([], ["--full"]):
            before = quota.pulls
            code = cli.main(
                [
                    "freshness",
                    str(tmp_path / "fleet.txt"),
                    "--mirror",
                    f"docker.io={hub.host}",
                    "--format",
                    "csv",
                    "--columns",
                    "image,status,candidate_tag",
                    *extra,
                ]
            )
            out, err = capsys.readouterr()
            assert code == 0 and "Traceback" not in err
            used = quota.pulls - before
            assert (
                f"pulls: {used} pulls" in err and f"{hub.host}: {quota.remaining} left of 100 per 6 h" in err
            )
            outputs.append((out, used))
    (targeted, pulls), (full, full_pulls) = outputs
    assert targeted == full and "tgt-web:1.0.0,behind,1.2.1" in targeted
    assert pulls < full_pulls


def test_a_registry_whose_heads_name_no_digest_is_read_by_tag(
    registry: RegistryServer, shop: dict[str, str]
) -> None:
    from tests.support.proxy import Action, Seen, start_proxy

    def no_digest(seen: Seen) -> Action | None:
        if seen.method != "HEAD":
            return None
        return Action(
            transform=lambda status, headers, body: (
                status,
                {k: v for k, v in headers.items() if k.lower() != "docker-content-digest"},
                body,
            )
        )

    fleet = shop_fleet(shop)
    with start_proxy(registry.host) as proxy:
        proxy.add(no_digest)
        targeted, _, _ = judged(proxy.host, fleet, full=False, now="2024-06-01")
        full, _, _ = judged(proxy.host, fleet, full=True, now="2024-06-01")
    pd.testing.assert_frame_equal(agreed(targeted), agreed(full))
