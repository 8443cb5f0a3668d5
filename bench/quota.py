"""Freshness within a pull quota, and a scan under throttling: ``python -m bench.quota``.

Two parts, each with its baseline in the same run:

- **pulls**: the demo fleet (``regdata/sandbox/data/fleet/``) judged through a Docker-Hub-like
  stand-in (tests/support/hubproxy.py: it counts manifest GETs as pulls, as
  Docker Hub does) in front of the demo's sandbox registry: the full scan
  (``full=True``) and the targeted one on a cold SQLite cache, then the
  targeted one again within the TTL and after it; then at limits of 100 and
  10 (the default floor kept).
- **throttled**: ``bench/app`` (250 tags, bench/fill.py) read whole through
  our FaultProxy answering every third request 429 with ``Retry-After: 1`` and
  dropping every 17th connection, beside the same read through the proxy
  with no fault.  "The waits" are the time the host was held by Retry-After
  and backoff (their union, as the client's retry layer kept them).

Nothing leaves 127.0.0.1.  ``--only pulls`` or ``--only throttled``; ``--tags``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from regdata import Credentials, Registry
from regdata.analysis.targeted import AGREES_WITH_FULL
from regdata.report import judge_fleet, read_fleets, scan_fleet
from regdata.sandbox import Sandbox
from regdata.sandbox.demo import FLEET_FILES
from regdata.sandbox.demodata import data_dir, load_data
from tests.support.hubproxy import Throttle, start_hub
from tests.support.proxy import start_proxy
from tests.support.registry_server import start_registry

from . import fill
from .run import isolate

__all__ = ["main"]

RESULTS = Path(__file__).resolve().parent / "results"
NOW = "2018-01-27T12:00:00Z"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _sent(reg: Registry) -> pd.DataFrame:
    log = reg.requests
    return log.loc[log["cache"].astype("string") != "hit"]


def _kinds(frame: pd.DataFrame) -> dict[str, int]:
    keys = frame["kind"].astype("string") + ":" + frame["method"].astype("string")
    return {str(k): int(v) for k, v in keys.value_counts().sort_index().items()}


def _judge(
    host: str,
    fleet: pd.DataFrame,
    cache: str | None,
    ttl: float,
    full: bool,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    reg = Registry(cache=cache, cache_ttl=ttl, credentials=Credentials.none(), mirrors={"docker.io": host})
    with reg:
        started = time.perf_counter()
        scan = scan_fleet(reg, fleet, full=full)
        frame = judge_fleet(scan, now=NOW)
        seconds = time.perf_counter() - started
        sent = _sent(reg)
        manifest_gets = int(((sent["kind"] == "manifest") & (sent["method"] == "GET")).sum())
        figures = {
            "seconds": round(seconds, 3),
            "requests": len(sent),
            "by_kind": _kinds(sent),
            "pulls": int(reg.requests["pull"].sum()),
            "manifest_gets": manifest_gets,
            "image_rows": sum(len(f) for f in scan.images.values())
            + sum(len(f) for f in scan.pinned.values()),
            "estimated_pulls": scan.estimated_pulls,
            "summary": scan.pull_summary(),
            "statuses": {str(k): int(v) for k, v in frame["status"].astype("string").value_counts().items()},
        }
    return frame, figures


def pulls_part(tmp: Path) -> dict[str, Any]:
    """The demo fleet through the pull-counting stand-in."""
    root = data_dir()
    fleet = read_fleets([root / f for f in FLEET_FILES])
    pins = [str(r) for r in fleet.loc[fleet["digest"].notna(), "reference"]]
    deployed = len(fleet)
    out: dict[str, Any] = {"fleet_rows": deployed, "parsed": int(fleet["error"].isna().sum())}
    with Sandbox.start(port=0, root=tmp / "sandbox", data=load_data(root)) as sandbox:
        say("filling the sandbox with the demo images")
        started = time.perf_counter()
        out["fill"] = str(sandbox.fill(pins=pins))
        out["fill_seconds"] = round(time.perf_counter() - started, 1)
        with start_hub(sandbox.host, limit=1_000_000) as (hub, quota):
            runs: dict[str, Any] = {}
            say("full scan, cold cache")
            full, runs["full_cold"] = _judge(hub.host, fleet, f"sqlite:///{tmp / 'full.sqlite'}", 300, True)
            runs["full_cold"]["hub_pulls"] = quota.pulls
            before = quota.pulls
            say("targeted, cold cache")
            cache = f"sqlite:///{tmp / 'targeted.sqlite'}"
            targeted, runs["targeted_cold"] = _judge(hub.host, fleet, cache, 300, False)
            runs["targeted_cold"]["hub_pulls"] = quota.pulls - before
            before = quota.pulls
            say("targeted, within the TTL (a new process's cache: the same SQLite file)")
            _, runs["targeted_within_ttl"] = _judge(hub.host, fleet, cache, 300, False)
            runs["targeted_within_ttl"]["hub_pulls"] = quota.pulls - before
            before = quota.pulls
            say("targeted, after the TTL")
            _, runs["targeted_after_ttl"] = _judge(hub.host, fleet, cache, 0, False)
            runs["targeted_after_ttl"]["hub_pulls"] = quota.pulls - before
        agree = (
            targeted[list(AGREES_WITH_FULL)]
            .reset_index(drop=True)
            .equals(full[list(AGREES_WITH_FULL)].reset_index(drop=True))
        )
        out["runs"] = runs
        out["targeted_equals_full"] = agree
        for limit in (100, 10):
            with start_hub(sandbox.host, limit=limit) as (hub, quota):
                say(f"targeted at a limit of {limit}, cold")
                frame, figures = _judge(hub.host, fleet, None, 300, False)
            reasons = frame["reason"].fillna("")
            figures.update(
                hub_pulls=quota.pulls,
                hub_refused=quota.refused,
                left=quota.remaining,
                unknown_for_quota=int(reasons.str.startswith("pull quota").sum()),
                rows=len(frame),
            )
            out[f"limit_{limit}"] = figures
    cold = out["runs"]["targeted_cold"]
    out["pulls_per_deployed_image"] = round(cold["hub_pulls"] / deployed, 2)
    out["full_pulls_per_deployed_image"] = round(out["runs"]["full_cold"]["hub_pulls"] / deployed, 2)
    return out


def _throttled_scan(host: str, repo: str) -> dict[str, Any]:
    reg = Registry(cache=None, credentials=Credentials.none())
    with reg:
        started = time.perf_counter()
        frame = reg.get_repository(f"{host}/{repo}")
        seconds = time.perf_counter() - started
        retry = reg.factory.base  # type: ignore[attr-defined]
        held = sum(state.held_s for state in retry._hosts.values())
        log = reg.requests
        errors = frame["error"].dropna().astype("string")
        return {
            "seconds": round(seconds, 2),
            "rows": len(frame),
            "error_rows": len(errors),
            "errors": sorted({e[:80] for e in errors})[:5],
            "requests": len(log),
            "throttled_429": int((log["status"] == 429).sum()),
            "dropped": int((log["status"].isna() & log["error"].notna()).sum()),
            "waits_s": round(held, 2),
            "concurrency_at_end": reg.factory.limiters.concurrency(host),  # type: ignore[attr-defined]
        }


def throttled_part(tmp: Path, tags: int) -> dict[str, Any]:
    """bench/app through a throttling proxy, beside the same read through the proxy without faults."""
    out: dict[str, Any] = {"tags": tags}
    registry = start_registry()
    try:
        say(f"filling {fill.MAIN_REPO} ({tags} tags)")
        out["dataset"] = fill.fill_main(registry.url, tags).as_dict()
        with start_proxy(registry.host) as plain:
            say("unthrottled scan through the proxy")
            out["unthrottled"] = _throttled_scan(plain.host, fill.MAIN_REPO)
        with start_proxy(registry.host) as proxy:
            throttle = Throttle(every=3, retry_after="1", drop=17)
            proxy.add(throttle)
            say("throttled scan: 429 (Retry-After: 1) every 3rd request, every 17th connection dropped")
            out["throttled"] = _throttled_scan(proxy.host, fill.MAIN_REPO)
            out["throttled"].update(proxy_429=throttle.throttled, proxy_dropped=throttle.dropped)
    finally:
        registry.close()
    run = out["throttled"]
    run["time_over_waits"] = round(run["seconds"] / run["waits_s"], 2) if run["waits_s"] else None
    return out


def targets(report: dict[str, Any]) -> list[str]:
    """The issue's targets, met or missed."""
    lines = []

    def check(name: str, value: Any, ok: bool, target: str) -> None:
        lines.append(f"- {'met' if ok else 'MISSED'}: {name}: {value} (target {target})")

    pulls = report.get("pulls")
    if pulls:
        runs = pulls["runs"]
        check(
            "manifest GETs per deployed image, cold, targeted",
            pulls["pulls_per_deployed_image"],
            pulls["pulls_per_deployed_image"] <= 4,
            f"<= 4; the full scan's: {pulls['full_pulls_per_deployed_image']}",
        )
        check(
            "second run within the TTL: requests",
            runs["targeted_within_ttl"]["requests"],
            runs["targeted_within_ttl"]["requests"] == 0,
            "0",
        )
        check(
            "after the TTL: manifest GETs",
            runs["targeted_after_ttl"]["manifest_gets"],
            runs["targeted_after_ttl"]["manifest_gets"] == 0,
            "0",
        )
        check(
            "targeted judgement equals the full one",
            pulls["targeted_equals_full"],
            pulls["targeted_equals_full"],
            "True",
        )
        check(
            "limit 10: pulls refused by the stand-in",
            pulls["limit_10"]["hub_refused"],
            pulls["limit_10"]["hub_refused"] == 0,
            "0",
        )
    throttled = report.get("throttled")
    if throttled:
        run = throttled["throttled"]
        check("throttled scan: error rows", run["error_rows"], run["error_rows"] == 0, "0")
        ratio = run["time_over_waits"]
        check("throttled scan: time / the waits", ratio, ratio is not None and ratio <= 2.0, "<= 2.0")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the parts asked for; print the figures and the targets; write bench/results/quota.json."""
    parser = argparse.ArgumentParser(prog="python -m bench.quota", description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("pulls", "throttled"), help="one part only")
    parser.add_argument("--tags", type=int, default=250, help="tags of bench/app for the throttled part")
    parser.add_argument("--out", type=Path, default=RESULTS / "quota.json")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with tempfile.TemporaryDirectory(prefix="regdata-bench-quota-") as name:
        tmp = Path(name)
        isolate(tmp / "home")
        if args.only in (None, "pulls"):
            report["pulls"] = pulls_part(tmp)
        if args.only in (None, "throttled"):
            report["throttled"] = throttled_part(tmp, args.tags)
    report["targets"] = targets(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "targets"}, indent=2, default=str))
    print("\n".join(["", "Targets:", *report["targets"]]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
