"""The package as a user installs it: a wheel, pip-installed in a fresh virtual environment, run from /tmp.

Nothing here reaches the network: the wheel is built without build isolation
(setuptools comes from the test environment, the test extra names it) and
installed with --no-index.  Its dependencies are borrowed from the test
environment through a plain path entry, which does not run that environment's
.pth files: this checkout's editable install stays out of sight, so regdata can
only come from the wheel.
"""

from __future__ import annotations

import os
import shutil
import site
import socket
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _clean_env() -> dict[str, str]:
    # A PYTHONPATH naming this checkout would make pip think regdata is installed already.
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    # From a copy: setuptools reuses a checkout's build/ folder, stale files and all.
    source = work / "source"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "out", ".mypy_cache", ".ruff_cache"
        ),
    )
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(work / "dist"),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=_clean_env(),
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = (work / "dist").glob("regdata-*.whl")

    env = work / "env"
    venv.EnvBuilder(with_pip=True, symlinks=True).create(env)  # ensurepip: offline
    python = env / "bin" / "python"
    install = subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
        env=_clean_env(),
    )
    assert install.returncode == 0, install.stdout + install.stderr
    target = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            text=True,
            env=_clean_env(),
        ).strip()
    )
    borrowed = [p for p in (sysconfig.get_paths()["purelib"], *site.getsitepackages()) if Path(p).is_dir()]
    (target / "zz-borrowed-dependencies.pth").write_text("\n".join(dict.fromkeys(borrowed)) + "\n")
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(env: Path, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    clean = _clean_env()
    clean["PATH"] = f"{env / 'bin'}:{clean.get('PATH', '/usr/bin:/bin')}"
    return subprocess.run(
        [str(env / "bin" / "regdata"), *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd="/tmp",
        env=clean,
    )


def test_version_comes_from_the_wheel(installed: Path) -> None:
    done = _run(installed, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "regdata 0.1.0"
    where = subprocess.check_output(
        [installed / "bin" / "python", "-c", "import regdata; print(regdata.__file__)"],
        text=True,
        cwd="/tmp",
        env=_clean_env(),
    )
    assert where.startswith(str(installed)), where


def test_demo_runs_from_tmp_with_the_data_the_wheel_carries(installed: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    done = _run(
        installed,
        "demo",
        "--small",
        "--port",
        str(free_port()),
        "--workdir",
        str(tmp_path / "state"),
        "-o",
        str(report),
        "--now",
        "2018-01-27T12:00:00Z",
        "--quiet",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nginx" in done.stdout
    assert report.stat().st_size > 10_000
