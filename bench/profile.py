"""Where regdata's time goes when it misses a target: py-spy over a scan in a fresh process.

py-spy samples every thread from outside (pyinstrument sees only the thread
that started it, and a scan runs on a pool), with ``--gil``: only the thread
holding the GIL is sampled, so the profile is the client's CPU, the resource
a Python reader of a registry runs out of first.  Two summaries per profile:

- by *library*, the code at the top of each sampled stack (requests, urllib3,
  http.client, json, pandas, regdata's own modules...);
- by *regdata function*, the innermost regdata frame of each sample: which of
  our calls spent the time, the libraries it called included;
- inclusive: the share of samples with a regdata function anywhere on the stack.

``python -m bench.profile --host 127.0.0.1:5000 --repo bench/app`` profiles a
registry already filled; ``python -m bench.run --profile`` does it for each
network where regdata missed its target.  Raw stacks go to
``bench/results/profiles/`` (not committed: bench/.gitignore).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .report import Target
    from .run import Bed, Config

__all__ = ["profile_misses", "profile_scan", "summarize"]

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ROOT / "bench" / "results" / "profiles"
_FRAME = re.compile(r"^(?P<func>.*) \((?P<path>[^()]*):(?P<line>\d+)\)$")
_LIBS = (
    ("/requests/", "requests"),
    ("/urllib3/", "urllib3"),
    ("/http/client.py", "http.client"),
    ("/email/", "http.client (email headers)"),
    ("/socket.py", "socket"),
    ("/ssl.py", "ssl"),
    ("/json/", "json"),
    ("/pandas/", "pandas"),
    ("/numpy/", "numpy"),
    ("/concurrent/futures/", "concurrent.futures"),
    ("/threading.py", "threading"),
    ("/queue.py", "queue"),
    ("/hashlib.py", "hashlib"),
    ("/dataclasses.py", "dataclasses"),
    ("/urllib/parse.py", "urllib.parse"),
    ("/re/", "re"),
    ("/logging/", "logging"),
)


def _frames(stack: str) -> list[tuple[str, str]]:
    out = []
    for part in stack.split(";"):
        match = _FRAME.match(part.strip())
        if match:
            out.append((match.group("func"), match.group("path")))
        else:
            out.append((part.strip(), ""))
    return out


def _library(path: str) -> str:
    if "/regdata/" in path:
        return "regdata." + path.split("/regdata/", 1)[1].removesuffix(".py").replace("/", ".")
    if "/bench/" in path:
        return "bench (the harness)"
    for needle, name in _LIBS:
        if needle in path:
            return name
    return Path(path).name or "(native)"


def summarize(raw: str, top: int = 15) -> dict[str, Any]:
    """Percentages by library (leaf) and by innermost regdata function, from py-spy's raw output.

    Only the scan's samples count (see below); ``samples`` is how many.
    """
    by_lib: Counter[str] = Counter()
    by_ours: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        # The scan only: its pool's threads, and the main thread inside get_repository
        # (not the imports before it, nor the harness reading the request log after).
        if not (stack.startswith("Thread._bootstrap ") or "Registry.get_repository " in stack):
            continue
        count = int(count_text)
        total += count
        frames = _frames(stack)
        by_lib[_library(frames[-1][1]) if frames else "(none)"] += count
        ours = next(
            (f"{_library(p)}.{f}" for f, p in reversed(frames) if "/regdata/" in p), "(outside regdata)"
        )
        by_ours[ours] += count
        for name in {f"{_library(p)}.{f}" for f, p in frames if "/regdata/" in p}:
            inclusive[name] += count

    def table(counter: Counter[str]) -> list[list[Any]]:
        return [[name, round(100 * n / total, 1)] for name, n in counter.most_common(top)] if total else []

    return {
        "samples": total,
        "by_library_pct": table(by_lib),
        "by_regdata_function_pct": table(by_ours),
        "inclusive_regdata_function_pct": table(inclusive),
    }


def profile_scan(
    host: str, repo: str, name: str, rate: int = 250, cache: str | None = None
) -> dict[str, Any]:
    """Run bench.worker under ``py-spy record --gil`` and summarize; raw stacks saved under PROFILES."""
    spy = shutil.which("py-spy")
    if spy is None:
        return {"error": "py-spy is not installed (pip install py-spy)"}
    PROFILES.mkdir(parents=True, exist_ok=True)
    raw_path = PROFILES / f"{name}.txt"
    cmd = [
        spy,
        "record",
        "--gil",
        "--full-filenames",
        "--format",
        "raw",
        "--rate",
        str(rate),
        "--output",
        str(raw_path),
        "--",
        sys.executable,
        "-m",
        "bench.worker",
        "--host",
        host,
        "--repo",
        repo,
    ]
    if cache:
        cmd += ["--cache", cache]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0 or not raw_path.exists():
        return {"error": f"py-spy failed: {done.stderr.strip()[-500:]}"}
    # py-spy writes its own lines to stdout too: the worker's is the JSON one.
    scan = json.loads(next(line for line in reversed(done.stdout.splitlines()) if line.startswith("{")))
    return {
        "raw": str(raw_path.relative_to(ROOT)),
        "scan_seconds_under_profiler": round(scan["seconds"], 3),
        **summarize(raw_path.read_text()),
    }


def profile_misses(cfg: Config, bed: Bed, repo: str, targets: list[Target]) -> dict[str, Any]:
    """Profile regdata on each network where its ratio to the floor missed the target."""
    out: dict[str, Any] = {}
    for target in targets:
        if "regdata / floor" not in target.name or target.met is not False:
            continue
        network = "loopback" if target.name.startswith("loopback") else "wan"
        out[network] = profile_scan(bed.host(network), repo, f"regdata-{network}")
    return out


def main(argv: list[str] | None = None) -> None:
    """Profile one scan of an already filled registry; print the summary as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--repo", required=True)
    parser.add_argument("--name", default="regdata")
    parser.add_argument("--cache", help="a cache URL (profile a warm scan: fill it first)")
    parser.add_argument("--rate", type=int, default=250, help="samples a second")
    args = parser.parse_args(argv)
    if not args.host.startswith("127."):
        parser.error("loopback only")
    json.dump(profile_scan(args.host, args.repo, args.name, args.rate, args.cache), sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
