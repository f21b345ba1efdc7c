"""Every option from the ini file, and which duration wins: real pytest sessions (pytester)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from projects import ONE_CORE_DEVICE, PLAIN_TEST, SLEEP_MODEL, SLOWER, Run, perf_test, reports_of

TESTS = (SLEEP_MODEL
         + perf_test("test_default_duration", batch_sizes=None, duration=None, device="cpu")
         + perf_test("test_marker_duration", batch_sizes=None, duration=0.5)
         + PLAIN_TEST)


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_perf=TESTS)
    return pytester


def durations(path: Path) -> dict[str, float]:
    """Test name -> the duration its report says it measured."""
    reports = reports_of(path)
    return {r["test"].rsplit("::", 1)[1]: r["duration"] for r in reports}


def test_ini_duration_is_the_default_and_the_marker_wins(project: pytest.Pytester,
                                                         run: Run) -> None:
    project.makeini("""
        [pytest]
        neuronperf_duration = 0.3
        neuronperf_json = out/reports.json
    """)
    run().assert_outcomes(passed=3)
    assert durations(project.path / "out" / "reports.json") == {
        "test_default_duration": 0.3, "test_marker_duration": 0.5}


def test_command_line_duration_overrides_marker_and_ini(project: pytest.Pytester, run: Run) -> None:
    project.makeini("""
        [pytest]
        neuronperf_duration = 0.3
    """)
    run("--neuronperf-duration=0.25", "--neuronperf-json=r.json").assert_outcomes(
        passed=3)
    assert durations(project.path / "r.json") == {
        "test_default_duration": 0.25, "test_marker_duration": 0.25}


def test_ini_strict_device_and_csv(project: pytest.Pytester, run: Run) -> None:
    # a device neither the default nor the marker (cpu) names: only the ini file can choose it
    project.makeconftest(ONE_CORE_DEVICE)
    project.makeini("""
        [pytest]
        neuronperf_duration = 0.3
        neuronperf_device = onecore
        neuronperf_strict = true
        neuronperf_baseline = perf.json
        neuronperf_csv = out.csv
    """)
    result = run("-k", "default")
    # strict from the ini: a configuration with no baseline entry (NEW) fails its test
    result.assert_outcomes(failed=1, deselected=2)
    result.stdout.fnmatch_lines(["NEW bs=1 n=1 w=1 p=1: no baseline entry for this configuration"])
    with open(project.path / "out.csv", newline="") as handle:
        [columns] = list(csv.DictReader(handle))
    assert columns["device_type"] == "onecore"
    assert columns["verdict"] == "NEW"


def test_ini_baseline_save_and_tolerance(project: pytest.Pytester, run: Run,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    project.makeini("""
        [pytest]
        neuronperf_duration = 0.3
        neuronperf_baseline = perf/baseline.json
        neuronperf_save_baseline = true
    """)
    run("-k", "default").assert_outcomes(passed=1, deselected=2)
    assert (project.path / "perf" / "baseline.json").exists()
    monkeypatch.setenv("SLOWDOWN", SLOWER)
    project.makeini("""
        [pytest]
        neuronperf_duration = 0.3
        neuronperf_baseline = perf/baseline.json
    """)
    slower = run("-k", "default")
    slower.assert_outcomes(failed=1, deselected=2)
    slower.stdout.fnmatch_lines(["*REGRESSED*"])
    project.makeini("""
        [pytest]
        neuronperf_duration = 0.3
        neuronperf_baseline = perf/baseline.json
        neuronperf_tolerance = throughput:off,p50:off,p99:off
    """)
    run("-k", "default").assert_outcomes(passed=1, deselected=2)


def test_ini_skip_and_only(project: pytest.Pytester, run: Run) -> None:
    project.makeini("""
        [pytest]
        neuronperf_skip = true
    """)
    run().assert_outcomes(passed=1, skipped=2)
    project.makeini("""
        [pytest]
        neuronperf_only = true
        neuronperf_duration = 0.3
    """)
    run().assert_outcomes(passed=2, deselected=1)
