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

import base64
import html
import io
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from regdata.analysis.fleet import STATUS_COLOURS, STATUS_ORDER, Within, fleet_freshness, read_fleet
from regdata.analysis.freshness import DEFAULT_PLATFORM, as_now
from regdata.errors import RegdataError
from regdata.oci.reference import Reference, short_name

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from regdata.client.registry import Registry

__all__ = [
    "FleetScan",
    "judge_fleet",
    "read_fleets",
    "request_figures",
    "scan_fleet",
    "write_report",
]

ReportFormat = Literal["html", "markdown"]
Progress = Callable[[int, int], None]



# --------------------------------------------------------------------------- scanning


def read_fleets(sources: Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """:func:`~regdata.analysis.fleet.read_fleet` of each file, in one frame (a missing file raises)."""
    frames = []
    for source in sources:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no such fleet file: {source}")
        frames.append(read_fleet(path))
    if not frames:
        raise ValueError("no fleet file given")
    return pd.concat(frames, ignore_index=True)


def _key(registry: Any, repository: Any) -> str:
    return f"{registry}/{repository}"


@dataclass
class FleetScan:
    """What :func:`scan_fleet` read.

    ``images``: each repository's images frame, by ``registry/repository``
    (every tag with ``full``; else the images the judgement needs, and
    ``tags`` the tag names the judgement counts versions from: every tag
    listed, less those read and found without the platform); ``pinned``: rows of digest-pinned
    images that no current tag points at (read by digest; their ``tag`` is
    the digest); ``errors``: the repositories that could not be read, with
    why; ``blocked``: the fleet rows (by position) a needed read was refused
    for (the pull quota, throttling, the network), with why; ``pulls``: the
    pulls the scan sent, per host, and ``quota``: what each host said is left;
    ``estimated_pulls``: a targeted scan's estimate before reading (2 per
    deployed image and per line: an index and a platform manifest; the cache
    and shared digests make it less, unusable candidates more).
    """

    fleet: pd.DataFrame
    images: dict[str, pd.DataFrame] = field(default_factory=dict)
    pinned: dict[str, pd.DataFrame] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    full: bool = True
    platform: str | None = None
    within: Within | None = None
    tags: dict[str, list[str]] = field(default_factory=dict)
    blocked: dict[int, str] = field(default_factory=dict)
    estimated_pulls: int | None = None
    pulls: dict[str, int] = field(default_factory=dict)
    quota: dict[str, str] = field(default_factory=dict)
    manifest_gets: int = 0

    def pull_summary(self) -> str:
        """``N pulls (host: N left of M per W)``: what the run cost against the hosts' quotas.

        With no host announcing a quota, the manifest GETs sent: the pulls Docker Hub would count.
        """
        used = sum(self.pulls.values()) if self.quota else self.manifest_gets
        noun = "pull" if self.quota else "manifest GET"
        text = f"{used} {noun}{'s' if used != 1 else ''}"
        if self.estimated_pulls is not None:
            text += f" (estimated {self.estimated_pulls})"
        if self.quota:
            text += "; " + ", ".join(f"{host}: {left}" for host, left in sorted(self.quota.items()))
        return text

    def frames(self) -> dict[str, pd.DataFrame]:
        """Per repository, its tags' rows and its pinned rows: what freshness is judged on."""
        out = dict(self.images)
        for key, pinned in self.pinned.items():
            out[key] = pd.concat([out[key], pinned], ignore_index=True) if key in out else pinned
        return out

    def all_images(self) -> pd.DataFrame:
        """Every repository's images frame in one frame (no pinned rows)."""
        frames = [f for f in self.images.values() if len(f)]
        if not frames:
            return next(iter(self.images.values()), pd.DataFrame()).iloc[0:0]
        return pd.concat(frames, ignore_index=True)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def scan_fleet(registry: Registry, fleet: pd.DataFrame, *, progress: Progress | None = None,
               full: bool = False, platform: str = DEFAULT_PLATFORM, within: Within = "track") -> FleetScan:
    """Read what the freshness of a fleet needs, with ``registry``, each repository once.

    By default only what the judgement on ``platform`` (and ``within``) needs
    (:mod:`regdata.analysis.targeted`): tag lists, HEADs, and the deployed images and
    their lines' best candidates on that platform, a few pulls per deployed
    image; rows whose reads were refused (the pull quota...) go to
    ``blocked``.  ``full=True`` reads each repository whole
    (:meth:`~regdata.Registry.get_repository`), every tag and platform, and
    an image pinned by a digest no tag points at any more by digest; so is a
    repository with a digest pin without a tag in the targeted scan.  A
    repository that cannot be read (unknown, denied, unreachable) is
    recorded in ``errors`` and the scan goes on.  ``progress(done, total)``
    is called as repositories finish.
    """
    started = time.perf_counter()
    since = time.time()
    scan = FleetScan(fleet, full=full, platform=None if full else platform, within=None if full else within)
    usable = fleet.loc[fleet["error"].isna() & fleet["repository"].notna()]
    keys: dict[str, tuple[str, str]] = {}
    for registry_host, repository, tag, digest in zip(
        usable["registry"], usable["repository"], usable["tag"], usable["digest"], strict=True
    ):
        # A digest pin without a tag is named by the tags that point at it: its repository is read whole.
        if full or (pd.isna(tag) and not pd.isna(digest)):
            keys.setdefault(_key(registry_host, repository), (str(registry_host), str(repository)))
    if not full:
        from regdata.analysis.targeted import read_targeted

        plan = read_targeted(registry, fleet, platform=platform, within=within, skip=set(keys),
                             errors=scan.errors, progress=progress)
        for key, reads in plan.repos.items():
            scan.images[key] = reads.frame()
            scan.tags[key] = reads.counted()
        scan.blocked = plan.blocked
        scan.estimated_pulls = plan.estimated_pulls
    for done, (key, (host, repository)) in enumerate(sorted(keys.items()), start=1):
        try:
            scan.images[key] = registry.get_repository(f"{host}/{repository}")
        except RegdataError as exc:
            scan.errors[key] = _describe(exc)
        if progress is not None:
            progress(done, len(keys))
    pins = usable.loc[usable["digest"].notna()]
    known: dict[str, set[str]] = {}  # per repository, the digests its frames hold so far
    for host, repository, digest in zip(pins["registry"], pins["repository"], pins["digest"], strict=True):
        key = _key(host, repository)
        frame = scan.images.get(key)
        if frame is None or key not in keys:
            continue
        if key not in known:
            known[key] = set(frame["digest"].dropna()) | set(frame["manifest_digest"].dropna())
        if digest in known[key] or f"{key}@{digest}" in scan.errors:
            continue  # read already, or already failed: pinned twice in a fleet is read once
        known[key].add(str(digest))
        try:
            rows = registry.get_image(Reference(str(host), str(repository), None, str(digest)))
        except RegdataError as exc:
            scan.errors[f"{key}@{digest}"] = _describe(exc)
            continue
        previous = scan.pinned.get(key)
        scan.pinned[key] = rows if previous is None else pd.concat([previous, rows], ignore_index=True)
    scan.seconds = time.perf_counter() - started
    log = getattr(registry.factory, "log", None)
    if log is not None:
        for record in log.records():
            if record.started < since:
                continue
            if record.pull:
                scan.pulls[record.host] = scan.pulls.get(record.host, 0) + 1
            if record.kind == "manifest" and record.method == "GET" and record.cache != "hit":
                scan.manifest_gets += 1
    scan.quota = {host: rate.describe() for host, rate in registry.rate_limits.items()}
    return scan


# What a judgement draws from the images; a row that could not be judged keeps none of it.
_JUDGED = ("candidate_tag", "candidate_created", "newest_tag", "newest_created", "lag_days",
           "newer_versions")


def judge_fleet(scan: FleetScan, *, platform: str | None = None, now: Any = None,
                within: Within | None = None) -> pd.DataFrame:
    """:func:`~regdata.analysis.fleet.fleet_freshness` of a scan; a repository that could not be read
    makes its images ``error`` rows with the reason, rather than ``unknown``, and a row a
    needed read was refused for (``scan.blocked``) is ``unknown`` with why.

    ``platform`` and ``within`` default to the scan's (``linux/amd64`` and ``track`` for a
    full one); a targeted scan read only what its own need, and refuses others.
    """
    if not scan.full and (platform not in (None, scan.platform) or within not in (None, scan.within)):
        raise ValueError(f"this scan read what a judgement on {scan.platform} within "
                         f"{scan.within} needs; scan again, or with full=True")
    on = platform or scan.platform or DEFAULT_PLATFORM
    frame = fleet_freshness(scan.fleet, scan.frames(), now, platform=on,
                            within=within or scan.within or "track", tags=None if scan.full else scan.tags)
    if scan.blocked and len(frame):
        frame = frame.copy()
        for position, why in scan.blocked.items():
            for column in _JUDGED:
                frame.at[position, column] = pd.NA
            frame.at[position, "status"] = "unknown"
            frame.at[position, "reason"] = why
    if not scan.errors or not len(frame):
        return frame
    frame = frame.copy()
    columns = zip(frame["registry"], frame["repository"], frame["digest"], strict=True)
    for i, (host, repository, digest) in enumerate(columns):
        if pd.isna(repository):
            continue
        key = _key(host, repository)
        reason = scan.errors.get(key) or (scan.errors.get(f"{key}@{digest}") if not pd.isna(digest) else None)
        if reason is not None and frame.at[i, "status"] != "error":
            frame.at[i, "status"] = "error"
            frame.at[i, "reason"] = reason
    return frame


# --------------------------------------------------------------------------- figures


def request_figures(requests: pd.DataFrame, cache: Any = None) -> dict[str, Any]:
    """The request log summed up: what went to the network, what the cache answered.

    Keys: ``sent`` (HTTP requests), ``cached`` (answers from the cache),
    ``by_kind`` (sent, per kind), ``manifest_gets``, ``bytes``, ``errors``
    (requests that failed), ``seconds`` (summed request time), and with a
    :class:`~regdata.Cache`, its ``hits``, ``misses``, ``cache_errors`` and
    ``backend``.
    """
    cached = requests["cache"].astype("string") == "hit"
    sent = requests.loc[~cached.fillna(False)]
    kinds = sent["kind"].astype("string").value_counts()
    figures: dict[str, Any] = {
        "sent": len(sent),
        "cached": int(cached.sum()),
        "by_kind": {str(k): int(v) for k, v in kinds.items()},
        "manifest_gets": int(((sent["kind"] == "manifest") & (sent["method"] == "GET")).sum()),
        "bytes": int(sent["bytes"].fillna(0).sum()),
        "errors": int((sent["error"].notna() | (sent["status"].fillna(0) >= 400)).sum()),
        "seconds": float(sent["duration_s"].sum()),
    }
    if cache is not None:
        figures.update(hits=cache.hits, misses=cache.misses, cache_errors=cache.errors,
                       backend=repr(cache.backend))
    return figures


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def _ordered(freshness: pd.DataFrame) -> pd.DataFrame:
    """Stale first, worst lag first; then errors, unknown, current."""
    rank = {s: i for i, s in enumerate(STATUS_ORDER)}
    keyed = freshness.assign(
        _rank=freshness["status"].astype("string").map(rank).fillna(len(rank)),
        _lag=freshness["lag_days"].astype("float64"),
    )
    keyed = keyed.sort_values(["_rank", "_lag"], ascending=[True, False], na_position="last", kind="stable")
    return keyed.drop(columns=["_rank", "_lag"]).reset_index(drop=True)


def _counts(freshness: pd.DataFrame) -> dict[str, int]:
    counts = freshness["status"].astype("string").value_counts()
    return {s: int(counts.get(s, 0)) for s in STATUS_ORDER}


# --------------------------------------------------------------------------- plots


def _plots(freshness: pd.DataFrame, images: pd.DataFrame, platform: str,
           repositories: Literal["stale", "all", "none"]) -> list[tuple[str, str, bytes]]:
    """(section, title, PNG) of each plot.  The one place the report draws."""
    from regdata.analysis import plots

    out: list[tuple[str, str, bytes]] = []
    out.append(("fleet", "Lag of each deployed image", _png(plots.fleet_freshness_plot(freshness))))
    if not len(images) or repositories == "none":
        return out
    ordered = _ordered(freshness)
    if repositories == "stale":
        ordered = ordered.loc[ordered["status"].astype("string") == "behind"]
    pairs = zip(ordered["registry"], ordered["repository"], strict=True)
    order = list(dict.fromkeys(f"{r}/{p}" for r, p in pairs if not pd.isna(p)))
    keys = images["registry"].astype("string") + "/" + images["repository"].astype("string")
    for key in order:
        part = images.loc[keys == key]
        if not len(part):
            continue
        name = key.removeprefix("docker.io/").removeprefix("library/")
        out.append((key, f"{name}: created time per tag",
                    _png(plots.tag_timeline(part, platform=platform))))
        out.append((key, f"{name}: size per version", _png(plots.size_over_versions(part))))
    return out


def _png(ax: Axes) -> bytes:
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    figure = ax.get_figure(root=True)
    assert isinstance(figure, Figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()


def _sources(freshness: pd.DataFrame) -> list[str]:
    """The fleet files named in the ``source`` column (``file#doc/...`` or ``file:line``)."""
    if "source" not in freshness:
        return []
    names = {str(s).split("#")[0].rsplit(":", 1)[0] for s in freshness["source"].dropna()}
    return sorted(n for n in names if n and n != "<text>")


# --------------------------------------------------------------------------- text


def _cell(value: Any, time_format: str = "%Y-%m-%d %H:%M") -> str:
    """A frame value as table text: blanks for missing, one decimal, times to the minute."""
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, float):
        return "" if pd.isna(value) else f"{value:.1f}"
    if isinstance(value, pd.Timestamp):
        return value.strftime(time_format)
    return str(value)


def _where(row: Mapping[Any, Any]) -> str:
    parts = [_cell(row.get(c)) for c in ("workload", "container")]
    namespace = _cell(row.get("namespace"))
    text = "/".join(p for p in parts if p)
    return f"{namespace}: {text}" if namespace and text else text


def _short_image(value: Any) -> str:
    """A reference with its digest cut to 12 hex digits: the table stays readable."""
    return short_name(_cell(value))


_COLUMNS = (
    ("status", "status"), ("image", "image"), ("where", "where"), ("deployed", "deployed"),
    ("deployed_created", "built"), ("candidate", "newest in track"), ("candidate_created", "built"),
    ("lag_days", "lag (days)"), ("newer_versions", "newer"), ("reason", "why"),
)


def _rows(freshness: pd.DataFrame) -> list[dict[Any, Any]]:
    records = freshness.astype(object).where(freshness.notna(), None).to_dict("records")
    out = []
    for row in records:
        deployed = _cell(row.get("deployed_tag")) or _cell(row.get("tag"))
        out.append({**row, "where": _where(row), "deployed": deployed,
                    "candidate": _cell(row.get("candidate_tag"))})
    return out


def _summary_line(counts: Mapping[str, int], total: int) -> str:
    parts = [f"{counts[s]} {s}" for s in STATUS_ORDER if counts.get(s)]
    return f"{total} deployed images: " + ", ".join(parts) if parts else f"{total} deployed images"


def _request_lines(figures: Mapping[str, Any], run: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(figures["by_kind"].items(), key=lambda kv: -kv[1]))
    lines = [
        ("requests sent", f"{figures['sent']:,}" + (f" ({kinds})" if kinds else "")),
        ("manifest GETs", f"{figures['manifest_gets']:,}"),
        ("answered by the cache", f"{figures['cached']:,}"),
        ("bytes received", _size(figures["bytes"])),
        ("failed requests", f"{figures['errors']:,}"),
        ("time in requests", f"{figures['seconds']:.1f} s (summed over concurrent requests)"),
    ]
    if "hits" in figures:
        lines.append(("cache", f"{figures['backend']}: {figures['hits']:,} hits, {figures['misses']:,} misses"
                      + (f", {figures['cache_errors']} backend errors" if figures["cache_errors"] else "")))
    for key, value in (run or {}).items():
        lines.append((str(key), _cell(value)))
    return lines


def _error_items(freshness: pd.DataFrame, errors: Mapping[str, str] | None,
                 images: pd.DataFrame) -> list[tuple[str, str]]:
    items: list[tuple[str, str]] = []
    bad = freshness.loc[freshness["status"].astype("string").isin(["error", "unknown"])]
    for row in bad.astype(object).where(bad.notna(), None).to_dict("records"):
        what = _cell(row.get("image")) or _cell(row.get("source"))
        items.append((f"{what} ({row['status']}, {_where(row) or _cell(row.get('source'))})",
                      _cell(row.get("reason"))))
    for key, message in (errors or {}).items():
        if not any(message == text for _, text in items):
            items.append((key, message))
    if len(images) and "error" in images:
        failed = images.loc[images["error"].notna()]
        for row in failed.head(50).to_dict("records"):
            items.append((f"{row['registry']}/{row['repository']}:{row['tag']}"
                          + (f" ({row['platform']})" if not pd.isna(row.get("platform")) else ""),
                          str(row["error"])))
        if len(failed) > 50:
            items.append(("…", f"{len(failed) - 50} more image rows with an error"))
    return items


# --------------------------------------------------------------------------- writing


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
    all_images = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["registry", "repository", "tag", "platform", "created", "size", "error"])
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


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1d1f;margin:24px auto;
max-width:1280px;padding:0 20px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 8px;border-bottom:1px solid #ddd;
padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
.meta{color:#666;margin:0 0 16px}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:12px 0 20px}
.card{border-radius:8px;padding:10px 16px;min-width:120px;color:#fff}
.card b{display:block;font-size:28px;line-height:1.1}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eee;vertical-align:top}
th{background:#f5f5f7;font-weight:600;position:sticky;top:0}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.image{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
td.image span{white-space:nowrap}
td.why{min-width:220px}
td.tag{white-space:nowrap}
td.date{white-space:nowrap}
.badge{display:inline-block;border-radius:10px;padding:1px 9px;color:#fff;font-size:12px;font-weight:600}
.lag{display:flex;align-items:center;gap:6px;justify-content:flex-end}
.bar{height:10px;background:#d62728;border-radius:2px}
tr.behind{background:#fff5f5}
.why{color:#444}
figure{margin:12px 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#666;font-size:12px}
details{margin:6px 0}summary{cursor:pointer;font-weight:600}
ul.errors li{margin:4px 0}ul.errors code{background:#f5f5f7;padding:1px 4px}
dl.figures{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px}
dl.figures dt{color:#666}dl.figures dd{margin:0}
.ok{color:#2ca02c;font-weight:600}
"""


def _badge(status: str) -> str:
    colour = STATUS_COLOURS.get(status, "#9e9e9e")
    return f'<span class="badge" style="background:{colour}">{html.escape(status)}</span>'


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def _table_html(rows: list[dict[str, Any]], max_lag: float) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in _COLUMNS)
    body = []
    for row in rows:
        cells = []
        for column, _ in _COLUMNS:
            value = row.get(column)
            if column == "status":
                cells.append(f"<td>{_badge(str(value))}</td>")
            elif column == "lag_days":
                if value is None or pd.isna(value):
                    cells.append('<td class="num"></td>')
                else:
                    width = 0 if max_lag <= 0 else max(2, round(80 * float(value) / max_lag))
                    bar = (f'<span class="bar" style="width:{width}px"></span>'
                           if row["status"] == "behind" else "")
                    cells.append(f'<td class="num"><span class="lag">{bar}{float(value):.1f}</span></td>')
            elif column == "newer_versions":
                cells.append(f'<td class="num">{html.escape(_cell(value))}</td>')
            elif column == "image":
                # A long reference breaks only after a "/" or before its digest, never at a "-".
                parts = re.split(r"(?<=/)|(?=@)", _short_image(value))
                short = "<wbr>".join(f"<span>{html.escape(p)}</span>" for p in parts if p)
                cells.append(f'<td class="image" title="{html.escape(_cell(value))}">{short}</td>')
            elif column in ("deployed_created", "candidate_created"):
                stamp = _cell(value)
                cells.append(f'<td class="date" title="{html.escape(stamp)} UTC">'
                             f"{html.escape(stamp[:10])}</td>")
            elif column in ("deployed", "candidate"):
                cells.append(f'<td class="tag">{html.escape(_cell(value))}</td>')
            elif column == "reason":
                cells.append(f'<td class="why">{html.escape(_cell(value))}</td>')
            else:
                cells.append(f"<td>{html.escape(_cell(value))}</td>")
        body.append(f'<tr class="{html.escape(str(row.get("status")))}">{"".join(cells)}</tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _html(context: Mapping[str, Any]) -> str:
    counts: Mapping[str, int] = context["counts"]
    rows: list[dict[str, Any]] = context["rows"]
    lags = [float(r["lag_days"]) for r in rows
            if r.get("lag_days") is not None and not pd.isna(r["lag_days"])]
    max_lag = max(lags, default=0.0)
    stale = [r for r in rows if r.get("status") == "behind"]
    title = html.escape(context["title"])
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}</title><style>{_CSS}</style></head><body>",
        f"<h1>{title}</h1>",
        f'<p class="meta">{html.escape(_summary_line(counts, len(rows)))} · judged on '
        f"{html.escape(context['platform'])} images by their created time · generated "
        f"{html.escape(context['generated'])}"
        + (f" · from {html.escape(', '.join(context['sources']))}" if context["sources"] else "") + "</p>",
        '<div class="cards">',
    ]
    for status in STATUS_ORDER:
        parts.append(f'<div class="card" style="background:{STATUS_COLOURS[status]}"><b>{counts[status]}</b>'
                     f"{html.escape(status)}</div>")
    parts.append("</div>")
    parts.append("<h2>Stale images</h2>")
    if stale:
        worst = max((r for r in stale if r.get("lag_days") is not None), key=lambda r: r["lag_days"],
                    default=None)
        if worst is not None:
            name = html.escape(_short_image(worst.get("image")))
            parts.append(f"<p>{len(stale)} of {len(rows)} images run behind the newest version of their "
                         f"track; the worst, <code>{name}</code>, by {float(worst['lag_days']):.1f} days."
                         "</p>")
        parts.append(_table_html(stale, max_lag))
    else:
        parts.append('<p class="ok">No deployed image is behind the newest version of its track.</p>')
    plots: list[tuple[str, str, bytes]] = context["plots"]
    for section, caption, png in plots:
        if section == "fleet":
            parts.append(f"<figure>{_img(png, caption)}<figcaption>{html.escape(caption)}: bars are days "
                         "behind the newest version of the same track; colour is the status."
                         "</figcaption></figure>")
    parts.append("<h2>All deployed images</h2>")
    parts.append(_table_html(rows, max_lag))
    parts.append("<h2>Errors</h2>")
    errors: list[tuple[str, str]] = context["errors"]
    if errors:
        parts.append('<ul class="errors">')
        for what, why in errors:
            parts.append(f"<li><code>{html.escape(what)}</code>: {html.escape(why)}</li>")
        parts.append("</ul>")
    else:
        parts.append('<p class="ok">None.</p>')
    repo_plots = [p for p in plots if p[0] != "fleet"]
    stale_repos = {f"{r.get('registry')}/{r.get('repository')}" for r in stale}
    if repo_plots:
        parts.append("<h2>Repositories</h2>")
        parts.append("<p>When each tag's image was built, and its size per version "
                     f"({html.escape(context['platform'])}); stale repositories open.</p>")
        current = None
        for section, caption, png in repo_plots:
            if section != current:
                if current is not None:
                    parts.append("</details>")
                # Open where something is stale: that is what a reader came for.
                opened = " open" if section in stale_repos else ""
                parts.append(f"<details{opened}><summary>{html.escape(section)}</summary>")
                current = section
            parts.append(f"<figure>{_img(png, caption)}<figcaption>{html.escape(caption)}</figcaption>"
                         "</figure>")
        if current is not None:
            parts.append("</details>")
    parts.append("<h2>Requests and cache</h2>")
    parts.append('<dl class="figures">')
    for name, value in context["requests"]:
        parts.append(f"<dt>{html.escape(name)}</dt><dd>{html.escape(value)}</dd>")
    parts.append("</dl></body></html>")
    return "\n".join(parts) + "\n"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table_md(rows: list[dict[str, Any]]) -> str:
    align = ("---:" if c in ("lag_days", "newer_versions") else "---" for c, _ in _COLUMNS)
    lines = ["| " + " | ".join(label for _, label in _COLUMNS) + " |", "|" + "|".join(align) + "|"]
    for row in rows:
        cells = []
        for column, _ in _COLUMNS:
            text = _cell(row.get(column))
            if column == "status":
                text = f"**{text}**" if text == "behind" else text
            elif column == "image":
                text = f"`{_short_image(text)}`" if text else ""
            elif column in ("deployed_created", "candidate_created"):
                text = text[:10]
            cells.append(_md_escape(text))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _markdown(context: Mapping[str, Any], target: Path) -> str:
    counts: Mapping[str, int] = context["counts"]
    rows: list[dict[str, Any]] = context["rows"]
    stale = [r for r in rows if r.get("status") == "behind"]
    files = target.with_name(target.stem + "_files")
    files.mkdir(exist_ok=True)
    out = [f"# {context['title']}", "",
           f"{_summary_line(counts, len(rows))}. Judged on {context['platform']} images by their "
           f"created time; generated {context['generated']}.", ""]
    out += ["## Stale images", ""]
    out += [_table_md(stale) if stale else "No deployed image is behind the newest version of its track.", ""]
    plots: list[tuple[str, str, bytes]] = context["plots"]
    for n, (section, caption, png) in enumerate(plots):
        name = f"plot-{n:02d}.png"
        (files / name).write_bytes(png)
        link = f"{files.name}/{name}"
        if section == "fleet":
            out += [f"![{caption}]({link})", ""]
    out += ["## All deployed images", "", _table_md(rows), "", "## Errors", ""]
    errors: list[tuple[str, str]] = context["errors"]
    out += [f"- `{what}`: {_md_escape(why)}" for what, why in errors] if errors else ["None."]
    out.append("")
    repo_plots = [(n, p) for n, p in enumerate(plots) if p[0] != "fleet"]
    if repo_plots:
        out += ["## Repositories", ""]
        for n, (_, caption, _) in repo_plots:
            out += [f"![{caption}]({files.name}/plot-{n:02d}.png)", ""]
    out += ["## Requests and cache", ""]
    out += [f"- {name}: {value}" for name, value in context["requests"]]
    out.append("")
    return "\n".join(out)

