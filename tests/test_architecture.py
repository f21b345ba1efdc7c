"""The package's rooms and the direction of their imports, read from the source (ast): no import
cycle, no upward import between layers, and imports inside functions only for heavy or
optional libraries (docs/architecture.md has the room map)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "pytest_neuronperf"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("entry points: the pytest plugin and the command line",
     ("plugin", "cli", "__main__")),
    ("the public calls", ("api", "torch", "tensorflow", "cpu")),
    ("compiling a model index", ("compiling",)),
    ("the run history: store, change points, trend table and page, import", ("history",)),
    ("outputs: tables, files, HTML, Markdown, the tuning table", ("reporting", "tuning")),
    ("explaining a regression: profile runs, their diff, its page", ("profiling",)),
    ("verdicts and the statistics they rest on", ("gating",)),
    ("the engine: planning and measuring, parent side", ("engine",)),
    ("the model process (child side)", ("child",)),
    ("framework adapters, compilers, accuracy metrics, model indexes",
     ("frameworks", "compilers", "evaluation", "model_index")),
    ("the plain-data types both sides share: specs and pipe messages", ("protocol",)),
    ("device backends", ("devices",)),
    ("the bottom: report keys, the metric table, how a figure is written, console text, "
     "safe files",
     ("reports", "metrics", "formatting", "logs", "safe_files", "")),
]
"""Top to bottom: a module imports from its own layer or a lower one, never from a higher one."""

LAZY_LIBRARIES = frozenset({
    "torch", "tensorflow", "keras", "jax", "transformers", "matplotlib", "scipy",
    "torch_neuron", "torch_neuronx", "tensorflow_neuron", "tensorflow_neuronx", "neuronxcc",
    "libneuronxla", "xdist", "execnet", "httpx", "sqlalchemy", "psycopg", "ruptures",
})
"""Heavy or optional libraries a function may import when it needs them (and the package's
modules that import one of them at module level)."""
LAZY_MODULES = frozenset({"pytest_neuronperf.plugin.fixture"})
"""The package's modules a function may import: the fixture object pulls the measuring engine
and compile(), which a pytest run without perf tests never needs."""


@dataclass(frozen=True)
class Import:
    """One import statement's target as the module that runs it sees it."""

    source: str
    target: str
    line: int
    in_function: bool
    type_only: bool


def module_name(path: Path) -> str:
    """``pytest_neuronperf/engine/runner.py`` -> ``pytest_neuronperf.engine.runner``."""
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def targets(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The modules an import statement loads (``from a import b`` is ``a.b`` when b is one)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".")
        if MODULES[module].name != "__init__.py":
            base = base[:-1]
        base = base[: len(base) - node.level + 1]
        origin = ".".join(base + ([node.module] if node.module else []))
    else:
        origin = node.module or ""
    return [f"{origin}.{a.name}" if f"{origin}.{a.name}" in MODULES else origin
            for a in node.names]


def imports_of(module: str) -> Iterator[Import]:
    """Every import statement of ``module``, with where it sits."""
    tree = ast.parse(MODULES[module].read_text(), str(MODULES[module]))

    def walk(node: ast.AST, in_function: bool, type_only: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                for target in targets(module, child):
                    yield Import(module, target, child.lineno, in_function, type_only)
                continue
            checking = (isinstance(child, ast.If)
                        and ast.unparse(child.test).endswith("TYPE_CHECKING"))
            yield from walk(child, in_function or isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda), type_only or checking)

    yield from walk(tree, False, False)


def package_module(target: str) -> str | None:
    """The package module an import target names (a name inside it counts as the module)."""
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


ALL = [i for module in MODULES for i in imports_of(module)]
INTERNAL = [(i, package_module(i.target)) for i in ALL if i.target.startswith(PACKAGE)]


def layer_of(module: str) -> int:
    """The index of ``module``'s layer in ``LAYERS`` (0 is the top)."""
    room = module.removeprefix(PACKAGE).removeprefix(".").split(".")[0]
    for index, (_, rooms) in enumerate(LAYERS):
        if room in rooms:
            return index
    raise AssertionError(f"{module} is in no layer of tests/test_architecture.py: add its room")


def heavy_modules() -> set[str]:
    """Package modules that import a heavy library at module level (directly or through
    another package module)."""
    heavy: set[str] = set()
    changed = True
    while changed:
        changed = False
        for i in ALL:
            if i.in_function or i.type_only or i.source in heavy:
                continue
            if (i.target.split(".")[0] in LAZY_LIBRARIES
                    or package_module(i.target) in heavy and i.target.startswith(PACKAGE)):
                heavy.add(i.source)
                changed = True
    return heavy


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

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


def test_every_module_is_in_a_layer() -> None:
    for module in MODULES:
        layer_of(module)


def test_every_folder_is_a_regular_package() -> None:
    """setuptools' ``find_packages`` ships only folders with an ``__init__.py``."""
    folders = {path.parent for path in ROOT.rglob("*.py")} - {ROOT.parent}
    assert sorted(str(f) for f in folders if not (f / "__init__.py").exists()) == []


def test_no_import_cycle() -> None:
    edges: dict[str, set[str]] = {}
    for imp, target in INTERNAL:
        # importing a submodule runs its package's __init__ first: not an edge of the graph
        if target is not None and target != imp.source and not imp.source.startswith(
                target + "."):
            edges.setdefault(imp.source, set()).add(target)
    assert cycles(edges) == []


def test_no_upward_import() -> None:
    upward = [f"{i.source}:{i.line} imports {target} "
              f"({LAYERS[layer_of(target)][0]} is above {LAYERS[layer_of(i.source)][0]})"
              for i, target in INTERNAL
              if target is not None and layer_of(target) < layer_of(i.source)]
    assert upward == []


def test_imports_inside_functions_only_load_heavy_libraries() -> None:
    heavy = heavy_modules()
    hidden = [f"{i.source}:{i.line} imports {i.target} inside a function"
              for i in ALL if i.in_function
              and i.target.split(".")[0] not in LAZY_LIBRARIES
              and package_module(i.target) not in heavy | LAZY_MODULES]
    assert hidden == []


def test_the_child_side_imports_nothing_from_the_parent_side() -> None:
    child = layer_of(f"{PACKAGE}.child")
    parent = [f"{i.source}:{i.line} imports {target}" for i, target in INTERNAL
              if i.source.startswith(f"{PACKAGE}.child") and target is not None
              and layer_of(target) < child]
    assert parent == []


@pytest.mark.parametrize("module", ["api", "engine.paired", "evaluation"])
def test_the_public_calls_are_defined_in_one_room(module: str) -> None:
    tree = ast.parse(MODULES[f"{PACKAGE}.{module}"].read_text())
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    public = {"benchmark", "compare", "evaluate", "tune"}
    assert defined & public == (public if module == "api" else set())


def test_the_checks_see_what_they_check() -> None:
    """The walker finds the imports it is meant to judge (a test that cannot fail is none)."""
    assert len(MODULES) > 50 and len(INTERNAL) > 200
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert any(i.in_function and i.target == "torch" for i in ALL)
    assert f"{PACKAGE}.frameworks.torch" in heavy_modules()
    assert layer_of(f"{PACKAGE}.plugin.session") < layer_of(f"{PACKAGE}.engine.runner")
