"""The benchmark's smoke run, so bench/ cannot rot: it runs end to end, and every contender reads the same.

Timings are never asserted here (speed is shown by the benchmark, not tested):
only the report's shape, and that regdata, the floor and the peers produced
the same rows and digests from the same registry.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONTENDERS = {"floor", "floor-32", "floor-urllib3", "regdata", "python-dxf", "oras-py", "skopeo"}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    out = tmp_path_factory.mktemp("bench") / "smoke.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, f"bench --smoke failed:\n{done.stderr[-4000:]}"
    return json.loads(out.read_text()), done.stdout


def test_report_has_every_section(smoke: tuple[dict[str, Any], str]) -> None:
    report, _ = smoke
    assert {"meta", "dataset", "scale_datasets", "cold", "warm", "scale", "targets", "markdown"} <= set(
        report
    )
    assert report["meta"]["command"] == "python -m bench.run --smoke"
    assert report["dataset"]["tags"] == 12
    assert report["dataset"]["ci_tags"] > 0 and report["dataset"]["hub_tags"] > 0
    assert report["dataset"]["indexes"] > 0  # the multi-platform part is there
    assert {(r["network"], r["contender"]) for r in report["cold"]} == {
        (n, c) for n in ("loopback", "wan") for c in CONTENDERS
    }
    assert {(w["network"], w["name"]) for w in report["warm"]} == {
        (n, k) for n in ("loopback", "wan") for k in ("within_ttl", "after_ttl", "second_process_memcached")
    }
    assert set(report["scale"]) == {"8", "24"}
    for size in report["scale"].values():
        assert size["regdata_peak_rss_mb"] > 0
    for target in report["targets"]:
        assert set(target) >= {"name", "value", "limit", "op", "met"}
        assert target["met"] in (True, False)


def test_every_contender_read_what_regdata_read(smoke: tuple[dict[str, Any], str]) -> None:
    report, _ = smoke
    by = {(r["network"], r["contender"]): r for r in report["cold"]}
    for (network, name), run in by.items():
        if run["skipped"]:
            # Only a peer package that is not installed may be skipped (pip install -e '.[bench]').
            assert name in ("python-dxf", "oras-py") and "not installed" in run["skipped"], run["skipped"]
            continue
        assert run["runs"] >= 1 and run["requests"] > 0, (network, name)
        assert run["agrees_with_regdata"] is True, (network, name, run["disagreement"])
        ours = by[(network, "regdata")]["read"]
        read = run["read"]
        assert read["tags"] == 12
        if name == "regdata":
            continue  # the reference the others are held against
        assert read["rows_sha256"] is not None or name == "skopeo", (network, name)
        if read["rows_sha256"] is not None:
            assert read["rows_sha256"] == ours["rows_sha256"], (network, name)
        if read["tops_sha256"] is not None and name != "skopeo":  # skopeo sees linux/amd64 tags only
            assert read["tops_sha256"] == ours["tops_sha256"], (network, name)
    # regdata asks for nothing the floor does not.
    for network in ("loopback", "wan"):
        assert by[(network, "regdata")]["requests"] <= by[(network, "floor")]["requests"]


def test_warm_and_scale_runs_read_the_same_rows(smoke: tuple[dict[str, Any], str]) -> None:
    report, _ = smoke
    for warm in report["warm"]:
        for part in ("cold", "warm"):
            assert warm[part]["runs"] >= 1
            assert warm[part]["agrees_with_regdata"] is True, (warm["network"], warm["name"], part)
    for size in report["scale"].values():
        assert size["regdata"]["agrees_with_regdata"] is True
        assert size["regdata"]["read"]["rows_sha256"] == size["floor"]["read"]["rows_sha256"]


def test_table_and_targets_are_printed(smoke: tuple[dict[str, Any], str]) -> None:
    report, stdout = smoke
    assert "median s" in stdout and "x floor" in stdout
    assert "targets:" in stdout
    for target in report["targets"]:
        assert target["name"] in stdout
    assert report["markdown"].startswith("| network | contender |")
