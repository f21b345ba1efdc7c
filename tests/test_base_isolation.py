"""Base isolation: with the project installed editable, base copies still run the revision.

Real installs: a virtualenv made here (it reaches the suite's packages through a path entry,
so pip needs no network), ``pip install -e .`` of throwaway projects in temporary git
repositories (setuptools flat layout: an editable finder on ``sys.meta_path``; setuptools src
layout: a ``.pth`` path entry; hatchling with ``dev-mode-exact``: the ``editables`` finder),
then ``pytest --neuronperf-against=HEAD`` run as the ``pytest`` command and as
``python -m pytest``. The committed revision's model sleeps 16 ms a call, the working tree's
1 ms: a base that really runs the revision is 16x slower (IMPROVED, about +1500 %); a base
that runs the working tree by mistake gives about 0 % (PASS), as it did before.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

import pytest_neuronperf

pytest_plugins = ["pytester"]

MODEL = textwrap.dedent("""
    import time

    DELAY_S = 0.016


    class Model:
        def __call__(self, x):
            time.sleep(DELAY_S)
            return x
""")
PERF_TEST = textwrap.dedent("""
    import numpy as np
    import pytest

    from PACKAGE import Model


    @pytest.mark.neuronperf(n_models=1, workers_per_model=1, duration=0.5, paired_rounds=2)
    def test_model(neuronperf):
        neuronperf.benchmark(Model, np.ones((1, 4)), framework="python")
""")
SETUPTOOLS = """
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"
[project]
name = "PACKAGE"
version = "0.1"
"""
HATCH = """
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"
[project]
name = "PACKAGE"
version = "0.1"
[tool.hatch.build.targets.wheel]
dev-mode-exact = true
"""
PROJECTS = {  # package -> (where the package lives, pyproject, editable?)
    "slow_flat": ("slow_flat", SETUPTOOLS + '[tool.setuptools]\npackages = ["slow_flat"]\n', True),
    "slow_src": ("src/slow_src", SETUPTOOLS, True),
    "slow_hatch": ("slow_hatch", HATCH, True),
    "slow_copy": ("slow_copy", SETUPTOOLS + '[tool.setuptools]\npackages = ["slow_copy"]\n',
                  False),
}
PYTEST_SCRIPT = """#!{python}
import sys
from pytest import console_main
if __name__ == "__main__":
    sys.exit(console_main())
"""


def git(directory: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
                   cwd=directory, check=True, capture_output=True)


def make_project(root: Path, package: str) -> Path:
    """A git repository whose committed model is slow and whose working tree's is fast."""
    where, pyproject, _ = PROJECTS[package]
    repo = root / package
    (repo / where).mkdir(parents=True)
    (repo / "tests").mkdir()
    (repo / where / "__init__.py").write_text(MODEL)
    (repo / "pyproject.toml").write_text(pyproject.replace("PACKAGE", package))
    (repo / "tests" / "test_perf.py").write_text(PERF_TEST.replace("PACKAGE", package))
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "the slow revision")
    init = repo / where / "__init__.py"
    init.write_text(MODEL.replace("DELAY_S = 0.016", "DELAY_S = 0.001"))  # 16x faster now
    return repo


def shared_site_packages() -> list[str]:
    """Where this interpreter's packages are (the new virtualenv reaches them by path)."""
    paths = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"],
             *site.getsitepackages()]
    return list(dict.fromkeys(p for p in paths if os.path.isdir(p)))


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    """A virtualenv with every project installed (editable but ``slow_copy``, a plain copy)."""
    pytest.importorskip("setuptools", minversion="64", reason="editable installs (PEP 660) "
                        "need setuptools >= 64 in the test environment")
    pytest.importorskip("hatchling", reason="the hatch-style editable install needs hatchling")
    pytest.importorskip("editables", reason="hatchling's exact editable mode needs editables")
    root = tmp_path_factory.mktemp("isolation")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    # a path entry, read before the editable installs' .pth files (hatch's needs editables)
    Path(purelib, "00-shared-suite.pth").write_text("\n".join(shared_site_packages()) + "\n")
    (venv / "bin" / "pytest").write_text(PYTEST_SCRIPT.format(python=python))
    (venv / "bin" / "pytest").chmod(0o755)
    repos = {package: make_project(root, package) for package in PROJECTS}
    targets = []
    for package, repo in repos.items():
        targets += ["-e", str(repo)] if PROJECTS[package][2] else [str(repo)]
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-build-isolation", "--no-deps",
         "--no-index", *targets], capture_output=True, text=True, env=environment())
    assert installed.returncode == 0, installed.stderr
    return venv, repos


