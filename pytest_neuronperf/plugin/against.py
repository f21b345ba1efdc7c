"""``--neuronperf-against=REV``: the base side of every perf test, from a git revision.

The revision is resolved in the rootdir's repository and its tree is materialised once per
commit under ``<rootdir>/.neuronperf-cache/rev-<sha>/`` (``git archive``, unpacked into a temp
directory and renamed into place, so concurrent pytest-xdist workers never see half a tree;
files are made read-only). Base copies get the parent's ``sys.path`` with every entry inside the
repository mapped to the same place in that tree, so they import the model, its
``preprocess_fn``/``postprocess_fn``, and read artifacts and model indexes as they are at the
revision, while the inputs are the head's. Entries the repository does not track (a virtualenv
inside the checkout, build output) stay as they are.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_neuronperf.child.isolation import HARNESS, module_file, within
from pytest_neuronperf.engine.model_ref import importable_name
from pytest_neuronperf.engine.paired import PairedRequest
from pytest_neuronperf.protocol.specs import ImportRoot
from pytest_neuronperf.safe_files import CACHE_FOLDER, cache_folder

GIT_TIMEOUT_S = 300


class RevisionError(ValueError):
    """The rootdir is not in a git repository, or the revision is unknown there."""


def git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run one git command in ``repo`` and capture its output (never raises on exit status)."""
    try:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S, check=False)
    except FileNotFoundError:
        raise RevisionError("--neuronperf-against needs git, which is not installed "
                            "(or not on PATH)") from None


