"""Base isolation: a base copy imports the base tree, never the working tree (child side).

A paired run against a git revision (``plugin.against``) gives each base copy an
:class:`~pytest_neuronperf.protocol.specs.ImportRoot`: its ``sys.path`` mapped into the
revision's tree, and the project's top-level packages with where they are in that tree. A
``sys.path`` alone is not enough: an editable install (``pip install -e .``) puts a finder on
``sys.meta_path`` (setuptools' for a flat layout, ``editables`` for hatch and pdm) that hands
out the working tree's package whatever ``sys.path`` says. :func:`install` therefore puts a
finder of its own *first* on ``sys.meta_path`` that answers for the project's packages from the
base tree, and drops any of them the process already imported. :func:`check` then looks at every
module the copy loaded before it measures, and refuses with one sentence when one of the
project's modules came from anywhere but the base tree (the working tree, a ``.pth`` entry, an
installed copy in site-packages). Every model copy also checks that the model's module is the
file the caller's was (:func:`check_origin`), so that no side of a paired run can silently run
the other side's code.

Imports nothing heavy: it runs in the model process before the framework loads the model.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

from pytest_neuronperf.protocol.specs import ImportRoot

HARNESS = "pytest_neuronperf"
"""The plugin itself: it runs as installed on both sides (the measuring harness, not the code
under test), so it is never mapped nor refused."""
REFUSAL = "base isolation:"
"""How every refusal of this module starts (``paired`` tells a refusal from a crash by it)."""


class Refused(RuntimeError):
    """A copy would measure other code than its side's: the message is one sentence."""


def module_file(module: ModuleType) -> str | None:
    """The file (or, for a namespace package, the first directory) a module came from."""
    spec = getattr(module, "__spec__", None)
    origin = getattr(module, "__file__", None) or getattr(spec, "origin", None)
    if isinstance(origin, str) and os.path.isabs(origin):
        return origin
    locations = getattr(spec, "submodule_search_locations", None) or []
    for location in locations:
        if isinstance(location, str) and os.path.isabs(location):
            return location
    return None


def within(path: str, root: str) -> bool:
    """True when ``path`` is ``root`` or lies below it (both real paths)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class BaseTreeFinder(importlib.abc.MetaPathFinder):
    """First on ``sys.meta_path`` in a base copy: the project's packages come from the base tree.

    A package the revision does not have (new in the working tree) is not found at all, rather
    than found where the working tree has it."""

    def __init__(self, packages: Sequence[tuple[str, str | None]], tree: str) -> None:
        self.packages = dict(packages)
        self.tree = tree

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        """The base tree's spec for the project's modules; None for every other module."""
        top = fullname.partition(".")[0]
        if top not in self.packages:
            return None
        if "." in fullname:
            search = [p for p in (path or ()) if within(os.path.realpath(p), self.tree)]
        else:
            location = self.packages[top]
            search = [containing(location)] if location else []
        spec = importlib.machinery.PathFinder.find_spec(fullname, search) if search else None
        if spec is None:
            raise ModuleNotFoundError(f"No module named {fullname!r} in the base tree "
                                      f"{self.tree}", name=fullname)
        return spec


def containing(location: str) -> str:
    """The directory to search for the top-level package or module at ``location`` (its
    ``__init__.py``, its module file, or a namespace package's directory)."""
    if os.path.basename(location).startswith("__init__."):
        location = os.path.dirname(location)
    return os.path.dirname(location)


def install(imports: ImportRoot) -> None:
    """Make this process import the user's code from the base tree: ``sys.path``, the finder
    first on ``sys.meta_path``, and none of the project's modules left from before."""
    sys.path[:] = list(imports.sys_path)
    if imports.tree is None:
        return
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, BaseTreeFinder)]
    sys.meta_path.insert(0, BaseTreeFinder(imports.packages, imports.tree))
    # the project's modules imported before now (the model's own module may be here already,
    # unpickled with a function the copy received) would shadow the base tree's
    for name, _ in list(problems(imports)):
        del sys.modules[name]
    importlib.invalidate_caches()


