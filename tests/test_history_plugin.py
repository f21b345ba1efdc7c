"""``--neuronperf-history`` and ``--neuronperf-history-gate`` as users run them: real pytest
sessions in a real git repository, under pytest-xdist, against SQLite and a real PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from projects import SLEEP_MODEL

from pytest_neuronperf.history.recording import append_run
from pytest_neuronperf.history.store import Store

pytest_plugins = ["pytester", "history_stores"]

# A sleep-based model: its speed hardly depends on CPU load; SLOWDOWN scales the sleep.
PERF_TESTS = SLEEP_MODEL + '''


@pytest.mark.neuronperf(batch_sizes=[1], n_models=1, workers_per_model=1, duration=0.3,
                        warmup=0.05)
@pytest.mark.parametrize("name", ["a", "b"])
def test_sleep(neuronperf, name):
    neuronperf.benchmark(SleepModel, X, framework="python")
'''


def git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), "-c", "user.email=ci@example.com",
                           "-c", "user.name=ci", *args], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A git repository (branch main) with two perf tests."""
    pytester.makepyfile(test_models=PERF_TESTS)
    git(pytester.path, "init", "-q", "-b", "main")
    git(pytester.path, "add", ".")
    git(pytester.path, "commit", "-qm", "first")
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


def test_every_run_is_appended_with_its_commit_branch_and_dirty_flag(
        project: pytest.Pytester) -> None:
    store = project.path / "runs" / "history.sqlite"
    result = run(project, f"--neuronperf-history={store}", "--neuronperf-json=r.json")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*neuronperf: history *history.sqlite, commit * on main*",
                                 "*history: run * (2 configuration(s)) appended to *"])
    (project.path / "test_models.py").write_text(PERF_TESTS + "\n# edited\n")
    run(project, f"--neuronperf-history={store}").assert_outcomes(passed=2)
    with Store(store) as history:
        runs = history.runs()
    head = git(project.path, "rev-parse", "HEAD")
    assert [(r.commit, r.branch, r.dirty) for r in runs] == [(head, "main", False),
                                                             (head, "main", True)]
    assert all(len(r.results) == 2 and r.packages["pytest"] for r in runs)
    assert runs[0].results[0].other_pct is not None and runs[0].interference is not None
    assert runs[0].results[0].machine == runs[0].results[0].report["machine"]
    assert json.loads((project.path / "r.json").read_text())["run"]["commit"] == head


def test_history_options_are_checked_before_anything_runs(project: pytest.Pytester) -> None:
    folder = project.path / "a-folder"
    folder.mkdir()
    for args, words in ((["--neuronperf-history-gate"], "--neuronperf-history-gate needs a "
                                                        "history"),
                        (["--neuronperf-history=mysql://db/perf"], "only a file path (SQLite)"),
                        ([f"--neuronperf-history={folder}"], "is a directory")):
        result = project.runpytest("-p", "no:cacheprovider", *args)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        assert words in result.stderr.str()


def test_an_unusable_store_is_named_and_the_run_kept(project: pytest.Pytester) -> None:
    store = project.path / "history.sqlite"
    store.write_bytes(b"this is not a database" * 50)
    before = hashlib.sha256(store.read_bytes()).hexdigest()
    result = run(project, f"--neuronperf-history={store}")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # the run could not be stored
    result.stdout.fnmatch_lines([
        "*neuronperf: history: history store * is not a SQLite database or is corrupt*",
        "*ERROR history not saved: history store * it was left untouched*; this run's "
        "reports are in *neuronperf-unsaved-*.json (add them later with pytest-neuronperf "
        "history * --import *"])
    assert hashlib.sha256(store.read_bytes()).hexdigest() == before
    (kept,) = project.path.glob("neuronperf-unsaved-*.json")
    document = json.loads(kept.read_text())
    assert len(document["reports"]) == 2 and document["run"]["branch"] == "main"


def concurrent_runs(pytester: pytest.Pytester, location: str, runs: int) -> None:
    """Start ``runs`` pytest runs with ``-n 2`` at once, all appending to ``location``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])}
    processes = [subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2", "-q",
         f"--neuronperf-history={location}"], cwd=pytester.path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(runs)]
    for process in processes:
        out, _ = process.communicate(timeout=600)
        assert process.returncode == 0, out[-3000:]
        assert "appended to" in out


def test_two_xdist_controllers_at_once_each_append_their_run_once(
        project: pytest.Pytester, store_location: str) -> None:
    pytest.importorskip("xdist")
    concurrent_runs(project, store_location, 2)
    with Store(store_location) as store:
        runs = store.runs()
    assert len(runs) == 2 and len({r.uid for r in runs}) == 2
    for stored in runs:  # each run once, with both tests measured by its two workers
        assert sorted(r.test for r in stored.results) == [
            "test_models.py::test_sleep[a]", "test_models.py::test_sleep[b]"]
        assert {r.report.get("worker") for r in stored.results} <= {"gw0", "gw1"}


def test_history_gate_fails_a_change_point_naming_commits_and_versions(
        project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = project.path / "scratch.sqlite"
    run(project, f"--neuronperf-history={scratch}").assert_outcomes(passed=2)
    with Store(scratch) as history:
        (first,) = history.runs()
    # twelve earlier runs at the speed just measured, on earlier commits, with an older numpy
    store = project.path / "history.sqlite"
    with Store(store) as history:
        for i in range(12):
            when = first.recorded_at - 3600 * (12 - i)
            append_run(history, {
                "uid": f"earlier{i}", "recorded_at": when, "commit": f"{i:02d}" + "e" * 38,
                "commit_time": when, "branch": "main", "dirty": False, "host": "ci",
                "source": "test", "packages": {**first.packages, "numpy": "1.0.0"}},
                [dict(r.report, throughput_avg=r.metrics["throughput"] * (1 + (i % 3 - 1) / 100))
                 for r in first.results])
    git(project.path, "commit", "-q", "--allow-empty", "-m", "slower")
    slower = git(project.path, "rev-parse", "HEAD")[:8]
    monkeypatch.setenv("SLOWDOWN", "10")  # 20 ms a call: far below any speed of 2 ms
    outcomes = []
    for _ in range(3):
        result = run(project, f"--neuronperf-history={store}", "--neuronperf-history-gate")
        outcomes.append(result.parseoutcomes())
    assert outcomes[0].get("passed") == 2 and outcomes[1].get("passed") == 2
    assert outcomes[2].get("failed") == 2  # the third slow run makes the change point
    result.stdout.fnmatch_lines([
        f"*REGRESSED throughput -* at bs=1 n=1 w=1 p=1 (history: from the run of * (commits "
        f"11eeeeee..{slower}; numpy 1.0.0 -> *), confidence *, 3 run(s) since, tolerance "
        f"-12%)*"])
    assert "package versions changed: numpy 1.0.0 -> " in result.stdout.str()
