"""The main job end to end on the small subset: sandbox, sample fleet, report, and a faster second run."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import requests

from regdata import cli
from regdata.sandbox.demo import run_demo

NOW = "2018-01-27T12:00:00Z"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def days(later: str, earlier: str) -> float:
    return (pd.Timestamp(later) - pd.Timestamp(earlier)) / pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    work = tmp_path_factory.mktemp("demo")
    # One port for every run: the cache keys name the host answering, port included.
    port = free_port()
    first_out, second_out = io.StringIO(), io.StringIO()
    first = run_demo(
        work / "out" / "report.html", workdir=work / "state", small=True, port=port, stream=first_out, now=NOW
    )
    second = run_demo(
        work / "out" / "report.html",
        workdir=work / "state",
        small=True,
        port=port,
        stream=second_out,
        now=NOW,
    )
    return {
        "first": first,
        "second": second,
        "first_out": first_out.getvalue(),
        "second_out": second_out.getvalue(),
        "work": work,
        "port": port,
    }


def test_freshness_of_the_sample_fleet_as_worked_out_by_hand(runs: dict) -> None:
    # Created times are the amd64 images' newest history entries in data/ (Docker Hub's).
    frame = runs["first"].freshness.set_index("image")
    expected = {
        "nginx:1.12.2": ("behind", "1.13.8", 1, days("2017-12-26T18:17:01Z", "2017-12-12T05:16:15Z")),
        "python:3.5-slim": ("behind", "3.6.4-slim", 1, days("2017-12-21T01:38:57Z", "2017-12-12T06:45:52Z")),
        "node:6.12.3-alpine": (
            "behind",
            "9.4.0-alpine",
            2,
            days("2018-01-11T00:40:49Z", "2018-01-10T00:56:53Z"),
        ),
        "redis:3.2.11-alpine": (
            "behind",
            "4.0.7-alpine",
            1,
            days("2018-01-24T22:36:05Z", "2018-01-24T00:18:13Z"),
        ),
    }
    for image, (status, candidate, newer, lag) in expected.items():
        row = frame.loc[image]
        assert (row["status"], row["candidate_tag"], row["newer_versions"]) == (status, candidate, newer), (
            image
        )
        assert row["lag_days"] == pytest.approx(lag, abs=1e-6), image
    # Pinned on 2017-12-15: the tag was rebuilt on 2017-12-26 from 2017-12-12's image.
    nginx = frame.loc[next(i for i in frame.index if i.startswith("nginx:1.13@"))]
    assert nginx["status"] == "behind" and bool(nginx["tag_moved"]) and not bool(nginx["repush"])
    assert nginx["lag_days"] == pytest.approx(days("2017-12-26T18:17:01Z", "2017-12-12T05:15:03Z"), abs=1e-6)
    # Pinned while the index was still being re-pushed: another digest, the same image.
    redis = frame.loc[next(i for i in frame.index if i.startswith("docker.io/library/redis:4.0-alpine@"))]
    assert (redis["status"], bool(redis["tag_moved"]), bool(redis["repush"])) == ("current", True, True)
    assert frame.loc["postgres:10.1", "status"] == "error"
    assert frame.loc["postgres:10.1", "reason"].startswith("NotFound: 404")
    assert frame.loc["${REGISTRY}/shop/app:1.4", "status"] == "error"
    assert frame.loc["debian:stretch-slim", "status"] == "current"
    assert len(frame) == 17


def test_first_run_prints_the_table_and_the_figures(runs: dict) -> None:
    out: str = runs["first_out"]
    lines = out.splitlines()
    assert lines[0].startswith("regdata demo: a sandbox registry on 127.0.0.1")
    assert any(line.startswith("fill      ") and "tags pushed" in line for line in lines)
    header = next(i for i, line in enumerate(lines) if line.startswith("status "))
    assert lines[header + 1].startswith("behind ")  # stale first
    assert any(line.startswith("report    ") and "7 behind" in line for line in lines)
    assert any(line.startswith("requests  ") for line in lines)
    assert "first run:" in out and "second run" not in out
    assert runs["first"].figures["manifest_gets"] > 0


def test_second_run_is_answered_by_the_cache_and_says_so(runs: dict) -> None:
    out: str = runs["second_out"]
    second = runs["second"]
    assert "already there" in out
    assert second.fill.pushed == 0
    assert second.figures["manifest_gets"] == 0
    assert second.figures["cached"] > runs["first"].figures["sent"] / 2
    assert "second run: 0 manifest GETs (first run: " in out
    assert second.previous is not None


def test_report_is_written(runs: dict) -> None:
    report: Path = runs["first"].report
    text = report.read_text()
    assert "Stale images" in text and "data:image/png;base64," in text
    assert "nginx:1.12.2" in text and "postgres:10.1" in text


def test_cli_demo(runs: dict, capsys: pytest.CaptureFixture[str]) -> None:
    work: Path = runs["work"]
    target = work / "cli" / "report.md"
    code = cli.main(
        [
            "demo",
            "--small",
            "--workdir",
            str(work / "state"),
            "--port",
            str(runs["port"]),
            "-o",
            str(target),
            "--now",
            NOW,
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "second run: 0 manifest GETs" in out
    assert target.is_file()


def test_sandbox_command_prints_its_host_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    process = subprocess.Popen(
        [sys.executable, "-m", "regdata", "sandbox", "--port", "0", "--root", str(tmp_path), "--no-fill"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        host = process.stdout.readline().strip()
        assert host.startswith("127.0.0.1:")
        session = requests.Session()
        session.trust_env = False
        assert session.get(f"http://{host}/v2/", timeout=5).status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    with pytest.raises(requests.ConnectionError):
        session.get(f"http://{host}/v2/", timeout=2)
