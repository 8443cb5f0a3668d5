"""The ``regdata`` command: parse, call the library, emit.

Every query command prints a frame through one output function: an aligned
table by default, or ``--format csv|json|parquet`` (parquet needs pyarrow and
``-o``).  Errors are one line on stderr and an exit code (see :data:`EXIT_CODES`);
a traceback only with ``--debug``, or for a bug.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import math
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Literal, TextIO

from regdata import __version__
from regdata.errors import (
    Cancelled,
    ContentError,
    CredentialsError,
    Denied,
    InsecureRequest,
    InvalidReference,
    NotFound,
    RegdataError,
    RegistryError,
    SandboxError,
    TransportError,
    Unauthorized,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["EXIT_CODES", "emit", "main"]

EXIT_OK = 0
EXIT_BUG = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_DENIED = 4
EXIT_UNREACHABLE = 5
EXIT_REGISTRY = 6
EXIT_TIMEOUT = 7
EXIT_STALE = 8
EXIT_SANDBOX = 9
EXIT_INTERRUPTED = 130

#: Exit codes and what they mean (also in ``regdata --help``).
EXIT_CODES = {
    EXIT_OK: "success (rows may still carry an error: see the error column)",
    EXIT_BUG: "an internal error: a bug in regdata (the traceback is printed)",
    EXIT_USAGE: "bad usage: unknown option, invalid reference, bad value",
    EXIT_NOT_FOUND: "not found: repository, tag, digest or fleet file",
    EXIT_DENIED: "access denied: 401/403, or credentials that cannot be read",
    EXIT_UNREACHABLE: "registry unreachable: refused, DNS, TLS, timeout, plain HTTP not allowed",
    EXIT_REGISTRY: "the registry failed (5xx, 429) or answered unusable content",
    EXIT_TIMEOUT: "the --budget ran out or the work was cancelled",
    EXIT_STALE: "freshness/report --check: some deployed image is behind",
    EXIT_SANDBOX: "the sandbox registry cannot run (apt-get install docker-registry)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}

FORMATS = ("table", "csv", "json", "parquet")

# What the table shows by default; csv, json and parquet carry every column.
TABLE_COLUMNS = {
    "images": ["tag", "platform", "created", "size", "layers", "digest", "error"],
    "history": ["tag", "platform", "step", "created", "empty_layer", "created_by"],
    "freshness": ["status", "image", "deployed_tag", "deployed_created", "candidate_tag", "lag_days",
                  "newer_versions", "reason"],
    "diff": ["repository", "tag", "platform", "change", "old_created", "new_created", "rebuild"],
}
_CELL_MAX = 72


class UsageError(Exception):
    """A mistake on the command line found after parsing (exit code 2)."""


# --------------------------------------------------------------------------- output


@dataclass(frozen=True)
class Names:
    """A one-column list of names (tags, repositories).

    Printed without pandas, so that ``regdata tags`` answers before pandas
    could even be imported; it becomes a frame only for parquet.
    """

    column: str
    values: list[str]

    def frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame({self.column: pd.Series(self.values, dtype="string")})


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    if type(value).__module__.startswith("pandas"):
        import pandas as pd

        return value is pd.NA or value is pd.NaT
    return False


def _plain(value: Any) -> Any:
    """A cell as a JSON value: NA → None, times → RFC 3339, containers → lists/dicts."""
    if isinstance(value, str):
        return value
    if _missing(value):
        return None
    if isinstance(value, datetime):  # pd.Timestamp too
        stamp = value.astimezone(UTC) if value.tzinfo else value
        text = stamp.strftime("%Y-%m-%dT%H:%M:%S")
        if stamp.microsecond:
            text += f".{stamp.microsecond:06d}".rstrip("0")
        return text + ("Z" if value.tzinfo else "")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return _plain(value.item())
    return value


def records(frame: pd.DataFrame | Names) -> list[dict[str, Any]]:
    """The rows of a frame as JSON-ready dicts (column order kept)."""
    if isinstance(frame, Names):
        return [{frame.column: v} for v in frame.values]
    columns = [str(c) for c in frame.columns]
    return [{c: _plain(v) for c, v in zip(columns, row, strict=True)}
            for row in frame.itertuples(index=False, name=None)]


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _table_cell(column: str, value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif _missing(value):
        return ""
    elif isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    elif isinstance(value, float):
        return f"{value:.1f}"
    elif column == "size" and isinstance(value, int):
        return _human(value)
    elif isinstance(value, dict | list | tuple):
        text = json.dumps(_plain(value), separators=(",", ":"))
    else:
        text = str(value)
    if text.startswith("sha256:") and len(text) > 19:
        return text[:19]
    text = text.replace("\n", " ")
    return text if len(text) <= _CELL_MAX else text[: _CELL_MAX - 1] + "…"


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{int(n)} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def table(frame: pd.DataFrame | Names) -> str:
    """An aligned text table: a header, then one line per row; numbers right-aligned."""
    if isinstance(frame, Names):
        columns, numeric = [frame.column], [False]
        cells = [[_table_cell(frame.column, v)] for v in frame.values]
    else:
        import pandas as pd

        columns = [str(c) for c in frame.columns]
        cells = [[_table_cell(c, v) for c, v in zip(columns, row, strict=True)]
                 for row in frame.astype(object).itertuples(index=False, name=None)]
        numeric = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
                   for c in frame.columns]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        out = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(out).rstrip()

    return "\n".join([line(columns), *(line(r) for r in cells)]) + "\n"


def emit(frame: pd.DataFrame | Names, fmt: str = "table", output: str | None = None,
         columns: Sequence[str] | None = None, stdout: TextIO | None = None) -> None:
    """Print or write ``frame``: the one output path of every query command.

    ``table``: aligned text; ``csv``: RFC 4180 with a header, times in RFC 3339
    UTC, NA empty, dicts and lists as JSON; ``json``: an array of objects, one
    per line, NA as null; ``parquet``: :func:`regdata.analysis.snapshots.save_snapshot`
    (needs pyarrow, and ``output``).  ``columns`` picks and orders columns.
    """
    names = [frame.column] if isinstance(frame, Names) else [str(c) for c in frame.columns]
    if columns:
        unknown = [c for c in columns if c not in names]
        if unknown:
            raise UsageError(f"unknown column {', '.join(unknown)}; columns are: {', '.join(names)}")
        if list(columns) != names:
            frame = frame.frame() if isinstance(frame, Names) else frame
            frame = frame[list(columns)]
            names = list(columns)
    if fmt == "parquet":
        if not output:
            raise UsageError("--format parquet needs -o FILE.parquet")
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise UsageError("--format parquet needs pyarrow: pip install 'regdata[parquet]'") from None
        from regdata.analysis.snapshots import save_snapshot

        target = output if output.endswith(".parquet") else output + ".parquet"
        save_snapshot(frame.frame() if isinstance(frame, Names) else frame, target)
        return
    if fmt == "table":
        text = table(frame)
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(names)
        for row in records(frame):
            writer.writerow([_csv_cell(v) for v in row.values()])
        text = buffer.getvalue()
    elif fmt == "json":
        lines = [json.dumps(r, ensure_ascii=False, separators=(", ", ": ")) for r in records(frame)]
        text = "[\n" + ",\n".join(lines) + "\n]\n" if lines else "[]\n"
    else:
        raise UsageError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(text, encoding="utf-8")
    else:
        (stdout or sys.stdout).write(text)


# --------------------------------------------------------------------------- progress


class _Bars:
    """tqdm bars on stderr, only for a terminal and without --quiet; closed at the end."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bars: list[Any] = []

    def __call__(self, label: str) -> Callable[[int, int], None] | None:
        if not self.enabled:
            return None
        from tqdm.auto import tqdm

        self.close()  # one step at a time: a new bar ends the one before
        bar = tqdm(total=0, desc=label, unit="", leave=False, file=sys.stderr, dynamic_ncols=True)
        self._bars.append(bar)

        def update(done: int, total: int) -> None:
            # The total may grow as work is found (a fill learns what is missing as it goes).
            if bar.total != total:
                bar.total = total
            if done > bar.n:
                bar.update(done - bar.n)  # redraws at most every mininterval

        return update

    def close(self) -> None:
        for bar in self._bars:
            bar.close()
        self._bars.clear()


