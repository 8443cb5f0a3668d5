"""bench.many's smoke run, so it cannot rot: end to end, every contender the same frame.

No time is asserted (the benchmark shows speed); the correctness targets are:
the same rows everywhere, the host limit held at the proxy, a second
memcached run with no request.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("distributed")
ROOT = Path(__file__).resolve().parents[1]


def test_bench_many_smoke(tmp_path: Path) -> None:
    out = tmp_path / "many.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "bench.many", "--smoke", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(out.read_text())
    contenders = {(r["network"], r["contender"]) for r in report["runs"]}
    assert {
        ("loopback", "loop"),
        ("loopback", "one process"),
        ("loopback", "cluster"),
        ("wan", "loop"),
        ("wan", "one process"),
        ("wan", "cluster"),
    } <= contenders
    assert all(r["same_rows"] for r in report["runs"] if r["same_rows"] is not None)
    targets = {t["name"]: t for t in report["targets"]}
    assert targets["second cluster run on memcached: requests"]["value"] == 0
    assert targets["+30 ms: cluster's most requests in flight at the proxy"]["met"]
    assert "| +30 ms | cluster |" in done.stdout
