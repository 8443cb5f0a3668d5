"""The benchmark in one command: regdata beside the floor and its peers, same run, same registry.

    python -m bench.run            # the full run (about 15 minutes on 2 cores)
    python -m bench.run --smoke    # everything tiny, for CI (well under a minute)

It starts its own Distribution registry (and memcached) on 127.0.0.1, fills
it (bench/fill.py), and runs each contender several times, interleaved, on
loopback and through a proxy that delays every request (bench/latency.py):

- ``floor``: the same GETs as regdata with a bare requests.Session, 8 threads
  (``floor-32``: 32 threads, to show the proxy is not the limit;
  ``floor-urllib3``: 8 threads on a bare urllib3 pool, the HTTP regdata speaks);
- ``regdata``: ``Registry(cache=None).get_repository(...)``, default settings;
- ``python-dxf``, ``oras-py``, ``skopeo``: as their users run them (bench/peers.py).

Then regdata warm (a second scan within the TTL, a scan after it, a second
process on the same memcached) and at scale (10,000 tags in a fresh process:
peak RSS and time per tag against a 250-tag repository made the same way).
It prints a table and the targets (met / missed) and writes the figures to
``bench/results/latest.json`` (``smoke.json`` for ``--smoke``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tests.support.registry_server import (
    MemcachedServer,
    RegistryServer,
    start_memcached,
    start_registry,
)

from . import fill
from .accesslog import ACCESS_LOG_CONFIG, AccessLog
from .floor import floor_scan
from .latency import ProxyProcess, start_latency_proxy
from .measure import Result, measure
from .ours import ScanRun, regdata_scan
from .outcome import Outcome
from .peers import PEERS, available, versions
from .report import NETWORK_LABEL, Target, format_table, format_targets, markdown_table

__all__ = ["Config", "main"]

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CONTENDERS = ("floor", "floor-32", "floor-urllib3", "regdata", "python-dxf", "oras-py", "skopeo")
NETWORKS = ("loopback", "wan")


@dataclass
class Config:
    """What to run; ``smoke()`` is the CI size."""

    tags: int = 250
    scale: int = 10_000
    scale_base: int = 250
    repeats: int = 5
    peer_repeats: int = 2
    warm_repeats: int = 3
    scale_repeats: int = 3
    delay: float = 0.03
    ttl_short: float = 1.0
    contenders: tuple[str, ...] = CONTENDERS
    networks: tuple[str, ...] = NETWORKS
    warm: bool = True
    profile: bool = False
    proxy_kind: str = "asyncio"
    limit: float = 3 * 3600.0  # the whole run, in seconds
    out: Path = RESULTS / "latest.json"
    smoke: bool = False

    @classmethod
    def smoke_config(cls) -> Config:
        """Everything, tiny: 12 tags, scale 8 vs 24 tags, one run each."""
        return cls(
            tags=12,
            scale=24,
            scale_base=8,
            repeats=1,
            peer_repeats=1,
            warm_repeats=1,
            scale_repeats=1,
            ttl_short=0.5,
            out=RESULTS / "smoke.json",
            smoke=True,
            limit=600.0,
        )


# --------------------------------------------------------------------------- the test bed


def isolate(home: Path) -> None:
    """A private HOME for this process and its children: no user credentials, no proxies."""
    home.mkdir(parents=True, exist_ok=True)
    (home / ".docker").mkdir(exist_ok=True)
    (home / ".docker" / "config.json").write_text('{"auths": {}}\n')
    os.environ.update(
        {
            "HOME": str(home),
            "DOCKER_CONFIG": str(home / ".docker"),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_RUNTIME_DIR": str(home),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "NO_PROXY": "*",
        }
    )
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "REGDATA_CACHE",
        "REGDATA_CACHE_TTL",
        # Distribution reads REGISTRY_* as configuration: REGISTRY_AUTH_FILE would be auth.file.
        "REGISTRY_AUTH_FILE",
    ):
        os.environ.pop(name, None)


@dataclass
class Bed:
    """The registry, its access log, memcached and the latency proxy."""

    registry: RegistryServer
    log: AccessLog
    memcached: MemcachedServer | None = None
    proxy: ProxyProcess | None = None

    def host(self, network: str) -> str:
        """host:port to reach the registry on ``network``."""
        if network == "wan":
            assert self.proxy is not None
            return self.proxy.host
        return self.registry.host

    def pids(self, network: str) -> dict[str, int | None]:
        """The processes whose CPU a run on ``network`` costs, besides our own."""
        pids: dict[str, int | None] = {
            "registry": self.registry.process.pid if self.registry.process else None
        }
        if network == "wan" and self.proxy is not None:
            pids["proxy"] = self.proxy.process.pid
        return pids

    def close(self) -> None:
        """Stop everything this run started."""
        if self.proxy is not None:
            self.proxy.close()
        if self.memcached is not None:
            self.memcached.close()
        self.registry.close()


# --------------------------------------------------------------------------- runners


Runner = Callable[[], tuple[Outcome, dict[str, Any]]]


def _scan_extra(run: ScanRun) -> dict[str, Any]:
    return {
        "seconds": run.seconds,
        "logged": run.logged,
        "cache_hits": run.cache_hits,
        "max_in_flight": run.max_in_flight,
        "limiter": run.limiter,
    }


def _runner(name: str, host: str, repo: str) -> Runner:
    if name == "floor":
        return lambda: (floor_scan(f"http://{host}", repo, 8), {})
    if name == "floor-32":
        return lambda: (floor_scan(f"http://{host}", repo, 32), {})
    if name == "floor-urllib3":
        return lambda: (floor_scan(f"http://{host}", repo, 8, client="urllib3"), {})
    if name == "regdata":

        def run() -> tuple[Outcome, dict[str, Any]]:
            done, reg = regdata_scan(host, repo, cache=None)
            # Timed like the floor, whose time ends after its session is closed.
            started = time.perf_counter()
            reg.close()
            done.seconds += time.perf_counter() - started
            return done.outcome, _scan_extra(done)

        return run
    peer = PEERS[name]
    return lambda: (peer(host, repo, 1800.0), {})


def _worker(host: str, repo: str, cache: str | None = None, ttl: float | None = None) -> Runner:
    """A regdata scan in a fresh process (bench/worker.py)."""

    def run() -> tuple[Outcome, dict[str, Any]]:
        cmd = [sys.executable, "-m", "bench.worker", "--host", host, "--repo", repo]
        if cache:
            cmd += ["--cache", cache]
        if ttl is not None:
            cmd += ["--ttl", str(ttl)]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"bench.worker failed: {done.stderr.strip()[-2000:]}")
        doc = json.loads(done.stdout.strip().splitlines()[-1])
        outcome = Outcome(
            rows=[tuple(r) for r in doc.pop("rows")],
            tops=doc.pop("tops"),
            errors=doc.pop("errors"),
            tags=doc.pop("tags"),
        )
        return outcome, doc

    return run


class Clock:
    """The whole run's time limit: past it, repeats are cut short (never a run half done)."""

    def __init__(self, limit: float) -> None:
        self.end = time.monotonic() + limit

    def left(self) -> bool:
        """Time remains."""
        return time.monotonic() < self.end


