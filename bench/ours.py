"""regdata's runs: cold at default settings, and warm against a cache.

Only ``Registry(...)`` and ``get_repository`` are timed; reading the request
log afterwards is not.  What regdata says it did (its request log) is kept
beside what the registry saw (the access log, counted by the caller), and
the two must agree.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .outcome import Outcome

__all__ = ["ScanRun", "max_in_flight", "regdata_scan"]


@dataclass
class ScanRun:
    """One timed ``get_repository``: its outcome, seconds, and regdata's own account."""

    outcome: Outcome
    seconds: float
    logged: dict[str, int]  # HTTP requests regdata logged, by kind (cache hits apart)
    cache_hits: int
    max_in_flight: int
    limiter: dict[str, Any] = field(default_factory=dict)
    peak_rss_mb: float = 0.0  # of the whole process, as get_repository returned


def peak_rss_mb() -> float:
    """Peak RSS of this process so far (VmHWM: not ``ru_maxrss``, which Linux carries across exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)  # kB
    return 0.0


def outcome_of(frame: pd.DataFrame, tags: int) -> Outcome:
    """The rows and tops of an images frame."""
    ok = frame[frame["error"].isna()]
    rows = [(str(t), str(c)) for t, c in zip(ok["tag"], ok["config_digest"], strict=True) if pd.notna(c)]
    tops = {str(t): str(d) for t, d in zip(frame["tag"], frame["digest"], strict=True) if pd.notna(d)}
    errors = {str(t): str(e) for t, e in zip(frame["tag"], frame["error"], strict=True) if pd.notna(e)}
    return Outcome(rows=rows, tops=tops, errors=errors, tags=tags)


def max_in_flight(requests: pd.DataFrame) -> int:
    """The most HTTP requests in flight at once, from the log's start times and durations."""
    if requests.empty:
        return 0
    start = requests["started"].astype("int64").to_numpy() / 1e9
    end = start + requests["duration_s"].to_numpy()
    events = sorted([(s, 1) for s in start] + [(e, -1) for e in end])
    best = current = 0
    for _, step in events:
        current += step
        best = max(best, current)
    return best


def _limiter(reg: Any) -> dict[str, Any]:
    """What the per-host limiter decided, when this regdata has one."""
    try:
        events = reg.limiter_log
    except AttributeError:
        return {}
    if events is None or events.empty:
        return {"events": 0}
    counts = events["event"].value_counts().to_dict()
    return {
        "events": len(events),
        "by_event": {str(k): int(v) for k, v in counts.items()},
        "start": int(events["concurrency"].iloc[0]),
        "max": int(events["concurrency"].max()),
        "last": int(events["concurrency"].iloc[-1]),
    }


def regdata_scan(
    host: str, repo: str, *, cache: Any = None, reg: Any = None, **options: Any
) -> tuple[ScanRun, Any]:
    """``get_repository`` of ``host``/``repo``; pass ``reg`` to scan again with the same Registry.

    Returns the run and the Registry (closed by the caller).
    """
    import regdata

    before = 0 if reg is None else len(reg.requests)
    started = time.perf_counter()
    if reg is None:
        reg = regdata.Registry(cache=cache, **options)
    frame = reg.get_repository(f"{host}/{repo}")
    seconds = time.perf_counter() - started
    peak = peak_rss_mb()
    requests = reg.requests.iloc[before:]
    http = requests[requests["cache"] != "hit"]
    logged = {str(k): int(v) for k, v in http["kind"].value_counts().items() if v}
    tags = int(frame["tag"].nunique())
    run = ScanRun(
        outcome=outcome_of(frame, tags),
        seconds=seconds,
        logged=dict(sorted(logged.items())),
        cache_hits=int((requests["cache"] == "hit").sum()),
        max_in_flight=max_in_flight(http),
        limiter=_limiter(reg),
        peak_rss_mb=peak,
    )
    return run, reg
