"""Does the explanation name what got slower, and what does it cost?

A scratch git repository holds four perf tests of one MLP (256 -> 1024 -> 256, batch 1): the
committed code is the base; the working tree changes three of them the way regressions happen:

- ``extra``: one more ``Linear(256, 256)`` layer (a new operator);
- ``twice``: the first layer called twice (a doubled call count);
- ``post``: a ``postprocess_fn`` that sleeps 1 ms (Python time outside the model);
- ``same``: unchanged (identical code: nothing should come out beyond noise).

Each trial runs ``pytest --neuronperf-against=HEAD --neuronperf-profile=all`` once and records,
per test, the verdict, the paired throughput change, the profile's wall time and its top lines.
The overhead runs the ``twice`` test alone, alternating ``--neuronperf-profile=off`` and the
default (which profiles it when it comes out REGRESSED), and records pytest's wall time.

Usage (from the repository root)::

    PYTHONPATH=. .venv/bin/python benchmarks/explain_study.py --trials 3 --identical 2 \\
        --overhead 3 --record benchmarks/explain-runs-loaded.jsonl
    PYTHONPATH=. .venv/bin/python benchmarks/explain_study.py --replay \\
        benchmarks/explain-runs-loaded.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

BASE = textwrap.dedent('''
    import time

    import torch


    class MLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.a = torch.nn.Linear(256, 1024)
            self.b = torch.nn.Linear(1024, 256)

        def forward(self, x):
            return self.b(torch.relu(self.a(x)))


    class Extra(MLP):
        pass


    class Twice(MLP):
        pass


    class Same(MLP):
        pass


    def postprocess(y):
        return y
''')
HEAD = (BASE
        .replace("class Extra(MLP):\n    pass",
                 "class Extra(MLP):  # one more layer: a new operator\n"
                 "    def __init__(self):\n"
                 "        super().__init__()\n"
                 "        self.c = torch.nn.Linear(256, 256)\n\n"
                 "    def forward(self, x):\n"
                 "        return self.c(super().forward(x))")
        .replace("class Twice(MLP):\n    pass",
                 "class Twice(MLP):  # the first layer called twice: a doubled count\n"
                 "    def forward(self, x):\n"
                 "        return self.b(torch.relu(self.a(x)) + torch.relu(self.a(x)))")
        .replace("def postprocess(y):\n    return y",
                 "def postprocess(y):  # Python time outside the model\n"
                 "    time.sleep(0.001)\n"
                 "    return y"))
assert HEAD.count("# ") == 3, "the head must change three places of the base"
TESTS = textwrap.dedent('''
    import pytest
    import torch

    import models

    pytestmark = pytest.mark.neuronperf(n_models=1, workers_per_model=1, duration=2)


    def test_extra(neuronperf):
        neuronperf.benchmark(models.Extra, torch.rand(1, 256))


    def test_twice(neuronperf):
        neuronperf.benchmark(models.Twice, torch.rand(1, 256))


    def test_post(neuronperf):
        neuronperf.benchmark(models.Same, torch.rand(1, 256), postprocess_fn=models.postprocess)


    def test_same(neuronperf):
        neuronperf.benchmark(models.Same, torch.rand(1, 256))
''')
EXPECTED = {
    "test_extra": ("operators", "aten::addmm [256] [1x256] [256x256]", "new"),
    "test_twice": ("operators", "aten::addmm [1024] [1x256] [256x1024]", "calls"),
    "test_post": ("python", "<built-in method time.sleep> in postprocess (models.py)", "new"),
}
"""What the top line of each regression's table must name (table, key, kind)."""


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=s@example.com", "-c", "user.name=s", *args],
                   cwd=repo, check=True, capture_output=True)


def make_repository(root: Path) -> Path:
    """The scratch repository: base committed, head in the working tree."""
    repo = root / "repo"
    repo.mkdir()
    (repo / "models.py").write_text(BASE)
    (repo / "test_perf.py").write_text(TESTS)
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "base")
    (repo / "models.py").write_text(HEAD)
    return repo


def pytest_run(repo: Path, *args: str) -> tuple[float, list[dict[str, Any]], str]:
    """(wall seconds, reports, output) of one pytest run in the repository."""
    out = repo / "out.json"
    out.unlink(missing_ok=True)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                             "--neuronperf-against=HEAD", f"--neuronperf-json={out}", *args],
                            cwd=repo, capture_output=True, text=True, env=os.environ)
    wall = time.perf_counter() - started
    reports = json.loads(out.read_text())["reports"] if out.exists() else []
    return wall, reports, result.stdout


def load_average() -> float:
    """The one-minute load average (the machine is shared)."""
    return os.getloadavg()[0]


def identical(repo: Path, runs: int) -> list[dict[str, Any]]:
    """The four tests with the working tree as committed (identical code on both sides)."""
    (repo / "models.py").write_text(BASE)
    try:
        return [dict(r, kind="identical") for _ in range(runs) for r in trial(repo)]
    finally:
        (repo / "models.py").write_text(HEAD)


