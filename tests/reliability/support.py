"""What the reliability tests share: the tally, outcome judging, a raw-capable proxy, JSON mutation.

Outcomes, one per case tried:

* ``clear exception``: a :class:`regdata.RegdataError` with a message, nothing else;
* ``error row``: the scan returned, the failing rows say why in ``error``;
* ``handled``: the bad input was read correctly anyway (an ignored field,
  a token fetched again, a body right at the cap);
* ``clean``: a secret looked for and not found;
* ``crash``: any other exception out of the public API, or an ``error``
  cell naming an exception that is not a RegdataError (a bug caught by the
  scan's last resort), or a traceback in a message;
* ``rows lost``: a row of the scan missing, or a good row changed, by a
  fault that should have touched another row only;
* ``secret leaked``: a planted secret found where regdata writes;
* ``resource leaked``: threads, sockets or memory that repeated scans do not give back.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import http.client
import json
import math
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import pandas as pd

import regdata.errors
from regdata.errors import RegdataError
from tests.support.proxy import _HOP, Action, FaultProxy, Seen

CLEAR = "clear exception"
ROW = "error row"
HANDLED = "handled"
CLEAN = "clean"
CRASH = "crash"
LOST = "rows lost"
LEAKED = "secret leaked"
HELD = "resource leaked"
OUTCOMES = (CLEAR, ROW, HANDLED, CLEAN, CRASH, LOST, LEAKED, HELD)
PROBLEMS = frozenset({CRASH, LOST, LEAKED, HELD})

#: What each category counts, as the headline names it.
CATEGORIES = {
    "answer": "malformed answers",
    "config": "bad config files",
    "reference": "fuzzed references",
    "fault": "fault scenarios",
    "secret": "secret checks",
}


# --------------------------------------------------------------------------- the tally


@dataclass(frozen=True)
class Case:
    """One thing tried, and how it ended."""

    category: str
    group: str
    name: str
    outcome: str
    detail: str = ""


@dataclass
class Tally:
    """Every case the suite tried, thread-safe; printed and written by the conftest."""

    cases: list[Case] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, category: str, group: str, name: str, outcome: str, detail: str = "") -> Case:
        """Count one case."""
        assert category in CATEGORIES, category
        assert outcome in OUTCOMES, outcome
        case = Case(category, group, name, outcome, detail)
        with self._lock:
            self.cases.append(case)
        return case

    def batch(self, category: str, group: str) -> Batch:
        """A batch of cases of one group, that a test asserts clean at its end."""
        return Batch(self, category, group)

    def counts(self) -> dict[str, dict[str, int]]:
        """Outcomes by category."""
        out: dict[str, dict[str, int]] = {}
        with self._lock:
            for case in self.cases:
                by = out.setdefault(case.category, {})
                by[case.outcome] = by.get(case.outcome, 0) + 1
        return out

    def _total(self, outcome: str) -> int:
        with self._lock:
            return sum(1 for c in self.cases if c.outcome == outcome)

    def headline(self) -> str:
        """The line for the README."""
        with self._lock:
            sizes = {c: sum(1 for x in self.cases if x.category == c) for c in CATEGORIES}
        parts = [f"{sizes[c]:,} {label}" for c, label in CATEGORIES.items() if sizes[c]]
        parts += [
            f"{self._total(CRASH):,} crashes",
            f"{self._total(LOST):,} rows lost",
            f"{self._total(LEAKED):,} secrets leaked",
        ]
        if self._total(HELD):
            parts.append(f"{self._total(HELD):,} resource leaks")
        return ", ".join(parts)

    def report_lines(self) -> list[str]:
        """A breakdown by category and group, then every problem case."""
        lines = []
        with self._lock:
            cases = list(self.cases)
        for category, label in CATEGORIES.items():
            mine = [c for c in cases if c.category == category]
            if not mine:
                continue
            lines.append(f"{label}: {len(mine):,}  ({_outcomes(mine)})")
            groups: dict[str, list[Case]] = {}
            for case in mine:
                groups.setdefault(case.group, []).append(case)
            for group, members in sorted(groups.items()):
                lines.append(f"    {group}: {len(members):,}  ({_outcomes(members)})")
        problems = [c for c in cases if c.outcome in PROBLEMS]
        for case in problems[:50]:
            lines.append(f"PROBLEM {case.outcome}: [{case.group}] {case.name}: {case.detail[:300]}")
        return lines

    def figures(self) -> dict[str, Any]:
        """The counts as JSON, for the README."""
        with self._lock:
            cases = list(self.cases)
        groups: dict[str, dict[str, dict[str, int]]] = {}
        for case in cases:
            by = groups.setdefault(case.category, {}).setdefault(case.group, {})
            by[case.outcome] = by.get(case.outcome, 0) + 1
        return {
            "headline": self.headline(),
            "totals": {CATEGORIES[c]: sum(1 for x in cases if x.category == c) for c in CATEGORIES},
            "outcomes": self.counts(),
            "groups": groups,
            "crashes": self._total(CRASH),
            "rows_lost": self._total(LOST),
            "secrets_leaked": self._total(LEAKED),
            "resources_leaked": self._total(HELD),
        }


def _outcomes(cases: list[Case]) -> str:
    counts: dict[str, int] = {}
    for case in cases:
        counts[case.outcome] = counts.get(case.outcome, 0) + 1
    return ", ".join(f"{o} {counts[o]:,}" for o in OUTCOMES if o in counts)


@dataclass
class Batch:
    """The cases of one test: recorded in the tally, asserted free of problems at the end."""

    tally: Tally
    category: str
    group: str
    cases: list[Case] = field(default_factory=list)

    def record(self, name: str, outcome: str, detail: str = "", group: str | None = None) -> str:
        """Count a case; returns its outcome."""
        self.cases.append(self.tally.record(self.category, group or self.group, name, outcome, detail))
        return outcome

    def exception(self, name: str, exc: BaseException, group: str | None = None) -> str:
        """Count a case that ended in ``exc``."""
        outcome, detail = judge_exception(exc)
        return self.record(name, outcome, detail, group)

    def call(
        self,
        name: str,
        fn: Callable[[], Any],
        on_result: Callable[[Any], tuple[str, str]],
        group: str | None = None,
    ) -> str:
        """Run ``fn``; an exception is judged as such, a result by ``on_result``."""
        try:
            result = fn()
        except Exception as exc:
            return self.exception(name, exc, group)
        outcome, detail = on_result(result)
        return self.record(name, outcome, detail, group)

    @property
    def problems(self) -> list[Case]:
        """The cases that crashed, lost rows or leaked."""
        return [c for c in self.cases if c.outcome in PROBLEMS]

    def outcomes(self) -> dict[str, int]:
        """Outcome counts of this batch."""
        counts: dict[str, int] = {}
        for case in self.cases:
            counts[case.outcome] = counts.get(case.outcome, 0) + 1
        return counts

    def assert_clean(self) -> None:
        """Fail the test, listing every problem case."""
        problems = self.problems
        assert not problems, f"{len(problems)} of {len(self.cases)} cases failed:\n" + "\n".join(
            f"  {c.outcome}: {c.name}: {c.detail[:600]}" for c in problems[:40]
        )


# --------------------------------------------------------------------------- judging outcomes

#: Every exception class of regdata's one tree, by name (the ``error`` cells start with one).
ERROR_NAMES = frozenset(
    name
    for name, obj in vars(regdata.errors).items()
    if isinstance(obj, type) and issubclass(obj, RegdataError)
)
# Row texts the scan writes itself, without an exception type.
_ROW_PHRASES = ("cancelled", "timed out", "stopped: ", "index lists no manifests")


def clear_cell(text: str) -> bool:
    """Whether an ``error`` cell is a clear error: a RegdataError's, or one of the scan's own.

    Clear means printable too: a registry's text must not put escape codes
    in a terminal or a notebook by way of a message.
    """
    if "Traceback" in text or not text.strip() or not text.isprintable():
        return False
    return text.split(":", 1)[0] in ERROR_NAMES or text.startswith(_ROW_PHRASES)


def judge_exception(exc: BaseException) -> tuple[str, str]:
    """``clear exception`` for a RegdataError with a plain message, ``crash`` otherwise."""
    text = f"{type(exc).__name__}: {exc}"
    if (
        isinstance(exc, RegdataError)
        and "Traceback" not in str(exc)
        and str(exc).strip()
        and str(exc).isprintable()
    ):
        return CLEAR, text[:400]
    return CRASH, text[:400] + "\n" + "".join(traceback.format_exception(exc)[-6:])


def _plain(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame's rows as plain dicts, NA as None."""
    return [{k: _plain(v) for k, v in row.items()} for row in frame.astype(object).to_dict("records")]


