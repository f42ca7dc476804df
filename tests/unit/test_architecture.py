"""The deploy engine's wiring stays untied: no import cycle anywhere in sme/, and sme/core never imports
upward (sme.deploy, sme.commands, sme.cli) or rich. Counts every import: at module level, inside functions,
and the "sme.…" strings given to import_module/__import__."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "sme"
UPWARD = ("sme.deploy", "sme.commands", "sme.cli", "rich")


def modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imported_names(module: str, path: Path) -> set[str]:
    """Every module name this file imports, however it does it."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and _called(node) in ("import_module", "__import__") and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                names.add(arg.value)
            elif isinstance(arg, ast.JoinedStr):  # f"sme.commands.{name}": the constant prefix names the package
                names.add("".join(v.value for v in arg.values if isinstance(v, ast.Constant)).rstrip("."))
    return names


def _called(call: ast.Call) -> str:
    return getattr(call.func, "attr", getattr(call.func, "id", ""))


def graph() -> dict[str, set[str]]:
    mods = modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for module, path in mods.items():
        for name in imported_names(module, path):
            while name and name not in mods:  # sme.core.models.Desired -> sme.core.models
                name = name.rpartition(".")[0]
            if name and name not in (module, "sme"):
                edges[module].add(name)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_imports_inside_functions_and_import_module_strings(tmp_path):
    path = tmp_path / "probe.py"
    path.write_text("def f():\n    from sme.deploy import deploy\n    importlib.import_module('sme.core.names')\n"
                    "    __import__(f'sme.commands.{x}')\n    from . import steps\n")
    found = imported_names("sme.core.probe", path)
    assert {"sme.deploy", "sme.core.names", "sme.commands", "sme.core.steps"} <= found


def test_cycle_finder_finds_a_planted_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_in_sme():
    found = cycles(graph())
    assert not found, "import cycles (every import counts, also inside functions):\n" + "\n".join(map(str, found))


@pytest.mark.parametrize("module", sorted(m for m in modules() if m.startswith("sme.core")))
def test_core_never_imports_upward_or_rich(module):
    path = modules()[module]
    bad = sorted(n for n in imported_names(module, path) if n.startswith(UPWARD))
    assert not bad, f"{module} imports {bad}: sme.core is the engine; the wiring (sme.deploy) and the CLI use it"


def test_nothing_registers_itself_on_import():
    """No module-level call fills a registry: handler tables are literal dicts, merged where they are used."""
    offenders = []
    for module, path in modules().items():
        for node in ast.parse(path.read_text()).body:
            call = node.value if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) else None
            if call is not None and _called(call) in ("register", "append", "handles"):
                offenders.append(f"{module}:{node.lineno}")
    assert not offenders, f"module-level registration: {offenders}"