def say(text: str) -> None:
    """Progress, on stderr (the table goes to stdout)."""
    print(text, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- phases


def cold_runs(bed: Bed, cfg: Config, network: str, repo: str, clock: Clock) -> list[Result]:
    """Every contender, cold, interleaved round by round so drift hits all alike."""
    names = [n for n in cfg.contenders if n in CONTENDERS]
    results = {n: Result(network, n) for n in names}
    for name in names:
        why = available(name) if name in PEERS else None
        if why:
            results[name].skipped = why
    rounds = max(cfg.repeats, cfg.peer_repeats)
    for round_ in range(rounds):
        for name in names:
            result = results[name]
            wanted = cfg.peer_repeats if name in PEERS else cfg.repeats
            if result.skipped or round_ >= wanted or not clock.left():
                continue
            say(f"  {network:8} {name:10} run {round_ + 1}/{wanted}")
            result.samples.append(measure(_runner(name, bed.host(network), repo), bed.log, bed.pids(network)))
            say(f"    {result.samples[-1].seconds:.2f}s, {result.samples[-1].requests.total} requests")
    ordered = list(results.values())
    _check_agreement(ordered, "regdata")
    return ordered


def _check_agreement(results: list[Result], reference_name: str) -> None:
    reference = next((r for r in results if r.contender == reference_name and r.samples), None)
    if reference is None:
        reference = next((r for r in results if r.samples and r.samples[0].outcome.rows is not None), None)
    if reference is None:
        return
    ref = reference.samples[0].outcome
    for result in results:
        if not result.samples:
            continue
        verdicts = [s.outcome.agrees_with(ref) for s in result.samples]
        result.agrees = all(ok for ok, _ in verdicts)
        result.disagreement = next((why for ok, why in verdicts if not ok), "")


@dataclass
class WarmResult:
    """A warm scan beside the cold scan that filled the cache."""

    network: str
    name: str
    cold: Result
    warm: Result
    notes: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """For the JSON report."""
        return {
            "network": self.network,
            "name": self.name,
            "cold": self.cold.as_dict(),
            "warm": self.warm.as_dict(),
            **self.notes,
        }


def warm_runs(
    bed: Bed, cfg: Config, network: str, repo: str, tmp: Path, clock: Clock, reference: Outcome | None
) -> list[WarmResult]:
    """Within the TTL, after the TTL, and a second process on memcached."""
    host, pids = bed.host(network), bed.pids(network)
    out = []
    kinds = ["within_ttl", "after_ttl"] + (["second_process_memcached"] if bed.memcached else [])
    for kind in kinds:
        cold, warm = Result(network, f"regdata cold, filling ({kind})"), Result(network, f"regdata {kind}")
        for n in range(cfg.warm_repeats):
            if not clock.left():
                break
            say(f"  {network:8} warm {kind} run {n + 1}/{cfg.warm_repeats}")
            holder: dict[str, Any] = {}
            if kind == "second_process_memcached":
                assert bed.memcached is not None
                bed.memcached.flush_all()
                cache: str = f"memcached://{bed.memcached.host}"
                ttl = None
            else:
                cache = f"sqlite:///{tmp}/{network}-{kind}-{n}.sqlite"
                ttl = cfg.ttl_short if kind == "after_ttl" else None

            def fill_cache(
                cache: str = cache, ttl: float | None = ttl, holder: dict[str, Any] = holder
            ) -> tuple[Outcome, dict[str, Any]]:
                options = {} if ttl is None else {"cache_ttl": ttl}
                done, holder["reg"] = regdata_scan(host, repo, cache=cache, **options)
                holder["ended"] = time.monotonic()
                return done.outcome, _scan_extra(done)

            cold.samples.append(measure(fill_cache, bed.log, pids))
            if kind == "second_process_memcached":
                holder["reg"].close()
                warm.samples.append(measure(_worker(host, repo, cache), bed.log, pids))
                continue
            if kind == "after_ttl":
                time.sleep(max(0.0, holder["ended"] + cfg.ttl_short + 0.25 - time.monotonic()))

            def again(holder: dict[str, Any] = holder) -> tuple[Outcome, dict[str, Any]]:
                done, _ = regdata_scan(host, repo, reg=holder["reg"])
                return done.outcome, _scan_extra(done)

            warm.samples.append(measure(again, bed.log, pids))
            holder["reg"].close()
        if reference is not None:
            for result in (cold, warm):
                verdicts = [s.outcome.agrees_with(reference) for s in result.samples]
                result.agrees = all(ok for ok, _ in verdicts) if verdicts else None
                result.disagreement = next((why for ok, why in verdicts if not ok), "")
        out.append(WarmResult(network, kind, cold, warm, {"ttl_s": ttl}))
    return out


@dataclass
class ScaleResult:
    """regdata (fresh process) and the floor on the scale repositories."""

    sizes: dict[int, dict[str, Result]]

    def per_tag(self, size: int, who: str) -> float | None:
        """Median seconds per tag."""
        median = self.sizes[size][who].median
        return None if median is None else median / size

    def peak_rss_mb(self, size: int) -> float | None:
        """The highest peak RSS of regdata's processes at this size."""
        samples = self.sizes[size]["regdata"].samples
        return max((s.extra.get("peak_rss_mb", 0.0) for s in samples), default=None)

    def as_dict(self) -> dict[str, Any]:
        """For the JSON report."""
        return {
            str(size): {
                **{who: r.as_dict() for who, r in by.items()},
                "regdata_s_per_tag": self.per_tag(size, "regdata"),
                "floor_s_per_tag": self.per_tag(size, "floor"),
                "regdata_peak_rss_mb": self.peak_rss_mb(size),
            }
            for size, by in self.sizes.items()
        }


def scale_runs(bed: Bed, cfg: Config, clock: Clock) -> ScaleResult:
    """The scale repositories on loopback: the floor in-process, regdata in a fresh process."""
    sizes: dict[int, dict[str, Result]] = {}
    host, pids = bed.host("loopback"), bed.pids("loopback")
    for size in (cfg.scale_base, cfg.scale):
        repo = fill.scale_repo(size)
        by = {
            "floor": Result("loopback", f"floor ({size} tags)"),
            "regdata": Result("loopback", f"regdata, fresh process ({size} tags)"),
        }
        # The small size is over in a second, so noise moves it most: it gets the runs of the cold table.
        runs = cfg.scale_repeats if size == cfg.scale else max(cfg.scale_repeats, cfg.repeats)
        for n in range(runs):
            if not clock.left():
                break
            for who, result in by.items():
                say(f"  scale {size:6} {who:8} run {n + 1}/{runs}")
                runner = _runner("floor", host, repo) if who == "floor" else _worker(host, repo)
                result.samples.append(measure(runner, bed.log, pids))
                say(f"    {result.samples[-1].seconds:.2f}s")
        _check_agreement(list(by.values()), "floor")
        sizes[size] = by
    return ScaleResult(sizes)


# --------------------------------------------------------------------------- targets


def targets(
    cfg: Config, cold: dict[str, list[Result]], warm: list[WarmResult], scale: ScaleResult | None
) -> list[Target]:
    """The issue's targets, from this run's figures."""

    def median(network: str, who: str) -> float | None:
        for r in cold.get(network, []):
            if r.contender == who:
                return r.median
        return None

    def ratio(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None or b == 0 else a / b

    ms = round(cfg.delay * 1000)
    out = [
        Target(
            f"+{ms} ms, cold: regdata / floor (8 threads)",
            ratio(median("wan", "regdata"), median("wan", "floor")),
            0.5,
            "<=",
            "x",
        ),
        Target(
            f"+{ms} ms, cold: python-dxf / regdata",
            ratio(median("wan", "python-dxf"), median("wan", "regdata")),
            15.0,
            ">=",
            "x",
        ),
        Target(
            f"+{ms} ms, cold: oras-py / regdata",
            ratio(median("wan", "oras-py"), median("wan", "regdata")),
            15.0,
            ">=",
            "x",
        ),
        Target(
            "loopback, cold: regdata / floor (8 threads)",
            ratio(median("loopback", "regdata"), median("loopback", "floor")),
            1.0,
            "<=",
            "x",
        ),
    ]
    proxied = {r.contender: r for r in cold.get("wan", [])}
    if "floor-32" in proxied and proxied["floor-32"].samples:
        middle = proxied["floor-32"].median_sample()
        assert middle is not None
        share = middle.cpu.get("proxy", 0.0) / middle.seconds
        speedup = ratio(median("wan", "floor"), median("wan", "floor-32"))
        out.append(
            Target(
                f"+{ms} ms: the proxy's CPU at 32 threads, share of one core",
                share,
                0.5,
                "<=",
                note="" if speedup is None else f"floor 32 vs 8 threads: {speedup:.1f}x faster",
            )
        )
    for w in warm:
        label = NETWORK_LABEL[w.network].format(delay_ms=ms)
        middle = w.warm.median_sample()
        if w.name == "within_ttl":
            out.append(
                Target(
                    f"{label}, within TTL: HTTP requests",
                    None if middle is None else middle.requests.total,
                    0,
                    "<=",
                )
            )
            out.append(
                Target(
                    f"{label}, within TTL: time / cold (cache=None)",
                    ratio(w.warm.median, median(w.network, "regdata")),
                    0.05,
                    "<=",
                    "x",
                )
            )
        elif w.name == "after_ttl":
            out.append(
                Target(
                    f"{label}, after TTL: manifest GETs",
                    None if middle is None else middle.requests.manifest_gets,
                    0,
                    "<=",
                    note="" if middle is None else f"requests: {middle.requests.by_kind}",
                )
            )
        else:
            out.append(
                Target(
                    f"{label}, second process on memcached: manifest GETs",
                    None if middle is None else middle.requests.manifest_gets,
                    0,
                    "<=",
                    note="" if middle is None else f"requests: {middle.requests.by_kind}",
                )
            )
    if scale is not None:
        big, base = cfg.scale, cfg.scale_base
        out.append(
            Target(f"{big} tags: peak RSS of the whole process", scale.peak_rss_mb(big), 250.0, "<=", " MB")
        )
        floor_ratio = ratio(scale.per_tag(big, "floor"), scale.per_tag(base, "floor"))
        out.append(
            Target(
                f"{big} tags: time per tag / {base}-tag run",
                ratio(scale.per_tag(big, "regdata"), scale.per_tag(base, "regdata")),
                1.2,
                "<=",
                "x",
                note="" if floor_ratio is None else f"the floor's: {floor_ratio:.2f}x",
            )
        )
    return out


# --------------------------------------------------------------------------- the run


def _meta(cfg: Config) -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    import regdata

    registry_version = subprocess.run(
        [shutil.which("docker-registry") or "/usr/bin/docker-registry", "--version"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    ).stdout.strip()
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python -m bench.run" + (" --smoke" if cfg.smoke else ""),
        "commit": git("rev-parse", "--short", "HEAD"),
        "work_tree_changed": bool(git("status", "--porcelain", "--untracked-files=no")),
        "python": platform.python_version(),
        "regdata": getattr(regdata, "__version__", None),
        "peers": versions(),
        "registry": registry_version,
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in cfg.__dict__.items()},
    }


def run(cfg: Config) -> dict[str, Any]:
    """Everything; returns the report (also written to ``cfg.out``)."""
    clock = Clock(cfg.limit)
    report: dict[str, Any] = {"meta": _meta(cfg)}
    with tempfile.TemporaryDirectory(prefix="regdata-bench-") as tmp_name:
        tmp = Path(tmp_name)
        isolate(tmp / "home")
        say("starting the registry")
        bed = Bed(start_registry(extra_config=ACCESS_LOG_CONFIG), AccessLog(Path()))
        bed.log = AccessLog(bed.registry.log_path)
        try:
            if cfg.warm:
                bed.memcached = start_memcached()
            say(f"filling {fill.MAIN_REPO} ({cfg.tags} tags)")
            dataset = fill.fill_main(bed.registry.url, cfg.tags)
            report["dataset"] = dataset.as_dict()
            scale_sets = []
            if cfg.scale:
                for size in (cfg.scale_base, cfg.scale):
                    say(f"filling {fill.scale_repo(size)}")
                    scale_sets.append(fill.fill_scale(bed.registry.url, size).as_dict())
            report["scale_datasets"] = scale_sets
            if "wan" in cfg.networks:
                bed.proxy = start_latency_proxy(bed.registry.host, cfg.delay, cfg.proxy_kind)
            cold: dict[str, list[Result]] = {}
            warm: list[WarmResult] = []
            for network in cfg.networks:
                say(f"cold runs, {network}")
                cold[network] = cold_runs(bed, cfg, network, dataset.repo, clock)
            for network in cfg.networks if cfg.warm else ():
                ours = next((r for r in cold[network] if r.contender == "regdata" and r.samples), None)
                warm += warm_runs(
                    bed, cfg, network, dataset.repo, tmp, clock, ours.samples[0].outcome if ours else None
                )
            scale = scale_runs(bed, cfg, clock) if cfg.scale else None
            found = targets(cfg, cold, warm, scale)
            if cfg.profile:
                from .profile import profile_misses

                report["profiles"] = profile_misses(cfg, bed, dataset.repo, found)
        finally:
            bed.close()
    report["meta"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["cold"] = [r.as_dict() for rs in cold.values() for r in rs]
    report["warm"] = [w.as_dict() for w in warm]
    report["scale"] = scale.as_dict() if scale else None
    report["targets"] = [t.as_dict() for t in found]
    report["_print"] = _printed(cfg, cold, warm, scale, found, report)
    return report


def _printed(
    cfg: Config,
    cold: dict[str, list[Result]],
    warm: list[WarmResult],
    scale: ScaleResult | None,
    found: list[Target],
    report: dict[str, Any],
) -> dict[str, str]:
    medians = {n: next((r.median for r in rs if r.contender == "floor"), None) for n, rs in cold.items()}
    ms = round(cfg.delay * 1000)
    all_cold = [r for rs in cold.values() for r in rs]
    lines = [format_table(all_cold, medians.get, ms), ""]
    for network, rs in cold.items():
        ours = next((r for r in rs if r.contender == "regdata" and r.samples), None)
        if ours is None:
            continue
        for r in rs:
            if r.contender in PEERS and r.median and ours.median:
                lines.append(
                    f"  {NETWORK_LABEL[network].format(delay_ms=ms)}: regdata is "
                    f"{r.median / ours.median:.1f}x faster than {r.contender}"
                )
        middle = ours.median_sample()
        if middle and middle.extra.get("limiter"):
            lines.append(
                f"  {network}: regdata's limiter: {middle.extra['limiter']}, "
                f"most in flight {middle.extra.get('max_in_flight')}"
            )
    lines.append("")
    for w in warm:
        middle, cold_mid = w.warm.median_sample(), w.cold.median_sample()
        if middle is None or cold_mid is None:
            continue
        lines.append(
            f"  {NETWORK_LABEL[w.network].format(delay_ms=ms):9} {w.name:26} "
            f"{middle.seconds:7.3f}s  requests {middle.requests.total:5} {middle.requests.by_kind}"
            f"  (filling cold: {cold_mid.seconds:.2f}s, {cold_mid.requests.total} requests)"
            + ("" if w.warm.agrees is not False else f"  ROWS DIFFER: {w.warm.disagreement}")
        )
    if scale is not None:
        lines.append("")
        for size, by in scale.sizes.items():
            per = scale.per_tag(size, "regdata")
            per_floor = scale.per_tag(size, "floor")
            lines.append(
                f"  scale {size:6} tags: regdata {by['regdata'].median or 0:.2f}s "
                f"({(per or 0) * 1000:.3f} ms/tag, peak RSS {scale.peak_rss_mb(size)} MB), floor "
                f"{by['floor'].median or 0:.2f}s ({(per_floor or 0) * 1000:.3f} ms/tag)"
                + (
                    ""
                    if by["regdata"].agrees is not False
                    else f"  ROWS DIFFER: {by['regdata'].disagreement}"
                )
            )
    text = "\n".join(lines)
    return {
        "table": text,
        "targets": format_targets(found),
        "markdown": markdown_table(all_cold, medians.get, ms),
    }


def parse(argv: list[str] | None) -> Config:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="everything tiny (CI)")
    parser.add_argument("--tags", type=int, help="tags of the main repository (250)")
    parser.add_argument("--scale", type=int, help="tags of the scale repository (10000; 0: skip)")
    parser.add_argument("--scale-base", type=int, help="the scale run's reference size (250)")
    parser.add_argument("--repeats", type=int, help="runs of the floor and regdata (5)")
    parser.add_argument("--peer-repeats", type=int, help="runs of each peer (2)")
    parser.add_argument("--warm-repeats", type=int, help="runs of each warm scan (3)")
    parser.add_argument("--scale-repeats", type=int, help="runs at each scale (3)")
    parser.add_argument("--delay", type=float, help="seconds the proxy adds to each request (0.03)")
    parser.add_argument("--only", help="comma-separated contenders: " + ",".join(CONTENDERS))
    parser.add_argument("--networks", help="comma-separated: loopback,wan")
    parser.add_argument("--no-warm", action="store_true", help="skip the warm runs")
    parser.add_argument("--profile", action="store_true", help="profile regdata where it misses a target")
    parser.add_argument("--proxy-kind", choices=("asyncio", "threaded"), help="the latency proxy (asyncio)")
    parser.add_argument("--limit", type=float, help="seconds the whole run may take")
    parser.add_argument("--out", type=Path, help="the JSON report (bench/results/latest.json)")
    args = parser.parse_args(argv)
    cfg = Config.smoke_config() if args.smoke else Config()
    changes: dict[str, Any] = {}
    for name in (
        "tags",
        "scale",
        "scale_base",
        "repeats",
        "peer_repeats",
        "warm_repeats",
        "scale_repeats",
        "delay",
        "proxy_kind",
        "limit",
        "out",
    ):
        value = getattr(args, name)
        if value is not None:
            changes[name] = value
    if args.only:
        changes["contenders"] = tuple(c.strip() for c in args.only.split(",") if c.strip())
        unknown = set(changes["contenders"]) - set(CONTENDERS)
        if unknown:
            parser.error(f"unknown contenders: {', '.join(sorted(unknown))}")
    if args.networks:
        changes["networks"] = tuple(n.strip() for n in args.networks.split(",") if n.strip())
        if set(changes["networks"]) - set(NETWORKS):
            parser.error("networks are loopback and wan")
    if args.no_warm:
        changes["warm"] = False
    changes["profile"] = args.profile
    cfg = replace(cfg, **changes)
    if min(cfg.repeats, cfg.peer_repeats, cfg.warm_repeats, cfg.scale_repeats, cfg.tags) < 1:
        parser.error("repeats and tags must be at least 1")
    return cfg


def main(argv: list[str] | None = None) -> int:
    """Run, print, write the JSON."""
    cfg = parse(argv)
    started = time.monotonic()
    report = run(cfg)
    printed = report.pop("_print")
    report["meta"]["seconds"] = round(time.monotonic() - started, 1)
    print(
        f"\nregdata benchmark: {report['dataset']['tags']} tags in {report['dataset']['repo']} "
        f"({report['dataset']['ci_tags']} CI, {report['dataset']['hub_tags']} Docker Hub), "
        f"median of runs; {report['meta']['cpus']} CPUs, load {report['meta']['load_average_at_start']}"
    )
    print(printed["table"])
    print("\ntargets:")
    print(printed["targets"])
    report["markdown"] = printed["markdown"]
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    cfg.out.write_text(json.dumps(report, indent=1, sort_keys=False, default=str) + "\n")
    print(f"\nwrote {cfg.out} ({report['meta']['seconds']}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
