"""One measured run of a contender, and the median of several.

A run's figures: wall seconds, the requests the registry saw (its access
log), CPU seconds of each process involved (the bench process, its children
such as skopeo, the registry, the latency proxy), and what was read.  On a
two-core machine the CPU split says who the bottleneck was.
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .accesslog import AccessLog, Counts
from .outcome import Outcome

__all__ = ["Result", "Sample", "measure", "process_cpu"]

_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int | None) -> float:
    """User + system CPU seconds of a live process (0 when there is none)."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def _own_cpu() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


@dataclass
class Sample:
    """One run."""

    seconds: float
    requests: Counts
    cpu: dict[str, float]
    outcome: Outcome
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Result:
    """The runs of one contender on one network."""

    network: str
    contender: str
    samples: list[Sample] = field(default_factory=list)
    skipped: str | None = None
    agrees: bool | None = None
    disagreement: str = ""

    @property
    def median(self) -> float | None:
        """Median seconds, None when it did not run."""
        return statistics.median(s.seconds for s in self.samples) if self.samples else None

    def median_sample(self) -> Sample | None:
        """The run whose time is the median (the lower middle for an even count)."""
        if not self.samples:
            return None
        ordered = sorted(self.samples, key=lambda s: s.seconds)
        return ordered[(len(ordered) - 1) // 2]

    def as_dict(self) -> dict[str, Any]:
        """For the JSON report."""
        middle = self.median_sample()
        return {
            "network": self.network,
            "contender": self.contender,
            "skipped": self.skipped,
            "runs": len(self.samples),
            "seconds": [round(s.seconds, 4) for s in self.samples],
            "median_s": None if self.median is None else round(self.median, 4),
            "requests": None if middle is None else middle.requests.total,
            "requests_by_kind": None if middle is None else middle.requests.by_kind,
            "error_answers": None if middle is None else middle.requests.errors,
            "cpu_s": None if middle is None else {k: round(v, 3) for k, v in middle.cpu.items()},
            "read": None if middle is None else middle.outcome.summary(),
            "agrees_with_regdata": self.agrees,
            "disagreement": self.disagreement or None,
            "extra": None if middle is None else middle.extra or None,
        }


def measure(
    run: Callable[[], tuple[Outcome, dict[str, Any]]],
    log: AccessLog,
    pids: dict[str, int | None],
) -> Sample:
    """Time ``run`` (returning what it read and extra figures) and count what it cost."""
    mark = log.mark()
    others = {name: process_cpu(pid) for name, pid in pids.items()}
    own, kids = _own_cpu()
    started = time.perf_counter()
    outcome, extra = run()
    seconds = extra.pop("seconds", None) or time.perf_counter() - started
    own_after, kids_after = _own_cpu()
    cpu = {"client": own_after - own, "children": kids_after - kids}
    cpu.update({name: process_cpu(pid) - others[name] for name, pid in pids.items()})
    return Sample(seconds=seconds, requests=log.since(mark), cpu=cpu, outcome=outcome, extra=extra)