@dataclass(frozen=True)
class BaseTree:
    """A revision of the rootdir's repository, materialised read-only."""

    revision: str
    """As the user wrote it (``origin/main``)."""
    commit: str
    repo: Path
    """The working tree's top level (the head side)."""
    tree: Path
    """Where the revision's files are."""

    @property
    def label(self) -> str:
        """``origin/main (3f2a9c1d0b)``: the revision and its commit."""
        return f"{self.revision} ({self.commit[:10]})"

    def inside(self, path: Path) -> Path | None:
        """``path`` relative to the repository, or None when it lies outside."""
        try:
            return Path(os.path.realpath(path)).relative_to(self.repo)
        except ValueError:
            return None

    def tracked(self, relative: Path) -> bool:
        """True when the head's repository tracks ``relative`` (a file, or files below it)."""
        if str(relative) == ".":
            return True
        listed = git(self.repo, "ls-files", "--", str(relative))
        return listed.returncode == 0 and bool(listed.stdout.strip())

    def mapped(self, path: Path) -> Path:
        """Where ``path`` is in the base tree (itself when the repository does not track it)."""
        relative = self.inside(path)
        if relative is None:
            return path
        if (self.tree / relative).exists() or self.tracked(relative):
            return self.tree / relative
        return path

    def sys_path(self, entries: Sequence[str]) -> tuple[str, ...]:
        """``sys.path`` for a base copy: entries inside the repository mapped to the tree."""
        result = []
        for entry in entries:
            path = Path(entry or os.getcwd())
            result.append(str(self.mapped(path)) if path.exists() else entry)
        return tuple(result)

    def request(
        self,
        model: Any,
        preprocess_fn: Callable[..., Any] | None = None,
        postprocess_fn: Callable[..., Any] | None = None,
    ) -> PairedRequest:
        """The base side of one ``benchmark`` call: the same model as it is at the revision,
        or the reason it does not exist there (then the configurations are NEW)."""
        absent = self.absence(model)
        refs = {name: importable_name(fn, name) if fn is not None else None
                for name, fn in (("preprocess_fn", preprocess_fn),
                                 ("postprocess_fn", postprocess_fn))}
        self.refuse_installed_copies()
        foreign = self.foreign(sys.path)
        imports = ImportRoot(self.sys_path(sys.path), refs["preprocess_fn"],
                             refs["postprocess_fn"], tree=os.path.realpath(self.tree),
                             repo=str(self.repo), foreign=foreign,
                             packages=self.packages(foreign))
        base_model = model
        if isinstance(model, str | os.PathLike):
            base_model = str(self.mapped(Path(model)))
        return PairedRequest(base_model=base_model, imports=imports, revision=self.label,
                             absent=absent)

    def foreign(self, entries: Sequence[str]) -> tuple[str, ...]:
        """``sys.path`` entries inside the repository that it does not track (a virtualenv in
        the checkout): what is imported from there is not the project's code."""
        return tuple(sorted({os.path.realpath(entry or os.getcwd()) for entry in entries
                             if Path(entry or os.getcwd()).exists()
                             and self.inside(Path(entry or os.getcwd())) is not None
                             and self.mapped(Path(entry or os.getcwd())) == Path(
                                 entry or os.getcwd())}))

    def working_file(self, path: str, foreign: Sequence[str]) -> Path | None:
        """``path`` relative to the working tree when it is the project's code there (not the
        cache of base trees, not one of the ``foreign`` places such as a virtualenv)."""
        real = os.path.realpath(path)
        relative = self.inside(Path(real))
        if relative is None or within(real, os.path.realpath(self.tree.parent)):
            return None
        if any(within(real, root) for root in foreign):
            return None
        return relative

    def packages(self, foreign: Sequence[str]) -> tuple[tuple[str, str | None], ...]:
        """The project's top-level packages and modules, each with its place in the base tree
        (None where the revision lacks it): what the base copies' finder maps
        (``child.isolation``). A name counts when the head imports it from the working tree
        (however: a ``sys.path`` entry, an editable finder, a ``.pth`` entry) or when the
        revision has it as a top-level package (at the root or under ``src/``)."""
        mapping: dict[str, str | None] = dict(self.tree_packages())
        for name in sorted(self.candidate_names(foreign) | set(mapping)):
            where = head_location(name)
            relative = self.working_file(where, foreign) if where else None
            if relative is not None:
                base = self.tree / relative
                mapping[name] = str(base) if base.exists() else None
        return tuple(sorted(mapping.items()))

    def tree_packages(self) -> dict[str, str]:
        """Top-level packages of the base tree (root and ``src/``) and modules under ``src/``."""
        found: dict[str, str] = {}
        for root in (self.tree, self.tree / "src"):
            if not root.is_dir():
                continue
            for entry in sorted(root.iterdir()):
                name = entry.stem if entry.suffix == ".py" else entry.name
                if not name.isidentifier() or name == HARNESS or name in found:
                    continue
                if entry.is_dir() and (entry / "__init__.py").is_file():
                    found[name] = str(entry / "__init__.py")
                elif entry.suffix == ".py" and entry.is_file() and root.name == "src":
                    found[name] = str(entry)
        return found

    def candidate_names(self, foreign: Sequence[str]) -> set[str]:
        """Top-level names of the modules this process imported from the working tree."""
        names = set()
        for name, module in list(sys.modules.items()):
            location = module_file(module) if module is not None else None
            if location and self.working_file(location, foreign) is not None:
                names.add(name.partition(".")[0])
        names.discard(HARNESS)
        return names

    def refuse_installed_copies(self) -> None:
        """Refuse, before anything runs, a project this process imports from an installed
        copy (site-packages) or another checkout: neither side would measure the working tree.
        """
        for name in self.tree_packages():
            module = sys.modules.get(name)
            where = module_file(module) if module is not None else None
            if where is None or self.inside(Path(os.path.realpath(where))) is not None:
                continue
            raise ValueError(
                f"--neuronperf-against: {name} is imported from {where}, a copy of the project "
                f"outside the repository {self.repo} (installed into site-packages, or another "
                f"checkout), so neither side would measure this repository's code: install it "
                f"editable (pip install -e .) or put the repository on sys.path, then run again")

    def absence(self, model: Any) -> str | None:
        """Why ``model`` does not exist at the revision, or None when it does (or when it comes
        from outside the repository, which both sides share)."""
        if isinstance(model, str | os.PathLike):
            relative = self.inside(Path(model))
            if relative is not None and not (self.tree / relative).exists():
                return f"{relative} does not exist at {self.label}"
            return None
        module, qualname = importable_name(model, "model")
        filename = getattr(sys.modules[module], "__file__", None)
        relative = self.inside(Path(filename)) if filename else None
        if relative is None:
            return None
        base_file = self.tree / relative
        if not base_file.exists():
            return f"{relative} does not exist at {self.label}"
        top = qualname.split(".")[0]
        if not defines(base_file, top):
            return f"{relative} at {self.label} defines no {top}"
        return None


def head_location(name: str) -> str | None:
    """Where this process gets top-level module ``name`` from (imported or not), or None."""
    module = sys.modules.get(name)
    if module is not None:
        return module_file(module)
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.origin and os.path.isabs(spec.origin):
        return spec.origin
    return next(iter(spec.submodule_search_locations or ()), None)


def defines(source: Path, name: str) -> bool:
    """True when the module file binds ``name`` at its top level (class, def, assignment or
    import); a file that does not parse counts as defining it (the base copy then says why)."""
    try:
        tree = ast.parse(source.read_text(errors="replace"))
    except SyntaxError:
        return True
    for node in tree.body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            if node.name == name:
                return True
        elif isinstance(node, ast.Import | ast.ImportFrom):
            if any((alias.asname or alias.name.split(".")[0]) == name for alias in node.names):
                return True
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(n, ast.Name) and n.id == name
                   for target in targets for n in ast.walk(target)):
                return True
        elif isinstance(node, ast.If | ast.Try | ast.With):
            return True  # conditional definitions: let the base copy import it and see
    return False


