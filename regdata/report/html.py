"""The report as one self-contained HTML file: inline styles, plots as data: URIs."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

from regdata.analysis.fleet import STATUS_COLOURS, STATUS_ORDER
from regdata.report.figures import _COLUMNS, _cell, _short_image, _summary_line

__all__ = []


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
                    bar = (
                        f'<span class="bar" style="width:{width}px"></span>'
                        if row["status"] == "behind"
                        else ""
                    )
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
                cells.append(
                    f'<td class="date" title="{html.escape(stamp)} UTC">{html.escape(stamp[:10])}</td>'
                )
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
    lags = [
        float(r["lag_days"]) for r in rows if r.get("lag_days") is not None and not pd.isna(r["lag_days"])
    ]
    max_lag = max(lags, default=0.0)
    stale = [r for r in rows if r.get("status") == "behind"]
    title = html.escape(context["title"])
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}</title><style>{_CSS}</style></head><body>",
        f"<h1>{title}</h1>",
        f'<p class="meta">{html.escape(_summary_line(counts, len(rows)))} · judged on '
        f"{html.escape(context['platform'])} images by their created time · generated "
        f"{html.escape(context['generated'])}"
        + (f" · from {html.escape(', '.join(context['sources']))}" if context["sources"] else "")
        + "</p>",
        '<div class="cards">',
    ]
    for status in STATUS_ORDER:
        parts.append(
            f'<div class="card" style="background:{STATUS_COLOURS[status]}"><b>{counts[status]}</b>'
            f"{html.escape(status)}</div>"
        )
    parts.append("</div>")
    parts.append("<h2>Stale images</h2>")
    if stale:
        worst = max(
            (r for r in stale if r.get("lag_days") is not None), key=lambda r: r["lag_days"], default=None
        )
        if worst is not None:
            name = html.escape(_short_image(worst.get("image")))
            parts.append(
                f"<p>{len(stale)} of {len(rows)} images run behind the newest version of their "
                f"track; the worst, <code>{name}</code>, by {float(worst['lag_days']):.1f} days."
                "</p>"
            )
        parts.append(_table_html(stale, max_lag))
    else:
        parts.append('<p class="ok">No deployed image is behind the newest version of its track.</p>')
    plots: list[tuple[str, str, bytes]] = context["plots"]
    for section, caption, png in plots:
        if section == "fleet":
            parts.append(
                f"<figure>{_img(png, caption)}<figcaption>{html.escape(caption)}: bars are days "
                "behind the newest version of the same track; colour is the status."
                "</figcaption></figure>"
            )
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
        parts.append(
            "<p>When each tag's image was built, and its size per version "
            f"({html.escape(context['platform'])}); stale repositories open.</p>"
        )
        current = None
        for section, caption, png in repo_plots:
            if section != current:
                if current is not None:
                    parts.append("</details>")
                # Open where something is stale: that is what a reader came for.
                opened = " open" if section in stale_repos else ""
                parts.append(f"<details{opened}><summary>{html.escape(section)}</summary>")
                current = section
            parts.append(
                f"<figure>{_img(png, caption)}<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
        if current is not None:
            parts.append("</details>")
    parts.append("<h2>Requests and cache</h2>")
    parts.append('<dl class="figures">')
    for name, value in context["requests"]:
        parts.append(f"<dt>{html.escape(name)}</dt><dd>{html.escape(value)}</dd>")
    parts.append("</dl></body></html>")
    return "\n".join(parts) + "\n"