class RealPaths:
    """``os.path.realpath`` of module files, cached per directory (torch has ~1500 modules)."""

    def __init__(self) -> None:
        self._dirs: dict[str, str] = {}

    def __call__(self, path: str) -> str:
        directory, name = os.path.split(path)
        if directory not in self._dirs:
            self._dirs[directory] = os.path.realpath(directory)
        return os.path.join(self._dirs[directory], name)


def misplaced(name: str, module: Any, imports: ImportRoot, real: RealPaths,
              project: frozenset[str]) -> str | None:
    """Where ``module`` came from when that is not allowed in a base copy, else None
    (``project``: the project's top-level names)."""
    top = name.partition(".")[0]
    if top == HARNESS or imports.tree is None or imports.repo is None:
        return None
    location = module_file(module)
    if location is None:
        return None
    path = real(location)
    if within(path, imports.tree):
        return None
    if top in project:
        return path
    if within(path, imports.repo) and not any(within(path, r) for r in imports.foreign):
        return path
    return None


def problems(imports: ImportRoot) -> Iterator[tuple[str, str]]:
    """``(module, file)`` for every loaded module a base copy must not have."""
    real = RealPaths()
    project = frozenset(name for name, _ in imports.packages)
    for name, module in list(sys.modules.items()):
        where = misplaced(name, module, imports, real, project)
        if where is not None:
            yield name, where


def code_files(model: Any) -> Iterator[tuple[str, str]]:
    """``(Class.method, file)`` for the functions of the model's class and its bases: a class
    may run code from a module that never reached ``sys.modules`` (loaded by file path)."""
    for cls in type(model).__mro__ if model is not None else ():
        for attribute, value in vars(cls).items():
            code = getattr(getattr(value, "__func__", value), "__code__", None)
            filename = getattr(code, "co_filename", None)
            if isinstance(filename, str) and os.path.isabs(filename):
                yield f"{cls.__qualname__}.{attribute}", filename


def check(imports: ImportRoot | None, model_module: str | None, model: Any = None) -> None:
    """Refuse, in one sentence, a base copy that loaded any of the project's code from
    elsewhere than the base tree (the model's module named first, then the model's code)."""
    if imports is None or imports.tree is None:
        return
    found = {f"imported {name}": where for name, where in problems(imports)}
    real = RealPaths()
    for what, filename in code_files(model):
        path = real(filename)
        if (imports.repo is not None and within(path, imports.repo)
                and not within(path, imports.tree)
                and not any(within(path, r) for r in imports.foreign)):
            found.setdefault(f"runs {what}", path)
    if not found:
        return
    first = f"imported {model_module}"
    what = first if first in found else sorted(found)[0]
    more = len(found) - 1
    raise Refused(
        f"{REFUSAL} the base copy {what} from {found[what]} ({kind(found[what], imports)}), "
        f"not from the base tree {imports.tree}"
        + (f", and {more} more module(s) or function(s) likewise" if more else "")
        + "; it would measure that code instead of the revision's: import the project by its "
        "package name (an editable install, a src/ directory on sys.path or pytest's rootdir "
        "all work), not from a copy installed into site-packages or by an absolute path")


def kind(path: str, imports: ImportRoot) -> str:
    """What a refused location is, in a few words."""
    if imports.repo is not None and within(path, imports.repo):
        return "the working tree"
    if "site-packages" in path.split(os.sep) or "dist-packages" in path.split(os.sep):
        return "an installed copy of the project in site-packages"
    return "outside the repository"


def check_origin(module: str | None, origin: str | None) -> None:
    """Refuse a copy whose model module is another file than the one the caller passed (two
    modules of one name: the copy would measure the wrong one)."""
    if module is None or origin is None or module not in sys.modules:
        return
    location = module_file(sys.modules[module])
    if location is None:
        return
    found, expected = os.path.realpath(location), os.path.realpath(origin)
    if found != expected:
        raise Refused(
            f"{REFUSAL} the model's module {module} was imported from {found}, but the model "
            f"passed in comes from {expected}; the copy would measure other code than the one "
            f"passed: give each version of the model a module name of its own")


def base_status(error: str) -> str:
    """``refused`` for a base side this module refused (the gate fails the test: nothing
    trustworthy was compared), ``error`` for a base that crashed or failed to load."""
    return "refused" if REFUSAL in error else "error"
