"""The public face: a small, sorted __all__, every member documented, README examples that run."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import regdata
from tests.support.builder import Builder, ImageSpec
from tests.support.registry_server import RegistryServer

ROOT = Path(__file__).resolve().parent.parent


def test_all_is_sorted_and_complete() -> None:
    assert regdata.__all__ == sorted(regdata.__all__)
    for name in regdata.__all__:
        assert hasattr(regdata, name), name
    public = {n for n in dir(regdata) if not n.startswith("_") and not inspect.ismodule(getattr(regdata, n))}
    assert public - set(regdata.__all__) == set()


def test_public_members_have_docstrings() -> None:
    for name in regdata.__all__:
        member = getattr(regdata, name)
        if not (inspect.isclass(member) or inspect.isfunction(member)):
            continue
        assert inspect.getdoc(member), f"{name} has no docstring"
        if inspect.isclass(member):
            for attr, value in vars(member).items():
                if attr.startswith("_") or not callable(value):
                    continue
                assert inspect.getdoc(value), f"{name}.{attr} has no docstring"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_examples_run(registry: RegistryServer, builder: Builder) -> None:
    builder.push_image("team/app", ImageSpec(created="2024-01-02T03:04:05Z"), tags=["1.0"])
    blocks = _python_blocks((ROOT / "README.md").read_text())
    assert blocks
    for block in blocks:
        code = block.replace("127.0.0.1:5000", registry.host)
        # Examples name hosts a test machine cannot reach: check they compile, run the rest.
        if "10.0.0.5" in code or "/etc/ssl" in code:
            compile(code, "README.md", "exec")
            continue
        namespace: dict[str, object] = {}
        try:
            exec(compile(code, "README.md", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the message is the point
            pytest.fail(f"README example failed: {exc!r}\n{code}")


def test_exports_match_what_type_checkers_see() -> None:
    # The lazy table and the TYPE_CHECKING imports name the same things from the same modules.
    import ast

    tree = ast.parse((ROOT / "regdata" / "__init__.py").read_text())
    guarded = next(n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING")
    seen = {
        alias.name: "." * node.level + (node.module or "")
        for node in guarded.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert seen == regdata._EXPORTS


def test_cli_starts_without_heavy_imports(registry: RegistryServer, builder: Builder) -> None:
    # `regdata --version`, `--help` and `tags` answer before pandas could even be imported.
    import subprocess
    import sys

    builder.push_image("fast/start", ImageSpec(created="2024-01-02T03:04:05Z"), tags=["1.0", "2.0"])
    probe = (
        "import sys\n"
        "from regdata.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "heavy = {m.split('.')[0] for m in sys.modules} & {'pandas', 'numpy', 'matplotlib', 'pyarrow'}\n"
        "print('HEAVY', sorted(heavy), file=sys.stderr)\n"
    )
    for argv in (["--version"], ["--help"], ["tags", "--cache", "none", f"{registry.host}/fast/start"]):
        done = subprocess.run(
            [sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=60, cwd=ROOT
        )
        assert "HEAVY []" in done.stderr, (argv, done.stderr)
    assert sorted(done.stdout.split()) == ["1.0", "2.0", "tag"]
