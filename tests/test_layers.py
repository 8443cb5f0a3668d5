"""The house: no import cycles between regdata's modules, and each layer imports only those below it.

Imports under TYPE_CHECKING and inside functions count too: a cycle that only a
lazy import hides is still two modules that each need the other to be understood.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "regdata"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The regdata modules a file imports, anywhere in it (a package import counts as its __init__)."""
    found: set[str] = set()
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            # "from regdata.x import y": y may be a module of its own
            names = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in modules else stem for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != me:
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(files)
    edges = {m: imports_of(p, modules) for m, p in files.items()}
    # A package's __init__ that only re-exports is entered by every import of a submodule:
    # what counts is the module named, so drop edges to "regdata" itself (the lazy table).
    for m in edges:
        edges[m].discard("regdata")
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles() -> None:
    found = cycles(graph())
    assert found == [], "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


# Lowest first: a layer may import only layers of a lower rank (README, "Design").
RANKS = {
    "errors": 0,
    "context": 1,
    "frames": 1,
    "oci": 1,
    "credentials": 2,
    "instrument": 3,
    "transport": 4,
    "cache": 5,
    "client": 6,
    "analysis": 7,
    "report": 8,
    "sandbox": 9,
    "testing": 9,
    "cli": 10,
    "__main__": 11,
    "regdata": 12,
}
# Prometheus metrics can wrap a cache backend: the type only, under TYPE_CHECKING.
UPWARD = {("instrument", "cache")}


def test_layers_import_only_downward() -> None:
    def layer(module: str) -> str:
        parts = module.split(".")
        return parts[1] if len(parts) > 1 else "regdata"

    wrong = sorted(
        f"{a} imports {b}"
        for a, targets in graph().items()
        for b in targets
        if layer(a) != layer(b) and RANKS[layer(b)] >= RANKS[layer(a)] and (layer(a), layer(b)) not in UPWARD
    )
    assert wrong == [], "imports against the layers:\n" + "\n".join(wrong)