# --------------------------------------------------------------------------- errors


def describe_error(exc: BaseException) -> tuple[int, str]:
    """The exit code and the one-line message of an exception."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, UsageError | InvalidReference):
        return EXIT_USAGE, text
    if isinstance(exc, FileNotFoundError):
        return EXIT_NOT_FOUND, text if "no such" in text else f"no such file: {exc.filename or text}"
    if isinstance(exc, NotFound):
        return EXIT_NOT_FOUND, f"not found: {text}"
    if isinstance(exc, Unauthorized | Denied):
        return EXIT_DENIED, f"access denied: {text}"
    if isinstance(exc, CredentialsError):
        return EXIT_DENIED, f"credentials: {text}"
    if isinstance(exc, TransportError | InsecureRequest):
        return EXIT_UNREACHABLE, f"unreachable: {text}"
    if isinstance(exc, Cancelled):
        return EXIT_TIMEOUT, text
    if isinstance(exc, RegistryError | ContentError):
        return EXIT_REGISTRY, f"registry error: {text}"
    if isinstance(exc, SandboxError):
        return EXIT_SANDBOX, f"sandbox: {text}"
    if isinstance(exc, RegdataError | ValueError):
        return EXIT_USAGE, text
    return EXIT_BUG, f"internal error: {type(exc).__name__}: {text}"


# --------------------------------------------------------------------------- commands


def _registry(args: argparse.Namespace, **extra: Any) -> Any:
    from regdata.client.registry import Registry

    options: dict[str, Any] = {
        "cache": args.cache if args.cache is not None else "default",
        "cache_ttl": args.cache_ttl,
        "concurrency": args.concurrency,
        "timeout": args.timeout,
        "budget": args.budget,
        "insecure": [*args.insecure, *(host for _, host in args.tls_verify)],
        "mirrors": args.mirror,
        "platforms": args.platform or None,
    }
    if args.ca_file:
        options["verify"] = args.ca_file
    if args.cert_dir:
        options["cert_dir"] = args.cert_dir
    if args.retries is not None:
        from regdata.transport import RetryPolicy

        options["retry"] = RetryPolicy(attempts=args.retries)
    options.update(extra)
    progress = args.bars("scanning")
    if progress is not None:
        options["progress"] = progress
    registry = Registry(**options)
    args.registries.append(registry)
    return registry


def _stats(args: argparse.Namespace, registry: Any) -> None:
    if not args.stats:
        return
    from regdata.report import request_figures

    figures = request_figures(registry.requests, registry.cache)
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(figures["by_kind"].items(), key=lambda kv: -kv[1]))
    print(f"requests: {figures['sent']} sent ({kinds or 'none'}), {figures['cached']} answered by the cache, "
          f"{_human(figures['bytes'])}, {figures['errors']} failed", file=sys.stderr)
    if "hits" in figures:
        print(f"cache: {figures['backend']}: {figures['hits']} hits, {figures['misses']} misses",
              file=sys.stderr)


def _columns(args: argparse.Namespace, command: str, frame: pd.DataFrame | Names) -> list[str] | None:
    if args.columns:
        return [c.strip() for c in args.columns.split(",") if c.strip()]
    if args.format == "table" and command in TABLE_COLUMNS:
        present = [frame.column] if isinstance(frame, Names) else list(frame.columns)
        return [c for c in TABLE_COLUMNS[command] if c in present]
    return None


def _warn_rows(frame: pd.DataFrame) -> None:
    if "error" in frame and len(frame):
        failed = int(frame["error"].notna().sum())
        if failed:
            print(f"regdata: {failed} of {len(frame)} rows have an error (see the error column)",
                  file=sys.stderr)


def cmd_tags(args: argparse.Namespace) -> int:
    registry = _registry(args)
    tags = Names("tag", registry.tags(args.repository))
    emit(tags, args.format, args.output, _columns(args, "tags", tags))
    _stats(args, registry)
    return EXIT_OK


def cmd_catalog(args: argparse.Namespace) -> int:
    registry = _registry(args)
    names = Names("repository", registry.catalog(args.registry))
    emit(names, args.format, args.output, _columns(args, "catalog", names))
    _stats(args, registry)
    return EXIT_OK


def cmd_images(args: argparse.Namespace) -> int:
    from regdata.oci.reference import parse_reference

    registry = _registry(args, attestations=args.attestations, labels_win=args.labels_win)
    names = list(args.reference)
    if args.from_file:  # one repository a line; blank lines and # comments skipped
        text = sys.stdin.read() if args.from_file == "-" else Path(args.from_file).read_text()
        names += [n.strip() for n in text.splitlines() if n.strip() and not n.lstrip().startswith("#")]
    if args.catalog:
        names += registry.catalog(args.catalog).repositories()
    if not names:
        raise UsageError("the following arguments are required: reference (or --from FILE, --catalog HOST)")
    if len(names) == 1 and not (args.from_file or args.catalog):
        ref = parse_reference(names[0])
        whole = ref.tag is None and ref.digest is None
        frame = registry.get_repository(ref) if whole else registry.get_image(ref)
    else:
        frame = registry.get_repositories(names)
    columns = _columns(args, "images", frame)
    if columns is not None and not args.columns and len(names) > 1:
        columns = ["repository", *columns]  # the default table, for many repositories
    emit(frame, args.format, args.output, columns)
    _warn_rows(frame)
    _stats(args, registry)
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    registry = _registry(args)
    frame = registry.history(args.reference)
    emit(frame, args.format, args.output, _columns(args, "history", frame))
    _warn_rows(frame)
    _stats(args, registry)
    return EXIT_OK


def _judged(args: argparse.Namespace) -> tuple[Any, Any, pd.DataFrame]:
    from regdata.report import judge_fleet, read_fleets, scan_fleet

    fleet = read_fleets(args.fleet)
    registry = _registry(args)
    platform = args.platform[0] if args.platform else "linux/amd64"
    scan = scan_fleet(registry, fleet, progress=args.bars("repositories"), full=args.full, platform=platform,
                      within=args.within)
    if scan.quota or args.stats:  # a host counts pulls: say what the run cost and what is left
        print(f"pulls: {scan.pull_summary()}", file=sys.stderr)
    return registry, scan, judge_fleet(scan, platform=platform, now=args.now, within=args.within)


def _check(args: argparse.Namespace, freshness: pd.DataFrame) -> int:
    behind = int((freshness["status"].astype("string") == "behind").sum())
    if args.check and behind:
        print(f"regdata: {behind} of {len(freshness)} deployed images are behind", file=sys.stderr)
        return EXIT_STALE
    return EXIT_OK


def cmd_freshness(args: argparse.Namespace) -> int:
    from regdata.report import _ordered

    registry, _, freshness = _judged(args)
    frame = _ordered(freshness)
    emit(frame, args.format, args.output, _columns(args, "freshness", frame))
    _stats(args, registry)
    return _check(args, freshness)


def cmd_report(args: argparse.Namespace) -> int:
    from regdata.report import write_report

    registry, scan, freshness = _judged(args)
    output = args.output or "report.html"
    fmt: Literal["html", "markdown"] = (
        "markdown" if args.markdown or output.endswith((".md", ".markdown")) else "html")
    platform = args.platform[0] if args.platform else "linux/amd64"
    path = write_report(freshness, scan.images, registry.requests, output, fmt, errors=scan.errors,
                        cache=registry.cache, platform=platform, now=args.now,
                        run={"scan": f"{scan.seconds:.1f} s", "pulls": scan.pull_summary()})
    counts = freshness["status"].astype("string").value_counts()
    summary = ", ".join(f"{int(counts[s])} {s}" for s in ("behind", "current", "unknown", "error")
                        if s in counts)
    print(f"{path}: {summary or 'no images'}")
    _stats(args, registry)
    return _check(args, freshness)


def cmd_diff(args: argparse.Namespace) -> int:
    from regdata.analysis.snapshots import diff_snapshots, load_snapshot

    frame = diff_snapshots(load_snapshot(args.old), load_snapshot(args.new))
    emit(frame, args.format, args.output, _columns(args, "diff", frame))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from regdata.sandbox.demo import run_demo

    run_demo(args.output or "out/report.html", workdir=args.workdir, small=args.small, fresh=args.fresh,
             port=args.port, concurrency=args.concurrency, progress=args.bars, now=args.now)
    return EXIT_OK


def cmd_sandbox(args: argparse.Namespace) -> int:
    from regdata.sandbox import Sandbox

    with Sandbox.start(port=args.port, root=args.root) as sandbox:
        print(sandbox.host, flush=True)
        if not args.no_fill:
            report = sandbox.fill(as_of=args.as_of, small=args.small, progress=args.bars("filling"))
            args.bars.close()
            print(f"filled: {report}", file=sys.stderr)
        print(f"sandbox registry at {sandbox.url} (storage {sandbox.root / 'storage'}), standing in for "
              f"docker.io:\n  regdata --mirror docker.io={sandbox.host} images nginx\n"
              f"  regdata.Registry(mirrors={{'docker.io': '{sandbox.host}'}})\n"
              "Ctrl-C stops it.", file=sys.stderr, flush=True)
        with _until_signalled():
            while sandbox.running:
                sandbox.process.wait()
            print("regdata: the sandbox registry exited", file=sys.stderr)
            return EXIT_SANDBOX
    return EXIT_OK


@contextlib.contextmanager
def _until_signalled() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt for the block, so a stop runs the cleanup."""
    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


