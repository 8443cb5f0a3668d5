"""What the report shows, computed once for both formats: counts, rows, request figures, plots as PNG."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from regdata.analysis.fleet import STATUS_ORDER
from regdata.oci.reference import short_name

if TYPE_CHECKING:
    from matplotlib.axes import Axes


__all__ = ["request_figures"]


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
        figures.update(
            hits=cache.hits, misses=cache.misses, cache_errors=cache.errors, backend=repr(cache.backend)
        )
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


def _plots(
    freshness: pd.DataFrame,
    images: pd.DataFrame,
    platform: str,
    repositories: Literal["stale", "all", "none"],
) -> list[tuple[str, str, bytes]]:
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
        out.append((key, f"{name}: created time per tag", _png(plots.tag_timeline(part, platform=platform))))
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
    ("status", "status"),
    ("image", "image"),
    ("where", "where"),
    ("deployed", "deployed"),
    ("deployed_created", "built"),
    ("candidate", "newest in track"),
    ("candidate_created", "built"),
    ("lag_days", "lag (days)"),
    ("newer_versions", "newer"),
    ("reason", "why"),
)


def _rows(freshness: pd.DataFrame) -> list[dict[Any, Any]]:
    records = freshness.astype(object).where(freshness.notna(), None).to_dict("records")
    out = []
    for row in records:
        deployed = _cell(row.get("deployed_tag")) or _cell(row.get("tag"))
        out.append(
            {**row, "where": _where(row), "deployed": deployed, "candidate": _cell(row.get("candidate_tag"))}
        )
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
        lines.append(
            (
                "cache",
                f"{figures['backend']}: {figures['hits']:,} hits, {figures['misses']:,} misses"
                + (f", {figures['cache_errors']} backend errors" if figures["cache_errors"] else ""),
            )
        )
    for key, value in (run or {}).items():
        lines.append((str(key), _cell(value)))
    return lines


def _error_items(
    freshness: pd.DataFrame, errors: Mapping[str, str] | None, images: pd.DataFrame
) -> list[tuple[str, str]]:
    items: list[tuple[str, str]] = []
    bad = freshness.loc[freshness["status"].astype("string").isin(["error", "unknown"])]
    for row in bad.astype(object).where(bad.notna(), None).to_dict("records"):
        what = _cell(row.get("image")) or _cell(row.get("source"))
        items.append(
            (f"{what} ({row['status']}, {_where(row) or _cell(row.get('source'))})", _cell(row.get("reason")))
        )
    for key, message in (errors or {}).items():
        if not any(message == text for _, text in items):
            items.append((key, message))
    if len(images) and "error" in images:
        failed = images.loc[images["error"].notna()]
        for row in failed.head(50).to_dict("records"):
            items.append(
                (
                    f"{row['registry']}/{row['repository']}:{row['tag']}"
                    + (f" ({row['platform']})" if not pd.isna(row.get("platform")) else ""),
                    str(row["error"]),
                )
            )
        if len(failed) > 50:
            items.append(("…", f"{len(failed) - 50} more image rows with an error"))
    return items
