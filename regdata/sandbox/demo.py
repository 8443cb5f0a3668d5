"""The main job, offline: a sandbox registry, a sample fleet's freshness, an HTML report.

``regdata demo`` (or ``bash scripts/demo``) runs :func:`run_demo`:

1. starts the sandbox registry on 127.0.0.1 (:mod:`regdata.sandbox`) and
   fills it from ``data/``: real Docker Hub tags, platforms, histories,
   created times and sizes; stand-in layer contents;
2. reads the sample fleet in ``regdata/sandbox/data/fleet/`` (a Kubernetes multi-document
   YAML and a compose file naming real images: ``nginx:1.13@sha256:...``,
   ``docker.io/library/redis:4.0-alpine@...``, ``python:3.6-slim``...);
3. scans every repository the fleet uses through ``Registry(mirrors=...)``,
   so rows say ``docker.io`` while every request goes to loopback;
4. prints the freshness table and writes the report (``out/report.html``);
5. prints what the requests and the embedded SQLite cache did, and, from the
   second run on, how much the cache saved against the first.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

from regdata.report import FleetScan, judge_fleet, read_fleets, request_figures, scan_fleet, write_report
from regdata.sandbox import Sandbox, default_root
from regdata.sandbox.demodata import data_dir, load_data
from regdata.sandbox.fill import FillReport

__all__ = ["FLEET_FILES", "DemoResult", "freshness_table", "run_demo"]

FLEET_FILES = ("fleet/kubernetes.yaml", "fleet/compose.yaml")
RUNS_FILE = "demo-runs.json"

ProgressFactory = Callable[[str], Callable[[int, int], None] | None]


@dataclass
class DemoResult:
    """What a demo run did: its frames, the report path and its figures."""

    freshness: pd.DataFrame
    scan: FleetScan
    requests: pd.DataFrame
    report: Path
    fill: FillReport
    figures: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    previous: dict[str, Any] | None = None


_TABLE = (
    ("status", "status", 7),
    ("image", "image", 38),
    ("deployed_tag", "deployed", 15),
    ("deployed_created", "built", 10),
    ("candidate_tag", "newest", 15),
    ("lag_days", "lag d", 7),
    ("newer_versions", "newer", 5),
    ("reason", "why", 0),
)


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def freshness_table(freshness: pd.DataFrame, width: int | None = None) -> str:
    """The freshness frame as an aligned text table, stale first, sized for a terminal ``width``."""
    from regdata.report.figures import _cell, _ordered

    width = width or shutil.get_terminal_size((160, 24)).columns
    ordered = _ordered(freshness)
    rows = ordered.astype(object).where(ordered.notna(), None).to_dict("records")
    fixed = sum(w + 2 for _, _, w in _TABLE if w)
    reason_width = max(width - fixed, 20)
    widths = [w or reason_width for _, _, w in _TABLE]
    cells = [
        [
            _fit(_cell(row.get(col), "%Y-%m-%d").replace("\n", " "), w)
            for (col, _, _), w in zip(_TABLE, widths, strict=True)
        ]
        for row in rows
    ]
    used = [max([len(label), *(len(r[i]) for r in cells)]) for i, (_, label, _) in enumerate(_TABLE)]
    numeric = {"lag_days", "newer_versions"}

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if col in numeric else v.ljust(w)
            for (col, _, _), v, w in zip(_TABLE, values, used, strict=True)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line([label for _, label, _ in _TABLE]), *(line(r) for r in cells)])


def _load_runs(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _seconds(value: float) -> str:
    return f"{value:.1f} s"


def run_demo(
    out: str | os.PathLike[str] = "out/report.html",
    *,
    workdir: str | os.PathLike[str] | None = None,
    small: bool = False,
    fresh: bool = False,
    port: int | None = None,
    concurrency: int | None = None,
    platform: str = "linux/amd64",
    fleet: Sequence[str | os.PathLike[str]] | None = None,
    stream: TextIO | None = None,
    progress: ProgressFactory | None = None,
    now: Any = None,
) -> DemoResult:
    """Run the demo; print to ``stream`` (stdout); return what it found.

    ``workdir``: where the sandbox storage, the SQLite cache and the run
    figures live (default ``~/.cache/regdata/sandbox``); a second run there
    finds the sandbox filled and the cache warm.  ``small``: a small subset
    of the demo images (for tests).  ``fresh``: forget the cache and the
    previous runs first (the sandbox stays filled).  ``fleet``: other fleet
    files than ``regdata/sandbox/data/fleet/``.  ``progress(label)`` may return a
    ``progress(done, total)`` callable (the CLI's progress bars).
    """
    stream = stream or sys.stdout
    started = time.perf_counter()
    root = Path(workdir) if workdir is not None else default_root()
    root.mkdir(parents=True, exist_ok=True)
    cache_path = root / "cache.sqlite"
    runs_path = root / RUNS_FILE
    if fresh:
        for path in (cache_path, runs_path, Path(f"{cache_path}-wal"), Path(f"{cache_path}-shm")):
            path.unlink(missing_ok=True)
    runs = _load_runs(runs_path)
    data_root = data_dir()
    fleet_files = [Path(f) for f in fleet] if fleet else [data_root / f for f in FLEET_FILES]

    def say(text: str = "") -> None:
        print(text, file=stream, flush=True)

    def bar(label: str) -> Callable[[int, int], None] | None:
        return progress(label) if progress is not None else None

    say("regdata demo: a sandbox registry on 127.0.0.1 stands in for Docker Hub; nothing leaves this machine")
    fleet_frame = read_fleets(fleet_files)
    pins = [str(r) for r in fleet_frame.loc[fleet_frame["digest"].notna(), "reference"]]
    data = load_data(data_root)
    # The cache keys name the host that answers, port included: the port of the last run
    # keeps the cache warm when the default port was taken then.
    last_port = runs.get("port")
    if port is None and isinstance(last_port, int):
        port = last_port
    with Sandbox.start(port=port, root=root, data=data) as sandbox:
        moved = isinstance(last_port, int) and last_port != sandbox.port
        say(
            f"sandbox   Distribution registry at {sandbox.host}, serving as docker.io "
            f"(storage {sandbox.root / 'storage'})"
        )
        t0 = time.perf_counter()
        fill = sandbox.fill(small=small, pins=pins, concurrency=concurrency or 8, progress=bar("filling"))
        seconds = {"fill": time.perf_counter() - t0}
        say(f"fill      {fill}")
        say(f"fleet     {len(fleet_frame)} images in {', '.join(_show(f) for f in fleet_files)}")
        with sandbox.registry(cache=f"sqlite:///{cache_path}", concurrency=concurrency) as registry:
            t0 = time.perf_counter()
            scan = scan_fleet(registry, fleet_frame, progress=bar("scanning"))
            freshness = judge_fleet(scan, platform=platform, now=now)
            seconds["scan"] = time.perf_counter() - t0
            rows = sum(len(f) for f in scan.images.values())
            say(
                f"scan      {len(scan.images) + len(scan.errors)} repositories, {rows} image rows, "
                f"{_seconds(seconds['scan'])}, {scan.pull_summary()}"
            )
            say()
            say(freshness_table(freshness))
            say()
            requests = registry.requests
            figures = request_figures(requests, registry.cache)
            t0 = time.perf_counter()
            run_figures = {
                "sandbox fill": str(fill),
                "scan": _seconds(seconds["scan"]),
                "pulls": scan.pull_summary(),
            }
            report = write_report(
                freshness,
                scan.images,
                requests,
                out,
                errors=scan.errors,
                cache=registry.cache,
                run=run_figures,
                platform=platform,
                now=now,
                title="Fleet freshness (regdata demo)",
            )
            seconds["report"] = time.perf_counter() - t0
    seconds["total"] = time.perf_counter() - started
    counts = freshness["status"].astype("string").value_counts()
    summary = ", ".join(
        f"{int(counts[s])} {s}" for s in ("behind", "current", "unknown", "error") if s in counts
    )
    say(f"report    {_show(report)} ({summary})")
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(figures["by_kind"].items(), key=lambda kv: -kv[1]))
    say(
        f"requests  {figures['sent']:,} sent ({kinds or 'none'}), {figures['cached']:,} answered by the "
        f"cache, {figures['bytes'] / 1e6:.1f} MB"
    )
    say(f"cache     SQLite {_show(cache_path)}: {figures['hits']:,} hits, {figures['misses']:,} misses")
    this = {
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "manifest_gets": figures["manifest_gets"],
        "sent": figures["sent"],
        "cached": figures["cached"],
        "small": small,
    }
    first = runs.get("first")
    if first is not None and first.get("small") != small:
        first = None  # a run of the other subset is no yardstick
    if first is None:
        say(
            f"first run: {_seconds(seconds['total'])} (fill {_seconds(seconds['fill'])}, scan "
            f"{_seconds(seconds['scan'])}, report {_seconds(seconds['report'])}). Run it again: the sandbox "
            "is kept and the SQLite cache answers what does not change."
        )
        runs["first"] = this
    else:
        say(
            f"second run: {figures['manifest_gets']} manifest GETs (first run: {first['manifest_gets']}), "
            f"{figures['sent']:,} requests sent (first run: {first['sent']:,}); scan "
            f"{_seconds(seconds['scan'])} vs {_seconds(first['seconds']['scan'])}, total "
            f"{_seconds(seconds['total'])} vs {_seconds(first['seconds']['total'])}"
        )
    if moved and first is not None:
        say(
            f"(the sandbox is on port {sandbox.port}, not {last_port} as last time: to the cache it is "
            "another registry)"
        )
    runs["last"] = this
    runs["port"] = sandbox.port
    # The figures are a courtesy: a read-only cache directory must not fail the demo.
    with contextlib.suppress(OSError):
        runs_path.write_text(json.dumps(runs, indent=2))
    return DemoResult(freshness, scan, requests, report, fill, figures, seconds, first)


def _show(path: Path) -> str:
    """A path as a person reads it: relative to here, or with ``~``."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        home = str(Path.home())
        text = str(path)
        return "~" + text[len(home) :] if text.startswith(home + os.sep) else text
