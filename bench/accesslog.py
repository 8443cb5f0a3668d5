"""Counting what a contender asked of the registry, from the registry's own access log.

Every contender is counted the same way, whatever its language or process
(skopeo included), and nothing is added on its path: the registry writes one
Apache-style line per request, and the lines between two marks are the run's.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ACCESS_LOG_CONFIG", "AccessLog", "Counts", "kind_of"]

# start_registry(extra_config=...) turns the access log on.
ACCESS_LOG_CONFIG = {"log": {"accesslog": {"disabled": False}}}

_LINE = re.compile(rb'"(GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP/[0-9.]+" (\d{3}) ')
_V2 = re.compile(r"^/v2/(?:(?P<name>.+)/(?P<what>tags/list|manifests/|blobs/))?")


def kind_of(method: str, path: str) -> str:
    """The request kind, in the words of regdata's request log."""
    match = _V2.match(path.split("?", 1)[0])
    if match is None:
        return "other"
    what = match.group("what")
    if what is None:
        return "ping" if path.split("?", 1)[0] == "/v2/" else "other"
    if what == "tags/list":
        return "tags"
    if what == "blobs/":
        return "blob"
    return "manifest_head" if method == "HEAD" else "manifest"


@dataclass(frozen=True)
class Counts:
    """Requests by kind, and how many answers were errors (status >= 400)."""

    by_kind: dict[str, int]
    errors: int

    @property
    def total(self) -> int:
        """Every request."""
        return sum(self.by_kind.values())

    @property
    def manifest_gets(self) -> int:
        """Manifest GETs (not HEADs)."""
        return self.by_kind.get("manifest", 0)


class AccessLog:
    """Reads a registry log from a mark: ``mark()`` before a run, ``since(mark)`` after."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> int:
        """The current end of the log."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def since(self, mark: int, settle: float = 2.0) -> Counts:
        """The requests logged after ``mark``.

        The registry writes a line once it has answered, so the last line may
        trail the client's last read by a moment: read until two reads, 30 ms
        apart, agree (at most ``settle`` seconds).
        """
        deadline = time.monotonic() + settle
        last = -1
        while True:
            size = self.mark()
            if size == last or time.monotonic() > deadline:
                break
            last = size
            time.sleep(0.03)
        with self.path.open("rb") as f:
            f.seek(mark)
            data = f.read()
        kinds: Counter[str] = Counter()
        errors = 0
        for line in data.splitlines():
            match = _LINE.search(line)
            if match is None:
                continue
            method, path, status = match.group(1).decode(), match.group(2).decode(), int(match.group(3))
            kinds[kind_of(method, path)] += 1
            errors += status >= 400
        return Counts(dict(sorted(kinds.items())), errors)
