"""The commands: each parses what is left of its arguments, calls the library, emits."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd

from regdata.cli.exits import (
    EXIT_OK,
    EXIT_SANDBOX,
    EXIT_STALE,
    UsageError,
)
from regdata.cli.output import TABLE_COLUMNS, Names, _human, emit

__all__ = []


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
    print(
        f"requests: {figures['sent']} sent ({kinds or 'none'}), {figures['cached']} answered by the cache, "
        f"{_human(figures['bytes'])}, {figures['errors']} failed",
        file=sys.stderr,
    )
    if "hits" in figures:
        print(
            f"cache: {figures['backend']}: {figures['hits']} hits, {figures['misses']} misses",
            file=sys.stderr,
        )


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
            print(
                f"regdata: {failed} of {len(frame)} rows have an error (see the error column)",
                file=sys.stderr,
            )


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
    scan = scan_fleet(
        registry,
        fleet,
        progress=args.bars("repositories"),
        full=args.full,
        platform=platform,
        within=args.within,
    )
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
    from regdata.report.figures import _ordered

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
        "markdown" if args.markdown or output.endswith((".md", ".markdown")) else "html"
    )
    platform = args.platform[0] if args.platform else "linux/amd64"
    path = write_report(
        freshness,
        scan.images,
        registry.requests,
        output,
        fmt,
        errors=scan.errors,
        cache=registry.cache,
        platform=platform,
        now=args.now,
        run={"scan": f"{scan.seconds:.1f} s", "pulls": scan.pull_summary()},
    )
    counts = freshness["status"].astype("string").value_counts()
    summary = ", ".join(
        f"{int(counts[s])} {s}" for s in ("behind", "current", "unknown", "error") if s in counts
    )
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

    run_demo(
        args.output or "out/report.html",
        workdir=args.workdir,
        small=args.small,
        fresh=args.fresh,
        port=args.port,
        concurrency=args.concurrency,
        progress=args.bars,
        now=args.now,
    )
    return EXIT_OK


def cmd_sandbox(args: argparse.Namespace) -> int:
    from regdata.sandbox import Sandbox

    with Sandbox.start(port=args.port, root=args.root) as sandbox:
        print(sandbox.host, flush=True)
        if not args.no_fill:
            report = sandbox.fill(as_of=args.as_of, small=args.small, progress=args.bars("filling"))
            args.bars.close()
            print(f"filled: {report}", file=sys.stderr)
        print(
            f"sandbox registry at {sandbox.url} (storage {sandbox.root / 'storage'}), standing in for "
            f"docker.io:\n  regdata --mirror docker.io={sandbox.host} images nginx\n"
            f"  regdata.Registry(mirrors={{'docker.io': '{sandbox.host}'}})\n"
            "Ctrl-C stops it.",
            file=sys.stderr,
            flush=True,
        )
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
