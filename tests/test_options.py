"""Every option from the ini file, and which duration wins: real pytest sessions (pytester)."""

from __future__ import annotations

import csv
import json

import pytest

pytest_plugins = ["pytester"]

TESTS = '''
import os
import time

import numpy as np
import pytest


class SleepModel:
    def __init__(self):
        self.delay = 0.002 * float(os.environ.get("SLOWDOWN", "1"))

    def __call__(self, x):
        time.sleep(self.delay)
        return x


X = np.zeros((1, 4), dtype=np.float32)


@pytest.mark.neuronperf(n_models=1, workers_per_model=1, warmup=0.05)
def test_default_duration(neuronperf):
    neuronperf.benchmark(SleepModel, X, framework="python")


@pytest.mark.neuronperf(n_models=1, workers_per_model=1, warmup=0.05, duration=0.5)
def test_marker_duration(neuronperf):
    neuronperf.benchmark(SleepModel, X, framework="python")


def test_plain():
    assert True
'''


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_perf=TESTS)
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


def durations(path) -> dict[str, float]:  # type: ignore[no-untyped-def]
    reports = json.loads(path.read_text())["reports"]
    return {r["test"].rsplit("::", 1)[1]: r["duration"] for r in reports}


def test_ini_duration_is_the_default_and_the_marker_wins(project: pytest.Pytester) -> None:
    project.makeini("""
        [pytest]
        neuronperf_duration = 0.3
        neuronperf_json = out/reports.json
    """)
    run(project).assert_outcomes(passed=3)
    assert durations(project.path / "out" / "reports.json") == {
        "test_default_duration": 0.3, "test_marker_duration": 0.5}


def test_command_line_duration_overrides_marker_and_ini(project: pytest.Pytester) -> None:
    project.makeini("""
        [pytest]
        neuronperf_duration = 0.3
    """)
    run(project, "--neuronperf-duration=0.25", "--neuronperf-json=r.json").assert_outcomes(
        passed=3)
    assert durations(project.path / "r.json") == {
        "test_default_duration": 0.25, "test_marker_duration": 0.25}


def test_ini_strict_device_and_csv(project: pytest.Pytester) -> None:
    project.makeini("""
        [pytest]
        neuronperf_duration = 0.3
        neuronperf_device = cpu
        neuronperf_strict = true
        neuronperf_baseline = perf.json
        neuronperf_csv = out.csv
    """)
    result = run(project, "-k", "default")
    # strict from the ini: a configuration with no baseline entry (NEW) fails its test
    result.assert_outcomes(failed=1, deselected=2)
    result.stdout.fnmatch_lines(["NEW bs=1 n=1 w=1 p=1: no baseline entry for this configuration"])
    with open(project.path / "out.csv", newline="") as handle:
        [columns] = list(csv.DictReader(handle))
    assert columns["device_type"] == "cpu"
    assert columns["verdict"] == "NEW"


def test_ini_baseline_save_and_tolerance(project: pytest.Pytester,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    project.makeini("""
        [pytest]
        neuronperf_duration = 0.3
        neuronperf_baseline = perf/baseline.json
        neuronperf_save_baseline = true
    """)
    run(project, "-k", "default").assert_outcomes(passed=1, deselected=2)
    assert (project.path / "perf" / "baseline.json").exists()
    monkeypatch.setenv("SLOWDOWN", "4")
    project.makeini("""
        [pytest]
        neuronperf_duration = 0.3
        neuronperf_baseline = perf/baseline.json
    """)
    slower = run(project, "-k", "default")
    slower.assert_outcomes(failed=1, deselected=2)
    slower.stdout.fnmatch_lines(["*REGRESSED*"])
    project.makeini("""
        [pytest]
        neuronperf_duration = 0.3
        neuronperf_baseline = perf/baseline.json
        neuronperf_tolerance = throughput:off,p50:off,p99:off
    """)
    run(project, "-k", "default").assert_outcomes(passed=1, deselected=2)


def test_ini_skip_and_only(project: pytest.Pytester) -> None:
    project.makeini("""
        [pytest]
        neuronperf_skip = true
    """)
    run(project).assert_outcomes(passed=1, skipped=2)
    project.makeini("""
        [pytest]
        neuronperf_only = true
        neuronperf_duration = 0.3
    """)
    run(project).assert_outcomes(passed=2, deselected=1)
