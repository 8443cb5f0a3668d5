"""The notebooks of ``notebooks/`` run end to end against the sandbox registry, offline (nbclient).

All notebooks run at once, each in its own kernel with its own sandbox (a free port, a temporary
root), so the module takes about as long as the slowest notebook.  A failing cell fails its notebook's
test with the cell's traceback.  Set ``REGDATA_NOTEBOOKS_OUT`` to a directory to keep the executed
notebooks there, plots included (the committed ones have their outputs cleared).
"""

from __future__ import annotations

import ast
import base64
import os
import re
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb"))
KERNEL = "python3"
# A cell takes a few seconds; the margin is for a loaded CI machine running three kernels at once.
CELL_TIMEOUT = 120

# The public API: the package and its documented submodules.  regdata.analysis.freshness is listed for
# classify_changes, repush_share and cadence_summary, which the package does not export (yet).
PUBLIC_MODULES = {
    "regdata",
    "regdata.sandbox",
    "regdata.analysis.plots",
    "regdata.instrument.summary",
    "regdata.report",
    "regdata.analysis.freshness",
}

# Per notebook: the least number of plots, and texts its outputs must show.
EXPECTED: dict[str, tuple[int, tuple[str, ...]]] = {
    "fleet-freshness.ipynb": (
        2,
        (
            "repositories, ",  # the scan summed up
            "could not read docker.io/library/postgres",
            "tag 1.13 was rebuilt 14.5 days after the pinned image",
            "re-pushed since the pin, same image",
            "of the digest changes were re-pushes",
            "report.html: ",
        ),
    ),
    "explore-repository.ipynb": (
        3,
        (
            "32 tags, 6 platforms, 112 rows",
            "1.12.2-alpine",  # the alpine track's newest build, not its highest version
            "ADD file:",  # the history of nginx:1.13.8
            "alpine-perl",
        ),
    ),
    "requests-and-cache.ipynb": (
        1,
        (
            "warm scan: 0 HTTP requests",
            "the warm frames equal the cold ones: True",
            "manifest_head",
            "redis:4.0-alpine",  # a tag the warm registry sees late
        ),
    ),
}


@dataclass
class Run:
    """One executed notebook, or why it failed."""

    notebook: Any
    error: BaseException | None = None


def _kernel() -> str:
    """The ``python3`` kernel, its spec installed into this interpreter's prefix if missing."""
    from jupyter_client.kernelspec import find_kernel_specs

    if KERNEL not in find_kernel_specs():
        from ipykernel.kernelspec import install

        install(kernel_name=KERNEL, prefix=sys.prefix)
    return KERNEL


def _execute(path: Path, kernel: str, env: dict[str, str], out: Path | None) -> Run:
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name=kernel,
        resources={"metadata": {"path": str(path.parent)}},
    )
    try:
        client.execute(env=env)
        return Run(notebook)
    except Exception as exc:  # reported by the notebook's own test
        return Run(notebook, exc)
    finally:
        if out is not None:
            nbformat.write(notebook, out / path.name)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    kernel = _kernel()
    home = tmp_path_factory.mktemp("notebooks")
    env = {
        **os.environ,
        "MPLBACKEND": "Agg",  # no display; the notebooks' %matplotlib inline still renders PNG outputs
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "IPYTHONDIR": str(home / "ipython"),  # kernels at once would share ~/.ipython's history database
    }
    wanted = os.environ.get("REGDATA_NOTEBOOKS_OUT")
    out = Path(wanted) if wanted else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=len(NOTEBOOKS) or 1) as pool:
        futures = {name: pool.submit(_execute, NOTEBOOK_DIR / name, kernel, env, out) for name in NOTEBOOKS}
        yield {name: future.result() for name, future in futures.items()}


def _code_cells(notebook: Any) -> list[Any]:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _texts(notebook: Any) -> str:
    parts = []
    for cell in _code_cells(notebook):
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                parts.append(output.text)
            elif output.output_type in ("execute_result", "display_data"):
                parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def _pngs(notebook: Any) -> list[bytes]:
    return [
        base64.b64decode(output["data"]["image/png"])
        for cell in _code_cells(notebook)
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]


def test_every_notebook_is_checked() -> None:
    assert len(NOTEBOOKS) >= 3
    assert set(NOTEBOOKS) == set(EXPECTED), "add the new notebook's expected outputs to EXPECTED"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_committed_clean(name: str) -> None:
    """Outputs cleared (small diffs), public imports only, its own sandbox started and stopped."""
    notebook = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    nbformat.validate(notebook)
    cells = _code_cells(notebook)
    assert all(not cell.outputs and cell.execution_count is None for cell in cells), "clear the outputs"
    source = "\n".join(cell.source for cell in cells)
    python = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("%"))
    imported = set()
    for node in ast.walk(ast.parse(python)):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    private = {m for m in imported if m.split(".")[0] == "regdata"} - PUBLIC_MODULES
    assert not private, f"imports beyond the public API: {sorted(private)}"
    assert "Sandbox.start(port=0, root=" in source
    assert cells[-1].source.count("sandbox.stop()") == 1


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(runs: dict[str, Run], name: str) -> None:
    run = runs[name]
    if run.error is not None:
        raise run.error
    cells = _code_cells(run.notebook)
    assert all(cell.execution_count is not None for cell in cells)
    texts = _texts(run.notebook)
    plots, needles = EXPECTED[name]
    missing = [needle for needle in needles if needle not in texts]
    assert not missing, f"outputs lack {missing}"
    pngs = _pngs(run.notebook)
    assert len(pngs) >= plots
    assert all(png.startswith(b"\x89PNG") and len(png) > 5_000 for png in pngs)
    # Warnings in a notebook are what breaks in the next pandas or matplotlib; tqdm's advice to
    # install ipywidgets is no fault of the notebook.
    warnings = [
        line
        for line in texts.splitlines()
        if re.search(r"\b\w*Warning\b", line) and "TqdmWarning" not in line
    ]
    assert not warnings, warnings
