"""The targets, and the printed table.

Targets are shown, never asserted: a benchmark that fails a build on a slow
machine teaches people to ignore it.  Each target says its value, its limit
and met / missed (or not measured).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from .measure import Result

__all__ = ["Target", "figures_markdown", "format_table", "format_targets", "markdown_table"]

NETWORK_LABEL = {"loopback": "loopback", "wan": "+{delay_ms} ms"}


@dataclass(frozen=True)
class Target:
    """One target of the issue."""

    name: str
    value: float | None
    limit: float
    op: str  # "<=" or ">="
    unit: str = ""
    note: str = ""

    @property
    def met(self) -> bool | None:
        """True, False, or None when it was not measured."""
        if self.value is None:
            return None
        return self.value <= self.limit if self.op == "<=" else self.value >= self.limit

    def as_dict(self) -> dict[str, Any]:
        """For the JSON report."""
        return {**asdict(self), "met": self.met}

    def line(self) -> str:
        """One line of the printed target list."""
        state = {True: "met", False: "MISSED", None: "not measured"}[self.met]
        value = "-" if self.value is None else _num(self.value)
        note = f"  ({self.note})" if self.note else ""
        return f"  [{state:>12}] {self.name}: {value}{self.unit} (target {self.op} {_num(self.limit)}{self.unit}){note}"


def _num(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 0.01:
        return f"{value:.2f}"
    return f"{value:.4f}"


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _kinds(by_kind: dict[str, int] | None) -> str:
    if not by_kind:
        return "-"
    short = {"manifest": "man", "manifest_head": "head", "blob": "blob", "tags": "tags", "ping": "ping"}
    return " ".join(f"{short.get(k, k)}:{v}" for k, v in by_kind.items())


def _rows(
    results: Iterable[Result], floor_of: Callable[[str], float | None], delay_ms: int
) -> list[list[str]]:
    rows = []
    for r in results:
        label = (
            NETWORK_LABEL[r.network].format(delay_ms=delay_ms) if r.network in NETWORK_LABEL else r.network
        )
        if r.skipped:
            rows.append([label, r.contender, "-", "-", "-", "-", "-", "-", "-", f"skipped: {r.skipped}"])
            continue
        middle = r.median_sample()
        assert middle is not None
        floor = floor_of(r.network)
        ratio = None if floor is None or r.median is None else r.median / floor
        cpu = middle.cpu.get("client", 0.0) + middle.cpu.get("children", 0.0)
        agree = {True: "yes", False: f"NO: {r.disagreement}", None: "-"}[r.agrees]
        rows.append(
            [
                label,
                r.contender,
                str(len(r.samples)),
                _fmt(r.median),
                _fmt(min(s.seconds for s in r.samples)),
                str(middle.requests.total),
                _kinds(middle.requests.by_kind),
                _fmt(cpu),
                _fmt(ratio),
                agree,
            ]
        )
    return rows


HEADER = [
    "network",
    "contender",
    "runs",
    "median s",
    "min s",
    "requests",
    "by kind",
    "client CPU s",
    "x floor",
    "same rows",
]


def format_table(results: list[Result], floor_of: Callable[[str], float | None], delay_ms: int) -> str:
    """The cold runs, aligned for a terminal."""
    rows = [HEADER, *_rows(results, floor_of, delay_ms)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER) - 1)]
    lines = []
    for row in rows:
        cells = [
            cell.ljust(width) if i < 2 or i == 6 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=False))
        ]
        lines.append("  ".join(cells) + "  " + row[-1])
    return "\n".join(lines)


def markdown_table(results: list[Result], floor_of: Callable[[str], float | None], delay_ms: int) -> str:
    """The cold runs as a Markdown table (for bench/README.md)."""
    rows = _rows(results, floor_of, delay_ms)
    out = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)


def format_targets(targets: list[Target]) -> str:
    """One line per target."""
    return "\n".join(t.line() for t in targets)


def figures_markdown(report: dict[str, Any]) -> str:
    """The README's block of latest figures, from a JSON report (``python -m bench.report FILE``)."""
    meta, data = report["meta"], report["dataset"]
    peers = ", ".join(f"{k} {v}" for k, v in meta["peers"].items() if v)
    registry = meta["registry"].split()[-1] if meta.get("registry") else "?"
    ms = round(meta["config"]["delay"] * 1000)
    out = [
        f"`{meta['command']}` on {meta['date'][:10]}, commit {meta['commit']}"
        + (" (with uncommitted changes)" if meta.get("work_tree_changed") else "")
        + f"; {meta['cpus']} CPUs shared with other work (load average {meta['load_average_at_start'][0]}"
        f" at the start, {meta.get('load_average_at_end', ['?'])[0]} at the end); Distribution {registry};"
        f" {peers}. {data['tags']} tags ({data['ci_tags']} CI, {data['hub_tags']} Docker Hub,"
        f" {data['distinct_top_manifests']} distinct top manifests, {data['indexes']} indexes).",
        "",
        report["markdown"],
        "",
        "| warm scan (regdata) | network | median s | requests | the cold scan that filled the cache |",
        "|---|---|---|---|---|",
    ]
    for w in report["warm"]:
        warm, cold = w["warm"], w["cold"]
        label = NETWORK_LABEL[w["network"]].format(delay_ms=ms)
        out.append(
            f"| {w['name'].replace('_', ' ')} | {label} | {_fmt(warm['median_s'], 3)} | "
            f"{warm['requests']}{' (' + _kinds(warm['requests_by_kind']) + ')' if warm['requests'] else ''} | "
            f"{_fmt(cold['median_s'])} s, {cold['requests']} requests |"
        )
    if report.get("scale"):
        out += [
            "",
            "| scale (loopback) | regdata s | regdata ms/tag | peak RSS MB | floor s | floor ms/tag |",
            "|---|---|---|---|---|---|",
        ]
        for size, by in report["scale"].items():
            out.append(
                f"| {size} tags | {_fmt(by['regdata']['median_s'])} | "
                f"{_fmt((by['regdata_s_per_tag'] or 0) * 1000, 3)} | {by['regdata_peak_rss_mb']} | "
                f"{_fmt(by['floor']['median_s'])} | {_fmt((by['floor_s_per_tag'] or 0) * 1000, 3)} |"
            )
    out += ["", "Targets:", ""]
    for t in report["targets"]:
        state = {True: "met", False: "**missed**", None: "not measured"}[t["met"]]
        value = "-" if t["value"] is None else _num(t["value"])
        note = f" ({t['note']})" if t.get("note") else ""
        out.append(
            f"- {state}: {t['name']}: {value}{t['unit']} (target {t['op']} {_num(t['limit'])}{t['unit']}){note}"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    """Print the figures block of a JSON report."""
    import json
    import sys

    args = sys.argv[1:] if argv is None else argv
    path = args[0] if args else "bench/results/latest.json"
    with open(path) as f:
        print(figures_markdown(json.load(f)))


if __name__ == "__main__":
    main()