def environment() -> dict[str, str]:
    """The suite's environment for a child pytest, importing this checkout's plugin."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "COV_CORE")) and k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(Path(pytest_neuronperf.__file__).parent.parent)
    return env


def run_against_head(venv: Path, repo: Path, command: str) -> subprocess.CompletedProcess[str]:
    """``pytest --neuronperf-against=HEAD`` in ``repo``, as the ``pytest`` command or as
    ``python -m pytest``."""
    launcher = ([str(venv / "bin" / "pytest")] if command == "pytest"
                else [str(venv / "bin" / "python"), "-m", "pytest"])
    return subprocess.run(
        [*launcher, "-p", "no:cacheprovider", "--neuronperf-against=HEAD",
         "--neuronperf-json=out.json", "-q"],
        cwd=repo, capture_output=True, text=True, env=environment(), timeout=300)


@pytest.mark.parametrize(("package", "command"), [
    ("slow_flat", "pytest"), ("slow_flat", "python -m pytest"),
    ("slow_src", "pytest"), ("slow_src", "python -m pytest"),
    ("slow_hatch", "pytest"),  # the command under which a finder used to win
])
def test_an_editable_install_still_measures_the_revision_as_base(
        projects: tuple[Path, dict[str, Path]], package: str, command: str) -> None:
    venv, repos = projects
    result = run_against_head(venv, repos[package], command)
    assert result.returncode == 0, result.stdout + result.stderr
    [report] = json.loads((repos[package] / "out.json").read_text())["reports"]
    paired = report["paired"]
    assert paired["base_status"] == "ok", paired
    # the base really is the 16x slower revision: the head is far faster, not about equal
    assert paired["delta"]["throughput"] > 3.0, paired["delta"]
    # 3 launch pairs (the minimum at duration 0.5 s) leave a t test 2 degrees of freedom: under
    # load even this gain can fall short of significance, but the gate never calls it worse
    assert report["verdict"] in ("IMPROVED", "INCONCLUSIVE"), paired


def test_a_copy_of_the_project_installed_into_site_packages_is_refused(
        projects: tuple[Path, dict[str, Path]]) -> None:
    venv, repos = projects
    result = run_against_head(venv, repos["slow_copy"], "pytest")  # imports the installed copy
    assert result.returncode == 1
    assert ("neuronperf.benchmark: --neuronperf-against: slow_copy is imported from "
            in result.stdout), result.stdout
    assert "site-packages" in result.stdout and "pip install -e ." in result.stdout
    assert not (repos["slow_copy"] / "out.json").exists() or not json.loads(
        (repos["slow_copy"] / "out.json").read_text())["reports"]  # refused before measuring


SNEAKY = textwrap.dedent("""
    import importlib.util
    import os

    import numpy as np
    import pytest

    # loads its helper by an absolute path into the working tree, past every finder
    _spec = importlib.util.spec_from_file_location(
        "helper", os.path.join(os.environ["WORK_TREE"], "helper.py"))
    helper = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(helper)


    class Model(helper.Model):
        pass


    @pytest.mark.neuronperf(n_models=1, workers_per_model=1, duration=0.4, paired_rounds=2)
    def test_model(neuronperf):
        neuronperf.benchmark(Model, np.ones((1, 4)), framework="python")
""")


def test_a_base_copy_that_loads_working_tree_code_refuses_to_measure(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(test_perf=SNEAKY, helper=MODEL.replace("class Model", "class Model"))
    git(pytester.path, "init", "-q")
    git(pytester.path, "add", ".")
    git(pytester.path, "commit", "-qm", "base")
    monkeypatch.setenv("WORK_TREE", str(pytester.path))
    result = pytester.runpytest_subprocess("--neuronperf-against=HEAD")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*base isolation: the base copy runs Model.__call__ from *helper.py (the working tree), "
        "not from the base tree *; it would measure that code instead of the revision's*"])
    result.stdout.fnmatch_lines(["*ERROR*"])


TWINS = textwrap.dedent("""
    import importlib.util
    import os
    import sys

    import numpy as np
    import pytest

    from fast import Model as FastModel

    # the old version, loaded from its own file under the name "twin", which on sys.path is
    # another file (a copy process importing "twin" by name would get that one)
    _spec = importlib.util.spec_from_file_location(
        "twin", os.path.join(os.path.dirname(__file__), "old", "twin.py"))
    old = importlib.util.module_from_spec(_spec)
    sys.modules["twin"] = old
    _spec.loader.exec_module(old)


    @pytest.mark.neuronperf(n_models=1, workers_per_model=1, duration=0.4, paired_rounds=2)
    def test_twins(neuronperf):
        neuronperf.compare(old.Model, FastModel, np.ones((1, 4)), framework="python")
""")


def test_compare_refuses_a_side_whose_module_name_imports_another_file(
        pytester: pytest.Pytester) -> None:
    fast = MODEL.replace("0.016", "0.001")
    pytester.makepyfile(test_twins=TWINS, twin=fast, fast=fast)
    (pytester.path / "old").mkdir()
    (pytester.path / "old" / "twin.py").write_text(MODEL)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*base isolation: the model's module twin was imported from *twin.py, but the model "
        "passed in comes from *old/twin.py; the copy would measure other code than the one "
        "passed*"])
