"""Counts that show the package's shape, for a source tree: import cycles, imports inside
functions, ``dict[str, Any]`` annotations, modules over 450 lines, README lines.

    .venv/bin/python benchmarks/house_counts.py                      # this checkout
    .venv/bin/python benchmarks/house_counts.py /tmp/before --json   # e.g. a git archive

Imports are read with ``ast`` (nothing is imported). A cycle is a strongly connected component
of the module graph (module-level and function-level imports, ``TYPE_CHECKING`` ones too; a
submodule's implicit import of its own package is not an edge). "Heavy" lazy imports are those
of the libraries tests/test_architecture.py allows inside functions.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

PACKAGE = "pytest_neuronperf"
LONG_MODULE = 450
HEAVY = frozenset({
    "torch", "tensorflow", "keras", "jax", "transformers", "matplotlib", "scipy",
    "torch_neuron", "torch_neuronx", "tensorflow_neuron", "tensorflow_neuronx", "neuronxcc",
    "libneuronxla", "xdist", "execnet",
})


def modules_of(root: Path) -> dict[str, Path]:
    """Module name -> file, for every ``.py`` of the package under ``root``."""
    found = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def import_statements(path: Path) -> list[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement of a file, and whether it sits inside a function."""
    found: list[tuple[ast.Import | ast.ImportFrom, bool]] = []

    def walk(node: ast.AST, inside: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                found.append((child, inside))
            walk(child, inside or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef))

    walk(ast.parse(path.read_text()), False)
    return found


def targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom,
            modules: dict[str, Path]) -> list[str]:
    """The modules an import statement names."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    origin = node.module or ""
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - node.level + 1]
        origin = ".".join(base + ([node.module] if node.module else []))
    return [f"{origin}.{a.name}" if f"{origin}.{a.name}" in modules else origin
            for a in node.names]


def owner(target: str, modules: dict[str, Path]) -> str | None:
    """The package module an import target is in."""
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target or None


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []
    sys.setrecursionlimit(10_000)

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def counts(root: Path) -> dict[str, object]:
    """The figures for the tree at ``root``."""
    modules = modules_of(root)
    edges: dict[str, set[str]] = {}
    inside = inside_heavy = 0
    for module, path in modules.items():
        for node, in_function in import_statements(path):
            names = targets(module, path.name == "__init__.py", node, modules)
            if in_function:
                inside += 1
                inside_heavy += all(n.split(".")[0] in HEAVY for n in names)
            for name in names:
                target = owner(name, modules) if name.startswith(PACKAGE) else None
                if target and target != module and not module.startswith(target + "."):
                    edges.setdefault(module, set()).add(target)
    components = strongly_connected(edges)
    lines = {m: len(p.read_text().splitlines()) for m, p in modules.items()}
    readme = root / "README.md"
    return {
        "modules": len(modules),
        "import_cycles": len(components),
        "modules_in_cycles": sum(len(c) for c in components),
        "largest_cycle": max((len(c) for c in components), default=0),
        "imports_inside_functions": inside,
        "of_which_heavy_libraries": inside_heavy,
        "dict_str_any": sum(p.read_text().count("dict[str, Any]") for p in modules.values()),
        "modules_over_450_lines": sorted(m for m, n in lines.items() if n > LONG_MODULE),
        "readme_lines": len(readme.read_text().splitlines()) if readme.exists() else None,
        "cycles": components,
    }


def main() -> None:
    """Print the counts of each tree given (this checkout by default)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="*", type=Path,
                        default=[Path(__file__).resolve().parent.parent])
    parser.add_argument("--json", action="store_true", help="one JSON line per tree")
    args = parser.parse_args()
    for root in args.roots:
        figures = counts(root)
        if args.json:
            print(json.dumps({"root": str(root), **figures}))
            continue
        print(root)
        for key, value in figures.items():
            if key != "cycles":
                print(f"  {key}: {value}")
        for component in figures["cycles"]:  # type: ignore[attr-defined]
            print(f"  cycle: {' '.join(m.removeprefix(PACKAGE + '.') for m in component)}")


if __name__ == "__main__":
    main()