def row_keys(frame: pd.DataFrame) -> list[tuple[Any, Any]]:
    """(tag, platform) of each row, sorted."""
    return sorted(((r["tag"], r["platform"]) for r in records(frame)), key=repr)


def duplicates(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    """(tag, platform, manifest digest) keys that more than one row has: a tag read twice."""
    keys = [(r["tag"], r["platform"], r["manifest_digest"]) for r in records(frame)]
    return sorted({k for k in keys if keys.count(k) > 1}, key=repr)


def bad_cells(frame: pd.DataFrame) -> list[str]:
    """``error`` cells that are not clear errors (a crash the scan caught)."""
    if "error" not in frame:
        return []
    return [str(e) for e in frame["error"].dropna() if not clear_cell(str(e))]


def _content(row: dict[str, Any]) -> dict[str, Any]:
    """A row without what a rewritten document changes anyway (its digests and sizes)."""
    return {k: v for k, v in row.items() if k not in ("digest", "manifest_digest", "config_digest", "size")}


def judge_scan(frame: pd.DataFrame, baseline: pd.DataFrame, victims: set[str]) -> tuple[str, str]:
    """A scan's outcome against its fault-free baseline, the fault aimed at ``victims`` (tags).

    Rows of other tags must be exactly the baseline's; the victims' rows must
    all be there, and either say what went wrong or be the baseline's rows.
    """
    bad = bad_cells(frame)
    if bad:
        return CRASH, f"error cell: {bad[0][:300]}"
    if duplicates(frame):
        return LOST, f"rows twice over: {duplicates(frame)[:3]}"
    got = records(frame)
    want = records(baseline)

    def of(rows: list[dict[str, Any]], tag: str) -> list[dict[str, Any]]:
        return sorted((r for r in rows if r["tag"] == tag), key=lambda r: repr(r["platform"]))

    for tag in sorted({r["tag"] for r in want} - victims):
        if of(got, tag) != of(want, tag):
            return LOST, f"tag {tag!r} changed: {of(got, tag)} != {of(want, tag)}"[:600]
    unknown = {r["tag"] for r in got} - {r["tag"] for r in want}
    if unknown:
        return LOST, f"rows of tags never pushed: {sorted(unknown)}"
    outcome, detail = HANDLED, ""
    for tag in sorted(victims):
        mine, base = of(got, tag), of(want, tag)
        if any(r["error"] for r in mine):
            outcome = ROW
        elif len(mine) != len(base):
            # Fewer rows and none saying why: a platform silently gone.
            return LOST, f"tag {tag!r}: {len(mine)} rows and no error, where {len(base)} were pushed"
        elif [_content(r) for r in mine] != [_content(r) for r in base]:
            # What the registry said instead, read as it said it (a config without an os, an artifact).
            detail = f"read differently: {[(r['platform'], r['kind']) for r in mine]}"[:300]
    return outcome, detail if outcome == HANDLED else ""


def judge_marked(frame: pd.DataFrame, baseline: pd.DataFrame) -> tuple[str, str]:
    """A scan under faults: every row of the baseline is there and right, or marked as failed.

    ``handled`` when every row is right, ``error row`` when some say what
    went wrong, ``rows lost`` for a row missing with nothing saying why or a
    row with no error that is not the baseline's.
    """
    bad = bad_cells(frame)
    if bad:
        return CRASH, f"error cell: {bad[0][:300]}"
    if duplicates(frame):
        return LOST, f"rows twice over: {duplicates(frame)[:3]}"
    got, want = records(frame), records(baseline)
    tags = {r["tag"] for r in want}
    strays = sorted({r["tag"] for r in got} - tags)
    if strays:
        return LOST, f"rows of tags never pushed: {strays}"
    marked = 0
    for tag in sorted(tags):
        mine = [r for r in got if r["tag"] == tag]
        base = [r for r in want if r["tag"] == tag]
        errors = [r for r in mine if r["error"]]
        marked += len(errors)
        for row in mine:
            if not row["error"] and row not in base:
                return LOST, f"a row with no error that is not the registry's: {row}"[:400]
        for row in base:
            covered = any(e["platform"] in (None, row["platform"]) for e in errors)
            if row not in mine and not covered:
                return LOST, f"tag {tag!r} platform {row['platform']!r}: missing, nothing says why"
    return (ROW, f"{marked} rows marked") if marked else (HANDLED, f"{len(got)} rows, all right")


# --------------------------------------------------------------------------- a proxy that can lie about lengths

#: Set in an Action's headers to send the body in a raw way (and not passed on).
RAW = "X-Reliability-Raw"


class RawProxy(FaultProxy):
    """The fault proxy, plus answers no well-behaved server sends, and kind to the port range.

    Each handler thread keeps one connection to the upstream registry and
    reuses it (the base proxy opens one per request: thousands of cases would
    leave tens of thousands of ports in TIME_WAIT, and other tests of the
    session would find their random ports taken).

    An action whose headers carry ``X-Reliability-Raw`` is sent:

    * ``chunked``: with ``Transfer-Encoding: chunked`` and no Content-Length;
    * ``truncate``: promising 1000 bytes more than it sends, then hanging up;
    * ``overlong``: promising half of what it sends (the rest is garbage on the connection);
    * ``trickle:<seconds>``: one byte at a time, ``seconds`` apart.
    """

    _upstream = threading.local()

    def _forward(self, h: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict[str, str], bytes]:
        headers = {k: v for k, v in h.headers.items() if k.lower() not in _HOP}
        headers["Host"] = self.upstream
        for attempt in (1, 2):
            conn = getattr(self._upstream, "conn", None)
            if conn is None or getattr(self._upstream, "proxy", None) is not self:
                host, port = self.upstream.rsplit(":", 1)
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                self._upstream.conn, self._upstream.proxy = conn, self
            try:
                conn.request(h.command, h.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                self._upstream.conn = None
                if attempt == 2:
                    raise
                continue  # a kept connection the upstream closed meanwhile: once more on a new one
            if resp.will_close:
                conn.close()
                self._upstream.conn = None
            return resp.status, {k: v for k, v in resp.getheaders() if k.lower() not in _HOP}, payload
        raise AssertionError("unreachable")

    @staticmethod
    def _answer(h: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes) -> None:
        mode = next((v for k, v in headers.items() if k.lower() == RAW.lower()), None)
        if mode is None:
            FaultProxy._answer(h, status, headers, body)
            return
        plain = {k: v for k, v in headers.items() if k.lower() not in (RAW.lower(), "content-length")}
        head = h.command == "HEAD"
        try:
            h.send_response(status)
            for key, value in plain.items():
                h.send_header(key, value)
            if mode == "chunked":
                h.send_header("Transfer-Encoding", "chunked")
                h.end_headers()
                if not head:
                    for i in range(0, len(body), 64 * 1024):
                        chunk = body[i : i + 64 * 1024]
                        h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    h.wfile.write(b"0\r\n\r\n")
            elif mode == "truncate":
                h.send_header("Content-Length", str(len(body) + 1000))
                h.end_headers()
                if not head:
                    h.wfile.write(body)
                _hang_up(h)
            elif mode == "overlong":
                h.send_header("Content-Length", str(len(body) // 2))
                h.end_headers()
                if not head:
                    h.wfile.write(body)
            elif mode.startswith("trickle:"):
                interval = float(mode.split(":", 1)[1])
                h.send_header("Content-Length", str(len(body)))
                h.end_headers()
                if not head:
                    for byte in body:
                        h.wfile.write(bytes([byte]))
                        time.sleep(interval)
            else:
                raise AssertionError(f"unknown raw mode {mode!r}")
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True


def _hang_up(h: BaseHTTPRequestHandler) -> None:
    h.close_connection = True
    with contextlib.suppress(OSError):
        h.connection.shutdown(socket.SHUT_RDWR)


def digest_of(body: bytes) -> str:
    """``sha256:<hex>`` of ``body``."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


@dataclass
class Served:
    """An answer the overlay gives for one path instead of the registry's."""

    body: bytes
    content_type: str | None = "application/json"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    digest_header: str | None = "auto"  # "auto": the body's own digest; None: no header

    def action(self) -> Action:
        headers = dict(self.headers)
        if self.content_type is not None:
            headers.setdefault("Content-Type", self.content_type)
        if self.digest_header == "auto":
            headers.setdefault("Docker-Content-Digest", digest_of(self.body))
        elif self.digest_header is not None:
            headers.setdefault("Docker-Content-Digest", self.digest_header)
        return Action(status=self.status, headers=headers, body=self.body)


class Overlay:
    """One fault for a proxy whose answers a test swaps case by case.

    ``served`` maps a request path (with or without its query) to an answer;
    ``extra`` faults are asked first.  Everything else passes through to the
    real registry.
    """

    def __init__(self) -> None:
        self.served: dict[str, Served] = {}
        self.extra: list[Callable[[Seen], Action | None]] = []
        self._lock = threading.Lock()

    def set(
        self,
        served: dict[str, Served] | None = None,
        extra: list[Callable[[Seen], Action | None]] | None = None,
    ) -> None:
        """Answer this way from now on (and only this way)."""
        with self._lock:
            self.served = dict(served or {})
            self.extra = list(extra or [])

    def clear(self) -> None:
        """Pass everything through."""
        self.set()

    @contextlib.contextmanager
    def serving(
        self, served: dict[str, Served], extra: list[Callable[[Seen], Action | None]] | None = None
    ) -> Iterator[None]:
        """Add answers (and faults) for the time of a block, beside those of other threads' cases.

        Cases running at once must use paths of their own (another repository).
        """
        extra = list(extra or [])
        with self._lock:
            self.served = {**self.served, **served}
            self.extra = self.extra + extra
        try:
            yield
        finally:
            with self._lock:
                self.served = {k: v for k, v in self.served.items() if k not in served}
                self.extra = [f for f in self.extra if not any(f is mine for mine in extra)]

    def __call__(self, seen: Seen) -> Action | None:
        with self._lock:
            served, extra = self.served, self.extra
        for fault in extra:
            action = fault(seen)
            if action is not None:
                return action
        answer = served.get(seen.path) or served.get(seen.path.split("?", 1)[0])
        return answer.action() if answer is not None else None


# --------------------------------------------------------------------------- JSON, wrongly typed

MISSING: Any = object()
_CANDIDATES: tuple[Any, ...] = (None, True, 0, 1.5, "", [], ["x"], {}, {"x": "y"})
# Wrong values of the right type, per JSON type: what a type check alone lets through.
_EDGES: dict[str, tuple[Any, ...]] = {
    "int": (-1, 2**64, 10**400),
    "str": ("\ud800", "a\x00\r\n\u202e"),
    "list": ([None],),
    "dict": ({"\ud800": 1},),
}


def json_type(value: Any) -> str:
    """The JSON type of a decoded value (int and float apart)."""
    if value is None:
        return "null"
    for kind, name in (
        (bool, "bool"),
        (int, "int"),
        (float, "float"),
        (str, "str"),
        (list, "list"),
        (dict, "dict"),
    ):
        if isinstance(value, kind):
            return name
    raise TypeError(type(value).__name__)


def json_paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a node under the root, parents first."""
    items: Any = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for key, value in items:
        path = (*prefix, key)
        yield path
        yield from json_paths(value, path)


def path_text(path: tuple[Any, ...]) -> str:
    """``config.layers[0].size``."""
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out


def wrong_values(original: Any, in_list: bool) -> list[Any]:
    """Values of another JSON type than ``original``, edge values of its own, and leaving it out."""
    kind = json_type(original)
    values = [v for v in _CANDIDATES if json_type(v) != kind]
    values += list(_EDGES.get(kind, ()))
    if not in_list:
        values.append(MISSING)
    return values


def mutated(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A deep copy of ``doc`` with ``path`` set to ``value`` (removed for MISSING)."""
    out = copy.deepcopy(doc)
    node = out
    for key in path[:-1]:
        node = node[key]
    if value is MISSING:
        del node[path[-1]]
    else:
        node[path[-1]] = copy.deepcopy(value)
    return out


def value_text(value: Any) -> str:
    """A short name for a wrong value."""
    if value is MISSING:
        return "<missing>"
    text = json.dumps(value)
    return text if len(text) <= 30 else text[:27] + "..."


def mutations(doc: Any) -> Iterator[tuple[str, tuple[Any, ...], Any]]:
    """(name, path, value) for every path of ``doc`` and every wrong value there.

    Inside a list only the first element is gone through field by field; the
    others are replaced whole (their fields are the first one's, again).
    """
    for path in json_paths(doc):
        if any(isinstance(k, int) and k > 0 for k in path[:-1]):
            continue
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        for value in wrong_values(parent[path[-1]], isinstance(parent, list)):
            yield f"{path_text(path)} = {value_text(value)}", path, value


def wrongly_typed(doc: Any) -> Iterator[tuple[str, Any]]:
    """(name, document) for every path of ``doc`` and every wrong value there."""
    for name, path, value in mutations(doc):
        yield name, mutated(doc, path, value)


def dumps(doc: Any) -> bytes:
    """Compact JSON bytes (a lone surrogate is written as its escape, as a registry could)."""
    return json.dumps(doc, separators=(",", ":")).encode()
