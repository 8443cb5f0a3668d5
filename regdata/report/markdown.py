"""The report as Markdown, its plots as PNG files beside it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from regdata.report.figures import _COLUMNS, _cell, _short_image, _summary_line

__all__ = []


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
    out = [
        f"# {context['title']}",
        "",
        f"{_summary_line(counts, len(rows))}. Judged on {context['platform']} images by their "
        f"created time; generated {context['generated']}.",
        "",
    ]
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