def trial(repo: Path) -> list[dict[str, Any]]:
    """One run of the four tests, profiled; a record per test."""
    _, reports, _ = pytest_run(repo, "--neuronperf-profile=all")
    records = []
    for report in reports:
        test = report["test"].rsplit("::", 1)[-1]
        profile = report.get("profile") or {}
        changes = profile.get("changes") or {}
        significant = {table: [c for c in found if c["significant"]]
                       for table, found in changes.items()}
        slower = {table: [c["line"] for c in found if c["delta_ns"] > 0][:3]
                  for table, found in significant.items()}
        records.append({
            "kind": "trial", "test": test, "verdict": report.get("verdict"),
            "delta_throughput": (report.get("paired") or {}).get("delta", {}).get("throughput"),
            "profile_s": profile.get("seconds"), "profile_cpu_s": profile.get("cpu_s"),
            "status": profile.get("status"),
            "top": slower, "significant": {t: len(found) for t, found in significant.items()},
            "structural": sum(1 for found in significant.values() for c in found
                              if c["kind"] != "per call"),
            "named": named(test, significant),
            "interference": (report.get("interference") or {}).get("other_pct"),
            "load": load_average(), "time": time.time(),
        })
    return records


def named(test: str, significant: dict[str, list[dict[str, Any]]]) -> bool | None:
    """Whether the first slower change of the expected table is the expected key and kind."""
    if test not in EXPECTED:
        return None
    table, key, kind = EXPECTED[test]
    slower = [c for c in significant.get(table, []) if c["delta_ns"] > 0]
    return bool(slower) and slower[0]["key"] == key and slower[0]["kind"] == kind


def overhead(repo: Path, rounds: int) -> list[dict[str, Any]]:
    """The ``twice`` configuration with profiling off and on (default), alternated."""
    records = []
    for index in range(rounds):
        for mode in (("off", "auto") if index % 2 == 0 else ("auto", "off")):
            wall, reports, _ = pytest_run(repo, "test_perf.py::test_twice",
                                          f"--neuronperf-profile={mode}")
            [report] = reports or [{}]
            records.append({"kind": "overhead", "mode": mode, "wall_s": wall,
                            "verdict": report.get("verdict"),
                            "profile_s": (report.get("profile") or {}).get("seconds"),
                            "profile_cpu_s": (report.get("profile") or {}).get("cpu_s"),
                            "load": load_average(), "time": time.time()})
    return records


def summarize(records: list[dict[str, Any]]) -> None:
    """Print the figures."""
    trials = [r for r in records if r["kind"] == "trial"]
    for test in ("test_extra", "test_twice", "test_post", "test_same"):
        mine = [r for r in trials if r["test"] == test]
        if not mine:
            continue
        verdicts = ", ".join(sorted({str(r["verdict"]) for r in mine}))
        print(f"{test}: {len(mine)} trial(s), verdicts {verdicts}, median throughput change "
              f"{statistics.median(r['delta_throughput'] or 0 for r in mine):+.1%}, profile "
              f"{statistics.median(r['profile_s'] or 0 for r in mine):.1f} s wall"
              + (f", {statistics.median(cpu):.1f} CPU-s" if (cpu := [
                  r["profile_cpu_s"] for r in mine if r.get("profile_cpu_s")]) else "")
              + " (median)")
        if test in EXPECTED:
            print(f"  named in the top line: {sum(bool(r['named']) for r in mine)}/{len(mine)}")
        else:
            print(f"  significant changes: {[r['significant'] for r in mine]}; new/gone/count "
                  f"changes: {[r['structural'] for r in mine]}")
        for table, lines in mine[-1]["top"].items():
            for line in lines:
                print(f"    {table}: {line}")
    same = [r for r in records if r["kind"] == "identical" or r.get("test") == "test_same"]
    if same:
        flagged = [r for r in same if any(r["significant"].values())]
        print(f"identical code: {len(same)} profiles; with a significant change: "
              f"operators {sum(1 for r in same if r['significant'].get('operators'))}, Python "
              f"frames {sum(1 for r in same if r['significant'].get('python'))}; new, gone or "
              f"recounted keys: {sum(r['structural'] for r in same)}")
        for record in flagged:
            for table, lines in record["top"].items():
                for line in lines:
                    print(f"    {record['test']} {table}: {line}")
    runs = [r for r in records if r["kind"] == "overhead"]
    if runs:
        for mode in ("off", "auto"):
            walls = [r["wall_s"] for r in runs if r["mode"] == mode]
            print(f"overhead: profile {mode}: pytest wall {statistics.median(walls):.1f} s "
                  f"(median of {len(walls)}: {', '.join(f'{w:.1f}' for w in walls)})")
        profiled = [r for r in runs if r["profile_s"]]
        if profiled:
            cpu = [r["profile_cpu_s"] for r in profiled if r.get("profile_cpu_s")]
            wall = statistics.median(r["profile_s"] for r in profiled)
            print(f"  the profile run itself: {wall:.1f} s wall (median of {len(profiled)})"
                  + (f", its copies' CPU time {statistics.median(cpu):.1f} s" if cpu else ""))
    loads = [r["load"] for r in records]
    print(f"load average during the runs: {min(loads):.1f}..{max(loads):.1f} (2 cores)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--identical", type=int, default=2,
                        help="runs of the four tests with identical code on both sides")
    parser.add_argument("--overhead", type=int, default=4, help="rounds of off/on pairs")
    parser.add_argument("--record", type=Path, help="append the raw records (JSONL) here")
    parser.add_argument("--replay", type=Path, help="print the figures of recorded runs")
    args = parser.parse_args()
    if args.replay:
        summarize([json.loads(line) for line in args.replay.read_text().splitlines() if line])
        return
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="explain-study-") as root:
        repo = make_repository(Path(root))
        for _ in range(args.trials):
            records += trial(repo)
        records += identical(repo, args.identical)
        records += overhead(repo, args.overhead)
    if args.record:
        with args.record.open("a") as stream:
            for record in records:
                stream.write(json.dumps(record) + "\n")
    summarize(records)


if __name__ == "__main__":
    main()
