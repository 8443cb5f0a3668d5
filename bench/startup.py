"""How long the ``regdata`` command takes to answer, beside skopeo, in the same run.

    python -m bench.startup              # 10 runs of each command, medians
    python -m bench.startup --runs 3     # quicker

A CLI user pays the interpreter and the imports on every call, so this times
whole processes: ``regdata --version``, ``regdata tags`` against a registry
this run starts on 127.0.0.1 (cold: ``--cache none``, one tag-list request
like skopeo's; and with the default SQLite cache, warm), and ``skopeo
list-tags`` on the same repository.  Wall time from the parent, CPU time from
the children's rusage; the runs are interleaved so that a busy moment of the
machine falls on every command alike.  Writes ``bench/results/startup.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support.builder import Builder, ImageSpec
from tests.support.registry_server import start_registry

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
REPO = "bench/startup"
TAGS = 50
TARGET_TAGS_WALL = 0.35  # seconds, median of `regdata tags` (issue 12)


def _regdata() -> list[str]:
    """The console script beside this interpreter, as a user runs it; else ``python -m regdata``."""
    script = Path(sys.executable).parent / "regdata"
    return [str(script)] if script.exists() else [sys.executable, "-m", "regdata"]


def _time(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, cwd="/tmp")
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr.strip()[:300]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def run(runs: int) -> dict[str, Any]:
    """Time each command ``runs`` times, interleaved; the figures as a dict."""
    work = Path(tempfile.mkdtemp(prefix="regdata-startup-"))
    server = start_registry(workdir=work / "registry")
    try:
        builder = Builder(server.url)
        for i in range(TAGS):
            builder.push_image(
                REPO, ImageSpec(created=f"2024-01-{i % 28 + 1:02d}T00:00:00Z"), tags=[f"1.{i}"]
            )
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGDATA_")}
        env["XDG_CACHE_HOME"] = str(work / "cache")  # the default SQLite cache, this run's own
        target = f"{server.host}/{REPO}"
        commands: dict[str, list[str]] = {
            "regdata --version": [*_regdata(), "--version"],
            "regdata tags (no cache)": [*_regdata(), "tags", "--cache", "none", target],
            "regdata tags (SQLite cache, warm)": [*_regdata(), "tags", target],
        }
        skopeo = shutil.which("skopeo")
        if skopeo:
            commands["skopeo list-tags"] = [skopeo, "list-tags", "--tls-verify=false", f"docker://{target}"]
        for argv in commands.values():  # a first run each: page cache, the SQLite file
            _time(argv, env)
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(runs):
            for name, argv in commands.items():
                wall, cpu, out = _time(argv, env)
                samples[name].append((wall, cpu))
                if "tags" in name and "regdata" in name:
                    assert len(out.split()) == TAGS + 1, out[:200]  # the header, then every tag
        figures = {
            name: {
                "wall_median_s": round(statistics.median(w for w, _ in s), 4),
                "cpu_median_s": round(statistics.median(c for _, c in s), 4),
                "wall_min_s": round(min(w for w, _ in s), 4),
                "runs": len(s),
            }
            for name, s in samples.items()
        }
        return {
            "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "tags": TAGS,
            "commands": {name: " ".join(argv) for name, argv in commands.items()},
            "figures": figures,
            "target": {
                "what": "regdata tags (no cache), median wall",
                "limit_s": TARGET_TAGS_WALL,
                "met": figures["regdata tags (no cache)"]["wall_median_s"] <= TARGET_TAGS_WALL,
            },
        }
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def format_table(result: dict[str, Any]) -> str:
    """The figures as a Markdown table, with ratios to skopeo's."""
    figures = result["figures"]
    base = figures.get("skopeo list-tags", {}).get("wall_median_s")
    lines = ["| command | wall (median) | CPU (median) | vs skopeo |", "|---|---|---|---|"]
    for name, f in figures.items():
        ratio = f"{f['wall_median_s'] / base:.1f}x" if base else "n/a"
        lines.append(f"| `{name}` | {f['wall_median_s']:.3f} s | {f['cpu_median_s']:.3f} s | {ratio} |")
    target = result["target"]
    lines.append("")
    lines.append(f"target: {target['what']} <= {target['limit_s']} s: {'met' if target['met'] else 'MISSED'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run, print the table, write bench/results/startup.json; exit 1 when the target is missed."""
    parser = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="process runs per command (default 10)")
    parser.add_argument("--out", type=Path, default=RESULTS / "startup.json")
    args = parser.parse_args(argv)
    result = run(args.runs)
    print(format_table(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["target"]["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
