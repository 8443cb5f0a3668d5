"""The batch report: scan what a fleet runs, judge its freshness, write one self-contained file.

The nightly job, in three calls::

    fleet = read_fleets(["deploy/k8s.yaml", "compose.yaml"])
    scan = scan_fleet(reg, fleet)                 # every repository the fleet uses, once
    freshness = judge_fleet(scan)                  # regdata.analysis.fleet.fleet_freshness, errors filled in
    write_report(freshness, scan.images, reg.requests, "report.html", errors=scan.errors)

The HTML file needs no server and no network: styles are inline and the
plots are PNG ``data:`` URIs.  Stale images come first, the worst lag on top;
errors are listed with their reason; the requests and the cache of the run
are summed up at the end.  ``format="markdown"`` writes the same report as
Markdown, its plots as PNG files beside it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from regdata.analysis.freshness import DEFAULT_PLATFORM, as_now
from regdata.report.figures import (
    _counts,
    _error_items,
    _ordered,
    _plots,
    _request_lines,
    _rows,
    _sources,
    request_figures,
)
from regdata.report.fleetscan import FleetScan, judge_fleet, read_fleets, scan_fleet
from regdata.report.html import _html
from regdata.report.markdown import _markdown

__all__ = [
    "FleetScan",
    "judge_fleet",
    "read_fleets",
    "request_figures",
    "scan_fleet",
    "write_report",
]

ReportFormat = Literal["html", "markdown"]


def write_report(
    fleet_freshness: pd.DataFrame,
    images: Mapping[str, pd.DataFrame] | pd.DataFrame,
    requests: pd.DataFrame,
    path: str | os.PathLike[str],
    format: ReportFormat = "html",
    *,
    errors: Mapping[str, str] | None = None,
    cache: Any = None,
    run: Mapping[str, Any] | None = None,
    title: str = "Fleet freshness",
    platform: str = DEFAULT_PLATFORM,
    repositories: Literal["stale", "all", "none"] = "stale",
    now: Any = None,
) -> Path:
    """Write the freshness report of a fleet to ``path``; returns the path.

    ``fleet_freshness``: a :func:`~regdata.analysis.fleet.fleet_freshness` (or
    :func:`judge_fleet`) frame; ``images``: the images frames the plots are
    drawn from (by repository, or one frame); ``requests``: the request log
    of the run (``Registry.requests``); ``errors``: repositories that could
    not be read; ``cache``: the Registry's cache, for its hit and miss counts;
    ``run``: more figures to list (name → value), such as durations;
    ``repositories``: which repositories get their tag timeline and size plot
    (those with a stale image, all of the fleet's, or none).

    HTML is one self-contained file (inline styles, plots as ``data:`` URIs,
    no script, no external reference).  Markdown puts the plots in a
    ``<name>_files/`` directory beside the file.
    """
    if format not in ("html", "markdown"):
        raise ValueError(f"format must be 'html' or 'markdown', not {format!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    frames = list(images.values()) if isinstance(images, Mapping) else [images]
    frames = [f for f in frames if len(f)]
    all_images = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["registry", "repository", "tag", "platform", "created", "size", "error"])
    )
    ordered = _ordered(fleet_freshness)
    stamp = as_now(now)  # printed as UTC: an offset given must be converted, not dropped
    context = {
        "title": title,
        "generated": stamp.strftime("%Y-%m-%d %H:%M UTC"),
        "platform": platform,
        "counts": _counts(ordered),
        "rows": _rows(ordered),
        "errors": _error_items(ordered, errors, all_images),
        "requests": _request_lines(request_figures(requests, cache), run),
        "plots": _plots(ordered, all_images, platform, repositories),
        "sources": _sources(ordered),
    }
    if format == "html":
        target.write_text(_html(context), encoding="utf-8")
    else:
        target.write_text(_markdown(context, target), encoding="utf-8")
    return target
