"""The ``regdata`` command: parse, call the library, emit.

Every query command prints a frame through one output function: an aligned
table by default, or ``--format csv|json|parquet`` (parquet needs pyarrow and
``-o``).  Errors are one line on stderr and an exit code (see :data:`EXIT_CODES`);
a traceback only with ``--debug``, or for a bug.

Here: the parser and ``main``.  ``commands.py`` holds the commands,
``output.py`` the output path and progress bars, ``exits.py`` the exit codes.
Heavy imports (pandas, matplotlib) happen inside the commands that build
frames, so ``regdata --version`` and ``regdata tags`` answer at once.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Sequence

from regdata import __version__
from regdata.cli.commands import (
    cmd_catalog,
    cmd_demo,
    cmd_diff,
    cmd_freshness,
    cmd_history,
    cmd_images,
    cmd_report,
    cmd_sandbox,
    cmd_tags,
)
from regdata.cli.exits import (
    EXIT_BUG,
    EXIT_CODES,
    EXIT_INTERRUPTED,
    EXIT_STALE,
    EXIT_USAGE,
    describe_error,
)
from regdata.cli.output import FORMATS, _Bars, emit

__all__ = ["EXIT_CODES", "describe_error", "emit", "main"]


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
        raise argparse.ArgumentTypeError(
            f"expected a time such as 2024-06-01 or 2024-06-01T12:00Z, got {text!r}"
        ) from None
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
    reg.add_argument(
        "--cache", metavar="URL", help="sqlite:// (default), sqlite:///path, memory://, memcached://h:p, none"
    )
    reg.add_argument(
        "--cache-ttl",
        metavar="TTL",
        help="how long tag lists and tag digests stay fresh (seconds, or 5m, 2h; default 300)",
    )
    reg.add_argument(
        "--insecure",
        metavar="HOST",
        action="append",
        default=[],
        help="Docker's insecure registry: TLS unverified, else plain HTTP (repeatable; "
        "loopback may always use plain HTTP)",
    )
    reg.add_argument(
        "--ca-file", metavar="FILE", help="trust the CAs of FILE (PEM) instead of the system store"
    )
    reg.add_argument(
        "--cert-dir",
        metavar="DIR",
        help="*.crt CAs and a *.cert/*.key client pair for every "
        "host, instead of certs.d (as skopeo's --cert-dir)",
    )
    reg.add_argument(
        "--tls-verify",
        metavar=("false", "HOST"),
        nargs=2,
        type=str.lower,
        action="append",
        default=[],
        help="--tls-verify=false HOST: Docker's insecure registry for HOST only: "
        "TLS unverified, else plain HTTP (repeatable)",
    )
    reg.add_argument(
        "--concurrency",
        metavar="N",
        type=_positive,
        default=None,
        help="requests at a time per host, fixed (default: adapts from 8 up to 32 "
        "while the registry keeps up, halving on a 429)",
    )
    reg.add_argument("--timeout", metavar="S", type=_seconds, help="connect and read timeout per request")
    reg.add_argument("--budget", metavar="S", type=_seconds, help="seconds a whole scan may take")
    reg.add_argument(
        "--retries",
        metavar="N",
        type=_positive,
        help="attempts per request on throttling and dropped connections (default 5)",
    )
    reg.add_argument(
        "--mirror",
        metavar="REG=HOST",
        type=_mirror,
        action="append",
        default=[],
        help="read REG from HOST, as Docker's registry-mirrors (docker.io=127.0.0.1:5055)",
    )
    reg.add_argument(
        "--platform",
        metavar="OS/ARCH[/VARIANT]",
        action="append",
        default=[],
        help="keep only this platform (repeatable); freshness judges on the first",
    )
    out = common.add_argument_group("output options")
    out.add_argument("--format", choices=FORMATS, default="table", help="table (default), csv, json, parquet")
    out.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    out.add_argument("--columns", metavar="A,B,...", help="these columns, in this order")
    out.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    out.add_argument("--stats", action="store_true", help="print the requests and cache figures to stderr")
    out.add_argument("--debug", action="store_true", help="print tracebacks")

    parser = argparse.ArgumentParser(
        prog="regdata",
        description="Container registries as tables: tags, images, history, fleet freshness.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"regdata {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(
        name: str, help_text: str, func: Callable[[argparse.Namespace], int]
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            parents=[common],
            help=help_text,
            description=help_text,
            epilog=_epilog(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(func=func)
        return p

    p = command("tags", "the tags of a repository", cmd_tags)
    p.add_argument("repository", help="nginx, ghcr.io/org/app, 127.0.0.1:5000/team/app")
    p = command(
        "images", "one row per tag and platform: a repository's tags, or one tag or digest", cmd_images
    )
    p.add_argument(
        "reference",
        nargs="*",
        help="a repository (every tag) or an image (repo:tag, "
        "repo@sha256:...); several repositories are read at once, into one table",
    )
    p.add_argument("--from", dest="from_file", metavar="FILE", help="repositories, one a line (- for stdin)")
    p.add_argument("--catalog", metavar="HOST", help="every repository the registry HOST lists")
    p.add_argument("--attestations", action="store_true", help="also list buildkit attestation manifests")
    p.add_argument(
        "--labels-win",
        action="store_true",
        help="take created from org.opencontainers.image.created labels when present",
    )
    p = command("history", "the build history of an image, per platform", cmd_history)
    p.add_argument("reference", help="repo:tag or repo@digest (latest when neither)")
    p = command("catalog", "the repositories a registry lists (many refuse)", cmd_catalog)
    p.add_argument("registry", help="a registry host: 127.0.0.1:5000, registry.example.com")
    for name, help_text, func in (
        ("freshness", "how stale the images a fleet runs are", cmd_freshness),
        ("report", "the freshness report of a fleet: one self-contained HTML (or Markdown) file", cmd_report),
    ):
        p = command(name, help_text, func)
        p.add_argument(
            "fleet", nargs="+", help="Kubernetes YAML, docker compose files, or lists of references"
        )
        p.add_argument("--check", action="store_true", help=f"exit {EXIT_STALE} when an image is behind")
        p.add_argument("--now", metavar="TIME", type=_time, help="judge ages as of TIME (default: now)")
        p.add_argument(
            "--within",
            choices=("track", "major", "minor"),
            default="track",
            help="hold a deployed version against its whole track (default), or only "
            "the same major (node:6 against 6.x) or major.minor",
        )
        p.add_argument(
            "--full",
            action="store_true",
            help="read every tag and platform of each repository, not only what the "
            "judgement needs (many more pulls)",
        )
        if name == "report":
            p.add_argument("--markdown", action="store_true", help="Markdown (also for -o *.md)")
    p = command("diff", "what changed between two saved images frames (snapshots)", cmd_diff)
    p.add_argument("old", help="a snapshot: images --format parquet -o FILE, or save_snapshot()")
    p.add_argument("new")
    p = command("demo", "the offline demo: sandbox registry, sample fleet, out/report.html", cmd_demo)
    p.add_argument("--small", action="store_true", help="a small subset of the demo images (seconds)")
    p.add_argument("--fresh", action="store_true", help="forget the demo's cache and previous runs first")
    p.add_argument("--port", type=int, help="sandbox port (default 5055, else a free one)")
    p.add_argument(
        "--workdir", metavar="DIR", help="sandbox storage and cache (default ~/.cache/regdata/sandbox)"
    )
    p.add_argument("--now", metavar="TIME", type=_time, help="judge ages as of TIME (default: now)")
    p = command(
        "sandbox", "start the sandbox registry, fill it, print its host, run until Ctrl-C", cmd_sandbox
    )
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
    argv = [
        part
        for arg in (sys.argv[1:] if argv is None else argv)
        for part in (arg.split("=", 1) if arg.startswith("--tls-verify=") else [arg])
    ]
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help, --version (0) and usage errors (2)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    args.mirror = dict(args.mirror)
    if any(value != "false" for value, _ in args.tls_verify):
        print(
            "regdata: --tls-verify takes false and a host: --tls-verify=false registry.lan:5000",
            file=sys.stderr,
        )
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