def resolve(rootdir: Path, revision: str) -> BaseTree:
    """The base tree of ``revision`` in ``rootdir``'s repository (materialised if needed), or
    a :class:`RevisionError` naming what is wrong."""
    top = git(rootdir, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        raise RevisionError(
            f"--neuronperf-against={revision}: the rootdir {rootdir} is not inside a git "
            f"repository; paired mode compares with a revision of the rootdir's repository "
            f"(use neuronperf.compare(base_model, model, inputs) to compare two models instead)")
    repo = Path(os.path.realpath(top.stdout.strip()))
    found = git(repo, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    if found.returncode != 0:
        raise RevisionError(
            f"--neuronperf-against={revision}: unknown revision in the git repository {repo}; "
            f"name a branch, tag or commit it has (in CI, fetch history first, e.g. "
            f"actions/checkout with fetch-depth: 0)")
    commit = found.stdout.strip()
    tree = usable_cache(Path(rootdir), f"--neuronperf-against={revision}") / f"rev-{commit}"
    if not tree.is_dir():
        try:
            materialise(repo, commit, tree)
        except OSError as exc:
            raise RevisionError(
                f"--neuronperf-against={revision}: cannot write the base tree to {tree} "
                f"({type(exc).__name__}: {exc.strerror or exc}): make {tree.parent} a writable "
                f"directory or remove it") from None
    return BaseTree(revision, commit, repo, tree)


def usable_cache(rootdir: Path, who: str = "") -> Path:
    """``<rootdir>/.neuronperf-cache``, created and hidden from git, if it is (or can become) a
    writable directory, else a :class:`RevisionError` saying what is wrong with it (``who`` needs
    it: the option)."""
    cache = rootdir / CACHE_FOLDER
    who = f"{who}: " if who else ""
    if cache.exists() and not cache.is_dir():
        raise RevisionError(
            f"{who}{cache} is a file, not a directory; pytest-neuronperf keeps base trees "
            f"and compiled models there: remove or rename that file")
    if cache.is_dir() and not os.access(cache, os.W_OK | os.X_OK):
        raise RevisionError(
            f"{who}{cache} is not writable; pytest-neuronperf keeps base trees and compiled "
            f"models there: make it writable (chmod u+w) or remove it")
    if not cache.exists() and not os.access(rootdir, os.W_OK | os.X_OK):
        raise RevisionError(
            f"{who}cannot create {cache} (the rootdir {rootdir} is not writable); "
            f"pytest-neuronperf keeps base trees and compiled models there")
    return cache_folder(rootdir)


def materialise(repo: Path, commit: str, destination: Path) -> None:
    """Unpack ``git archive commit`` into ``destination`` (atomically: temp dir + rename)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".rev-{commit[:12]}-", dir=destination.parent))
    try:
        archive = subprocess.Popen(["git", "-C", str(repo), "archive", "--format=tar", commit],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert archive.stdout is not None
        with tarfile.open(fileobj=archive.stdout, mode="r|") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(scratch, filter=safe_member)
            else:  # Python < 3.10.12: git archive output has no absolute or parent paths
                tar.extractall(scratch)  # noqa: S202
        errors = archive.stderr.read().decode(errors="replace") if archive.stderr else ""
        if archive.wait() != 0:
            raise RevisionError(f"git archive {commit} failed in {repo}: {errors.strip()}")
        make_read_only(scratch)
        try:
            os.rename(scratch, destination)
        except OSError:
            if not destination.is_dir():  # not another process that won the race
                raise
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)


def safe_member(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
    """``tarfile``'s data filter, except that a member it refuses (a symlink to an absolute
    path or out of the tree, as a committed ``.venv`` link can be) is left out, not fatal."""
    try:
        return tarfile.data_filter(member, path)
    except tarfile.FilterError:
        return None


def make_read_only(root: Path) -> None:
    """Make every file below ``root`` read-only, so that nothing edits the base by mistake.

    Directories stay writable: Python may cache bytecode there, and ``rm -rf .neuronperf-cache``
    keeps working without a chmod."""
    for directory, _, files in os.walk(root):
        for name in files:
            path = Path(directory) / name
            with contextlib.suppress(OSError):
                if not path.is_symlink():
                    mode = path.stat().st_mode
                    path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def resolve_option(rootdir: Path, revision: str | None) -> BaseTree | None:
    """``--neuronperf-against`` resolved, or None when not given; refusals are usage errors."""
    if revision is None:
        return None
    try:
        return resolve(rootdir, revision)
    except RevisionError as exc:
        raise pytest.UsageError(str(exc)) from None
