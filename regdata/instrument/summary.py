"""Where the time went: the request log summed by host and kind, and drawn as a timeline.

::

    reg.summary()                       # requests, retries, errors, time and bytes by host and kind
    reg.summary(seed=True)              # by Flux v1's kinds: tags and metadata (and other)
    plot_timeline(reg.requests, limiter=reg.limiter_log)   # one bar per request, in lanes

Both take the frame of ``reg.requests``, so they work as well on a log saved
to Parquet and read back.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from regdata.frames import REQUEST_KINDS, SUMMARY, make_frame
from regdata.instrument.requestlog import KIND_METADATA, KIND_TAGS, seed_kind

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["SEED_KINDS", "SUMMARY", "plot_timeline", "summarize"]

# Flux v1's request kinds, plus one for what it did not count (tokens, pings, catalog).
SEED_KINDS = (KIND_TAGS, KIND_METADATA, "other")


def summarize(requests: pd.DataFrame, seed: bool = False) -> pd.DataFrame:
    """Sum a request log by host and kind, with fixed columns (:data:`SUMMARY`), also when empty.

    ``seed`` groups by Flux v1's kinds (``tags``; ``metadata`` for manifests,
    their HEADs and config blobs; ``other``) instead of regdata's own.
    """
    categories = SEED_KINDS if seed else REQUEST_KINDS
    log = requests.copy()
    kinds = log["kind"].astype(object)
    log["group_kind"] = kinds.map(lambda k: seed_kind(k) or "other") if seed else kinds
    http = log["cache"].astype(object) != "hit"
    started = (log["started"].astype("int64") / 1e9).astype(float) if len(log) else log["duration_s"]
    log["start_s"] = started
    log["end_s"] = started + log["duration_s"].astype(float)
    log["is_http"] = http.astype(int)
    log["is_retry"] = (http & (log["attempt"].fillna(0) > 1)).astype(int)
    log["is_error"] = (http & log["error"].notna()).astype(int)
    log["is_hit"] = (~http).astype(int)
    log["http_time"] = log["duration_s"].where(http, 0.0)
    log["http_bytes"] = log["bytes"].astype("Float64").where(http, 0).fillna(0)
    rows: list[dict[str, Any]] = []
    for (host, kind), group in log.groupby(["host", "group_kind"], sort=True, observed=True):
        sent = int(group["is_http"].sum())
        time_s = float(group["http_time"].sum())
        rows.append(
            {
                "host": host,
                "kind": kind,
                "requests": sent,
                "retries": int(group["is_retry"].sum()),
                "errors": int(group["is_error"].sum()),
                "cache_hits": int(group["is_hit"].sum()),
                "time_s": time_s,
                "mean_s": time_s / sent if sent else np.nan,
                "wall_s": float(group["end_s"].max() - group["start_s"].min()),
                "bytes": int(group["http_bytes"].sum()),
            }
        )
    return _frame(rows, categories)


def _frame(rows: list[dict[str, Any]], categories: tuple[str, ...]) -> pd.DataFrame:
    frame = make_frame(rows, SUMMARY, {"kind": categories})
    if rows:
        frame = frame.sort_values(["host", "kind"], kind="stable").reset_index(drop=True)
    return frame


def plot_timeline(
    requests: pd.DataFrame,
    ax: Axes | None = None,
    host: str | None = None,
    limiter: pd.DataFrame | None = None,
) -> Axes:
    """Draw each HTTP request as a bar from its start to its end; return the axes.

    Bars are stacked in lanes, a request taking the lowest lane free when it
    started, so the height of the stack is the number in flight.  Colour is
    the kind; retries (attempt > 1) are hatched and failures edged in red.
    With ``limiter`` (``reg.limiter_log``), each host's concurrency limit is
    drawn as a step line over the lanes, so the limiter's growth and cuts
    show against the requests they let through.  ``host`` keeps one host only.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    if ax is None:
        _, ax = plt.subplots(figsize=(10, 4.5), layout="constrained")
    log = requests[requests["cache"].astype(object) != "hit"]
    if host is not None:
        log = log[log["host"] == host]
    ax.set_xlabel("seconds since the first request")
    ax.set_ylabel("requests in flight")
    if log.empty:
        ax.set_title("no HTTP requests")
        return ax
    log = log.sort_values("started", kind="stable")
    t0 = log["started"].min()
    start = ((log["started"] - t0).dt.total_seconds()).to_numpy(dtype=float)
    width = np.maximum(log["duration_s"].to_numpy(dtype=float), 1e-4)
    lanes = _lanes(start, start + width)
    kinds = log["kind"].astype(object).to_numpy()
    palette = plt.get_cmap("tab10")
    colour = {kind: palette(i % 10) for i, kind in enumerate(REQUEST_KINDS)}
    retry = (log["attempt"].fillna(1) > 1).to_numpy(dtype=bool)
    failed = log["error"].notna().to_numpy(dtype=bool)
    ax.barh(
        lanes,
        width,
        left=start,
        height=0.8,
        color=[colour.get(k, "grey") for k in kinds],
        edgecolor=["#d62728" if f else "none" for f in failed],
        linewidth=0.6,
    )
    if retry.any():
        ax.barh(
            lanes[retry],
            width[retry],
            left=start[retry],
            height=0.8,
            fill=False,
            hatch="////",
            edgecolor="black",
            linewidth=0,
        )
    handles: list[Any] = [Patch(color=colour[k], label=k) for k in REQUEST_KINDS if k in set(kinds)]
    if retry.any():
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="////", label="retry"))
    if failed.any():
        handles.append(Patch(facecolor="white", edgecolor="#d62728", linewidth=1.5, label="failed"))
    top = float(lanes.max()) + 1.0
    if limiter is not None and not limiter.empty:
        end = float((start + width).max())
        hosts = set(log["host"].astype(object))
        for name, group in limiter[limiter["host"].isin(hosts)].groupby("host", sort=True):
            group = group.sort_values("at", kind="stable")
            x = np.append((group["at"] - t0).dt.total_seconds().to_numpy(dtype=float), end)
            y = group["concurrency"].to_numpy(dtype=float)
            y = np.append(y, y[-1]) - 0.5  # lanes are centred on integers: the limit is their top
            (line,) = ax.step(np.maximum(x, 0.0), y, where="post", color="black", linewidth=1.2)
            line.set_label(f"concurrency limit ({name})")
            handles.append(line)
            top = max(top, float(y.max()) + 1.0)
    ax.set_ylim(-0.8, max(top, 1.0))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # lanes are whole requests in flight
    # Outside the bars, to the right: over them it would hide the busiest moments.
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return ax


def _lanes(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """The lowest lane free at each start (inputs sorted by start): interval-graph colouring."""
    busy: list[tuple[float, int]] = []  # (end, lane) of the bars still running
    free: list[int] = []
    lanes = np.zeros(len(start), dtype=int)
    for i, (s, e) in enumerate(zip(start, end, strict=True)):
        while busy and busy[0][0] <= s:
            heapq.heappush(free, heapq.heappop(busy)[1])
        lane = heapq.heappop(free) if free else len(busy)
        lanes[i] = lane
        heapq.heappush(busy, (float(e), lane))
    return lanes
