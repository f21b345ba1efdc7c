"""A real environment regression found by the history: one suite run on a series of commits
of a throwaway git repository, where one commit bumps a dependency pin that both paired sides
would share, so ``--neuronperf-against`` cannot see it.

    .venv/bin/python benchmarks/history_env_regression.py \\
        --record benchmarks/history-env-regression.jsonl

The repository pins ``fastdep`` (a small distribution this script builds in two versions and
installs with pip into a folder per version: 1.0 prepares an input in 2 ms, 1.1 in 5 ms) in
``requirements.txt``; its suite measures a model whose calls use ``fastdep.prepare``. Commit
by commit it installs the pinned version and runs the suite with ``--neuronperf-history``; at
the bump it also runs ``--neuronperf-against=HEAD~1`` (both sides import the one installed
fastdep, so the paired gate passes). Then ``pytest-neuronperf history`` must name the change
point at the bump's commit with ``fastdep 1.0 -> 1.1``. Each run's figures and the change
points go to ``--record`` (JSON lines); the table is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMITS, BUMP_AT = 18, 8
"""Commits in the series, and the one (0-based) that bumps the pin."""
DEPENDENCY = '''
import time

DELAY_S = {delay}


def prepare(x):
    time.sleep(DELAY_S)
    return x
'''
SETUP = '''
from setuptools import setup
setup(name="fastdep", version="{version}", py_modules=["fastdep"])
'''
SUITE = '''
import fastdep
import numpy as np
import pytest


class Model:
    def __call__(self, x):
        return fastdep.prepare(x) * 2


X = np.ones((1, 8), dtype=np.float32)


@pytest.mark.neuronperf(batch_sizes=[1], n_models=1, workers_per_model=1, warmup=0.1)
def test_model(neuronperf):
    neuronperf.benchmark(Model, X, framework="python")
'''


def sh(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, env=env,
                          check=False)
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout


def git(repo: Path, *args: str) -> str:
    return sh("git", "-c", "user.email=dev@example.com", "-c", "user.name=dev", *args,
              cwd=repo).strip()


def build_versions(work: Path) -> dict[str, Path]:
    """Install fastdep 1.0 and 1.1 with pip, each into its own folder."""
    folders = {}
    for version, delay in (("1.0", 0.002), ("1.1", 0.005)):
        source = work / f"fastdep-{version}"
        source.mkdir()
        (source / "fastdep.py").write_text(DEPENDENCY.format(delay=delay))
        (source / "setup.py").write_text(SETUP.format(version=version))
        folders[version] = work / f"site-{version}"
        sh(sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
           "--no-build-isolation", "--target", str(folders[version]), str(source), cwd=work)
    return folders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--duration", type=float, default=0.5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="history-env-"))
    sites = build_versions(work)
    repo = work / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "test_suite.py").write_text(textwrap.dedent(SUITE))
    store = work / "history.sqlite"
    lines = []
    for i in range(COMMITS):
        pin = "1.1" if i >= BUMP_AT else "1.0"
        (repo / "requirements.txt").write_text(f"fastdep=={pin}\n")
        (repo / "CHANGES").write_text(f"change {i}\n")
        git(repo, "add", ".")
        message = f"Bump fastdep to {pin}" if i == BUMP_AT else f"Change {i}"
        git(repo, "commit", "-qm", message)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(sites[pin]), str(REPO)])}
        out = sh(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                 f"--neuronperf-history={store}", f"--neuronperf-duration={args.duration}",
                 "--neuronperf-json=run.json", cwd=repo, env=env)
        reports = json.loads((repo / "run.json").read_text())["reports"]
        entry = {"commit": git(repo, "rev-parse", "HEAD"), "message": message, "fastdep": pin,
                 **{k: reports[0].get(k) for k in ("throughput_avg", "latency_ms_p50",
                                                   "latency_ms_p99", "interference")}}
        if i == BUMP_AT:  # what paired mode says about the bump: both sides share fastdep
            paired = sh(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "--neuronperf-against=HEAD~1", f"--neuronperf-duration={args.duration}",
                        cwd=repo, env=env)
            entry["paired_vs_previous"] = paired.strip().splitlines()[-1]
        lines.append(entry)
        print(f"{i:2} {message:<20} {entry['throughput_avg']:8.1f}/s "
              f"{entry.get('paired_vs_previous', '')} {out.strip().splitlines()[-1]}", flush=True)
    table = sh(sys.executable, "-m", "pytest_neuronperf", "history", str(store), cwd=repo,
               env={**os.environ, "PYTHONPATH": str(REPO)})
    print(table)
    with open(args.record, "w") as stream:
        for entry in lines:
            stream.write(json.dumps(entry) + "\n")
        stream.write(json.dumps({"history_table": table.splitlines(),
                                 "bump_commit": lines[BUMP_AT]["commit"]}) + "\n")
    bump = lines[BUMP_AT]["commit"][:8]
    found = bump in table and "fastdep 1.0 -> 1.1" in table
    print(f"change point at the bump {bump} with fastdep 1.0 -> 1.1: "
          f"{'found' if found else 'NOT found'}")


if __name__ == "__main__":
    main()