# --------------------------------------------------------------------------- parser


def _mirror(text: str) -> tuple[str, str]:
    registry, sep, host = text.partition("=")
    if not sep or not registry or not host:
        raise argparse.ArgumentTypeError(f"expected REGISTRY=HOST (docker.io=127.0.0.1:5000), got {text!r}")
    return registry, host


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {value}")
    return value


def _time(text: str) -> str:
    """A --now value, checked before any scan: a typo must not cost one."""
    from regdata.analysis.freshness import as_now

    try:
        as_now(text)
    except (ValueError, TypeError):
        raise argparse.ArgumentTypeError(f"expected a time such as 2024-06-01 or 2024-06-01T12:00Z, "
                                         f"got {text!r}") from None
    return text


def _epilog() -> str:
    codes = "\n".join(f"  {code:>3}  {text}" for code, text in EXIT_CODES.items())
    return (
        "examples:\n"
        "  regdata demo                                    the offline demo: sandbox, fleet, report\n"
        "  regdata tags nginx                              tags of docker.io/library/nginx\n"
        "  regdata images ghcr.io/org/app --format csv     every tag x platform, as CSV\n"
        "  regdata images nginx:1.25 --platform linux/arm64\n"
        "  regdata images --catalog registry.lan:5000 --format parquet -o all.parquet\n"
        "  regdata freshness k8s/*.yaml compose.yaml --check\n"
        "  regdata report k8s.yaml -o report.html          self-contained HTML (or -o report.md)\n\n"
        f"exit codes:\n{codes}\n\n"
        "environment: REGDATA_CACHE (cache URL), REGDATA_CACHE_TTL, REGDATA_SANDBOX_PORT, "
        "REGDATA_REGISTRY_BIN;\n  HTTPS_PROXY, HTTP_PROXY, NO_PROXY (as Docker reads them), SSL_CERT_FILE, "
        "SSL_CERT_DIR, REQUESTS_CA_BUNDLE;\n"
        "  certs.d: /etc/docker/certs.d/HOST:PORT/ and podman's (*.crt, *.cert, *.key)"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``regdata``."""
    common = argparse.ArgumentParser(add_help=False)
    reg = common.add_argument_group("registry options")
    reg.add_argument("--cache", metavar="URL",
                     help="sqlite:// (default), sqlite:///path, memory://, memcached://h:p, none")
    reg.add_argument("--cache-ttl", metavar="TTL", help="how long tag lists and tag digests stay fresh "
                     "(seconds, or 5m, 2h; default 300)")
    reg.add_argument("--insecure", metavar="HOST", action="append", default=[],
                     help="Docker's insecure registry: TLS unverified, else plain HTTP (repeatable; "
                          "loopback may always use plain HTTP)")
    reg.add_argument("--ca-file", metavar="FILE",
                     help="trust the CAs of FILE (PEM) instead of the system store")
    reg.add_argument("--cert-dir", metavar="DIR", help="*.crt CAs and a *.cert/*.key client pair for every "
                     "host, instead of certs.d (as skopeo's --cert-dir)")
    reg.add_argument("--tls-verify", metavar=("false", "HOST"), nargs=2, type=str.lower, action="append",
                     default=[], help="--tls-verify=false HOST: Docker's insecure registry for HOST only: "
                     "TLS unverified, else plain HTTP (repeatable)")
    reg.add_argument("--concurrency", metavar="N", type=_positive, default=None,
                     help="requests at a time per host, fixed (default: adapts from 8 up to 32 "
                          "while the registry keeps up, halving on a 429)")
    reg.add_argument("--timeout", metavar="S", type=_seconds, help="connect and read timeout per request")
    reg.add_argument("--budget", metavar="S", type=_seconds, help="seconds a whole scan may take")
    reg.add_argument("--retries", metavar="N", type=_positive,
                     help="attempts per request on throttling and dropped connections (default 5)")
    reg.add_argument("--mirror", metavar="REG=HOST", type=_mirror, action="append", default=[],
                     help="read REG from HOST, as Docker's registry-mirrors (docker.io=127.0.0.1:5055)")
    reg.add_argument("--platform", metavar="OS/ARCH[/VARIANT]", action="append", default=[],
                     help="keep only this platform (repeatable); freshness judges on the first")
    out = common.add_argument_group("output options")
    out.add_argument("--format", choices=FORMATS, default="table", help="table (default), csv, json, parquet")
    out.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    out.add_argument("--columns", metavar="A,B,...", help="these columns, in this order")
    out.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    out.add_argument("--stats", action="store_true", help="print the requests and cache figures to stderr")
    out.add_argument("--debug", action="store_true", help="print tracebacks")

    parser = argparse.ArgumentParser(
        prog="regdata", description="Container registries as tables: tags, images, history, fleet freshness.",
        epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"regdata {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(
        name: str, help_text: str, func: Callable[[argparse.Namespace], int]
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text,
                           epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        return p

    p = command("tags", "the tags of a repository", cmd_tags)
    p.add_argument("repository", help="nginx, ghcr.io/org/app, 127.0.0.1:5000/team/app")
    p = command("images", "one row per tag and platform: a repository's tags, or one tag or digest",
                cmd_images)
    p.add_argument("reference", nargs="*", help="a repository (every tag) or an image (repo:tag, "
                   "repo@sha256:...); several repositories are read at once, into one table")
    p.add_argument("--from", dest="from_file", metavar="FILE", help="repositories, one a line (- for stdin)")
    p.add_argument("--catalog", metavar="HOST", help="every repository the registry HOST lists")
    p.add_argument("--attestations", action="store_true", help="also list buildkit attestation manifests")
    p.add_argument("--labels-win", action="store_true",
                   help="take created from org.opencontainers.image.created labels when present")
    p = command("history", "the build history of an image, per platform", cmd_history)
    p.add_argument("reference", help="repo:tag or repo@digest (latest when neither)")
    p = command("catalog", "the repositories a registry lists (many refuse)", cmd_catalog)
    p.add_argument("registry", help="a registry host: 127.0.0.1:5000, registry.example.com")
    for name, help_text, func in (
        ("freshness", "how stale the images a fleet runs are", cmd_freshness),
        ("report", "the freshness report of a fleet: one self-contained HTML (or Markdown) file", cmd_report),
    ):
        p = command(name, help_text, func)
        p.add_argument("fleet", nargs="+",
                       help="Kubernetes YAML, docker compose files, or lists of references")
        p.add_argument("--check", action="store_true", help=f"exit {EXIT_STALE} when an image is behind")
        p.add_argument("--now", metavar="TIME", type=_time, help="judge ages as of TIME (default: now)")
        p.add_argument("--within", choices=("track", "major", "minor"), default="track",
                       help="hold a deployed version against its whole track (default), or only "
                            "the same major (node:6 against 6.x) or major.minor")
        p.add_argument("--full", action="store_true",
                       help="read every tag and platform of each repository, not only what the "
                            "judgement needs (many more pulls)")
        if name == "report":
            p.add_argument("--markdown", action="store_true", help="Markdown (also for -o *.md)")
    p = command("diff", "what changed between two saved images frames (snapshots)", cmd_diff)
    p.add_argument("old", help="a snapshot: images --format parquet -o FILE, or save_snapshot()")
    p.add_argument("new")
    p = command("demo", "the offline demo: sandbox registry, sample fleet, out/report.html", cmd_demo)
    p.add_argument("--small", action="store_true", help="a small subset of the demo images (seconds)")
    p.add_argument("--fresh", action="store_true", help="forget the demo's cache and previous runs first")
    p.add_argument("--port", type=int, help="sandbox port (default 5055, else a free one)")
    p.add_argument("--workdir", metavar="DIR",
                   help="sandbox storage and cache (default ~/.cache/regdata/sandbox)")
    p.add_argument("--now", metavar="TIME", type=_time, help="judge ages as of TIME (default: now)")
    p = command("sandbox", "start the sandbox registry, fill it, print its host, run until Ctrl-C",
                cmd_sandbox)
    p.add_argument("--port", type=int, help="port (default 5055, else a free one; 0 for a free one)")
    p.add_argument("--root", metavar="DIR", help="storage directory (default ~/.cache/regdata/sandbox)")
    p.add_argument("--no-fill", action="store_true", help="start it as it is")
    p.add_argument("--small", action="store_true", help="only the small subset of the demo images")
    p.add_argument("--as-of", metavar="TIME", help="each tag as it was at TIME (tags move forward only)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``regdata`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    # No display needed for the report's plots; a user's own MPLBACKEND wins.
    os.environ.setdefault("MPLBACKEND", "Agg")
    parser = build_parser()
    # skopeo's spelling, --tls-verify=false HOST: argparse takes no '=' on a two-value option.
    argv = [part for arg in (sys.argv[1:] if argv is None else argv)
            for part in (arg.split("=", 1) if arg.startswith("--tls-verify=") else [arg])]
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help, --version (0) and usage errors (2)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    args.mirror = dict(args.mirror)
    if any(value != "false" for value, _ in args.tls_verify):
        print("regdata: --tls-verify takes false and a host: --tls-verify=false registry.lan:5000",
              file=sys.stderr)
        return EXIT_USAGE
    args.registries = []
    args.bars = _Bars(enabled=not args.quiet and sys.stderr.isatty())
    try:
        code: int = args.func(args)
        return code
    except KeyboardInterrupt:
        for registry in args.registries:
            registry.cancel()
        print("regdata: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        code, message = describe_error(exc)
        if args.debug or code == EXIT_BUG:
            import traceback

            traceback.print_exc()
        print(f"regdata: {message}", file=sys.stderr)
        return code
    finally:
        args.bars.close()
        for registry in args.registries:
            with contextlib.suppress(Exception):
                registry.close()
