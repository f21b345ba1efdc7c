"""The pytest plugin as users run it: real pytest sessions (pytester) with real model processes."""

from __future__ import annotations

import json

import pytest

pytest_plugins = ["pytester"]

# A sleep-based model: its latency hardly depends on CPU load, so the gate's verdicts in these
# tests are about the plugin, not about this machine's noise. SLOWDOWN scales the sleep.
PERF_TESTS = '''
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


@pytest.mark.neuronperf(batch_sizes=[1, 2], n_models=1, workers_per_model=1, duration=0.6,
                        warmup=0.05)
def test_sleep(neuronperf):
    reports = neuronperf.benchmark(SleepModel, X, framework="python")
    assert [r["status"] for r in reports] == ["ok", "ok"]


def test_not_perf():
    assert True
'''


@pytest.fixture
def perf_project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A project with one perf test (two configurations) and one plain test."""
    pytester.makepyfile(test_models=PERF_TESTS)
    return pytester


# Comparisons of unchanged code (A/A) in these tests check the flow, not this machine's noise: a
# sleep's p99 follows the scheduler's wake-up latency, which moves with whatever else the machine
# runs (CI measured +35 % between two runs once). The gate's false-failure rate is measured by
# benchmarks/gate_study_engine.py instead; here the A/A runs use tolerances wide enough that
# only a broken plugin fails them.
LOOSE_TOLERANCE = "--neuronperf-tolerance=throughput:40%,p50:40%,p99:300%"


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """Run pytest in a subprocess, as a user would."""
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


def load(path) -> dict:  # type: ignore[no-untyped-def]
    """A JSON file's content."""
    return json.loads(path.read_text())


def test_marker_is_documented(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.neuronperf(batch_sizes=*"])


def test_save_then_compare_passes(perf_project: pytest.Pytester) -> None:
    baseline = perf_project.path / "baseline.json"
    saved = run(perf_project, f"--neuronperf-baseline={baseline}", "--neuronperf-save-baseline")
    saved.assert_outcomes(passed=2)
    saved.stdout.fnmatch_lines(["*neuronperf summary*", "*bs=1 n=1 w=1 p=1*NEW*",
                                "*saved 2 configuration(s)*"])
    data = load(baseline)
    assert data["format"] == "pytest-neuronperf-baseline" and data["version"] == 1
    [machine] = data["machines"].values()
    assert set(machine["tests"]["test_models.py::test_sleep"]) == {
        "bs=1,n_models=1,workers=1,pipeline=1", "bs=2,n_models=1,workers=1,pipeline=1"}
    for entry in machine["tests"]["test_models.py::test_sleep"].values():
        # saving measured two launches and says which windows each gave
        assert len(entry["launch_windows"]) == 2
        assert sum(entry["launch_windows"]) == len(entry["windows"]["throughput"])
    compared = run(perf_project, f"--neuronperf-baseline={baseline}", LOOSE_TOLERANCE)
    compared.assert_outcomes(passed=2)
    assert "REGRESSED" not in compared.stdout.str()
    compared.stdout.fnmatch_lines(["*neuronperf: baseline*machine*"])


def test_injected_slowdown_fails_with_regressed(perf_project: pytest.Pytester,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    baseline = perf_project.path / "baseline.json"
    run(perf_project, f"--neuronperf-baseline={baseline}", "--neuronperf-save-baseline")
    before = baseline.read_bytes()
    monkeypatch.setenv("SLOWDOWN", "1.5")
    result = run(perf_project, f"--neuronperf-baseline={baseline}")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*neuronperf gate failed*",
        "*test_sleep*REGRESSED*",
        "*metric*baseline*now*delta*tolerance*",
        "*1 failed, 1 passed*",
    ])
    assert baseline.read_bytes() == before  # comparing never writes


def test_a_regression_is_confirmed_by_a_second_run(perf_project: pytest.Pytester,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    baseline = perf_project.path / "baseline.json"
    run(perf_project, f"--neuronperf-baseline={baseline}", "--neuronperf-save-baseline")
    monkeypatch.setenv("SLOWDOWN", "1.5")
    run(perf_project, f"--neuronperf-baseline={baseline}", "--neuronperf-json=r.json")
    reports = load(perf_project.path / "r.json")["reports"]
    assert {r["verdict"] for r in reports} == {"REGRESSED"}
    for report in reports:  # measured twice, judged on both runs' windows
        assert report["recheck"]["status"] == "ok"
        assert len(report["windows"]["throughput"]) == 20


def test_budget_miss_fails_with_over_budget(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(PERF_TESTS.replace("warmup=0.05)", "warmup=0.05, p50_ms=0.5)"))
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*OVER_BUDGET*", "*p50 budget*"])


def test_throughput_floor_applies_without_a_baseline(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(PERF_TESTS.replace("warmup=0.05)", "warmup=0.05, min_throughput=1e6)"))
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*OVER_BUDGET*"])


def other_machine_baseline(path) -> None:  # type: ignore[no-untyped-def]
    """A baseline recorded on some other machine only."""
    path.write_text(json.dumps({
        "format": "pytest-neuronperf-baseline", "version": 1,
        "machines": {"0123456789ab": {
            "fingerprint": {"cpu": "Imaginary CPU 9000", "cores": 64, "device_type": "cpu",
                            "devices": [], "python": "3.11", "torch": "2.13.0"},
            "tests": {"test_models.py::test_sleep": {"bs=1,n_models=1,workers=1,pipeline=1": {
                "metrics": {"throughput_avg": 1.0}, "windows": {"throughput": [1.0] * 10}}}}}},
    }))


def test_baseline_from_another_machine_gives_new_and_names_it(
        perf_project: pytest.Pytester) -> None:
    baseline = perf_project.path / "baseline.json"
    other_machine_baseline(baseline)
    result = run(perf_project, f"--neuronperf-baseline={baseline}")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*no results for this machine*it has: 0123456789ab*Imaginary*",
                                 "*2 NEW*"])


def test_strict_fails_new_configurations(perf_project: pytest.Pytester) -> None:
    baseline = perf_project.path / "baseline.json"
    other_machine_baseline(baseline)
    result = run(perf_project, f"--neuronperf-baseline={baseline}", "--neuronperf-strict")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_sleep*NEW*"])


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"format": "pytest-neuronperf-baseline", "version": 1, "machines": {',
         "*not valid JSON*"),
        ('{"format": "pytest-neuronperf-baseline", "version": 99, "machines": {}}', "*newer*"),
    ],
)
def test_unusable_baseline_is_a_clear_error_and_stays_untouched(
        perf_project: pytest.Pytester, content: str, expected: str) -> None:
    baseline = perf_project.path / "baseline.json"
    baseline.write_text(content)
    result = run(perf_project, f"--neuronperf-baseline={baseline}", "--neuronperf-save-baseline")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{baseline.name}*"])
    result.stderr.fnmatch_lines([expected])
    assert baseline.read_text() == content


def test_unknown_marker_keyword_is_a_usage_error_naming_the_test(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(PERF_TESTS.replace("n_models=1,", "n_model=1,"))
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*test_*.py::test_sleep: neuronperf marker: unknown keyword 'n_model' "
         "(did you mean 'n_models'?)*"])


def test_bad_marker_value_and_bad_option_are_usage_errors(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(PERF_TESTS.replace("duration=0.6", "duration=-1"))
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_sleep*duration must be a positive number, got -1*"])
    result = run(pytester, "--neuronperf-duration=soon")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--neuronperf-duration*positive number*'soon'*"])
    result = run(pytester, "--neuronperf-tolerance=p99:lots")
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_reports_files_carry_test_verdict_baseline_and_delta(
        perf_project: pytest.Pytester) -> None:
    baseline = perf_project.path / "baseline.json"
    run(perf_project, f"--neuronperf-baseline={baseline}", "--neuronperf-save-baseline")
    result = run(perf_project, f"--neuronperf-baseline={baseline}", LOOSE_TOLERANCE,
                 "--neuronperf-json=out/r.json", "--neuronperf-csv=out/r.csv")
    result.assert_outcomes(passed=2)
    reports = load(perf_project.path / "out" / "r.json")["reports"]
    assert len(reports) == 2
    for report in reports:
        assert report["test"] == "test_models.py::test_sleep"
        assert report["verdict"] in ("PASS", "IMPROVED", "INCONCLUSIVE")
        assert "throughput_avg" in report["baseline"]
        assert set(report["delta"]) >= {"throughput", "latency_ms_p99"}
    header = (perf_project.path / "out" / "r.csv").read_text().splitlines()[0]
    columns = set(header.split(","))
    assert {"test", "verdict", "baseline.throughput_avg", "delta.throughput",
            "gate.throughput.now", "gate.latency_ms_p50.baseline"} <= columns


def test_ini_options_are_read(perf_project: pytest.Pytester) -> None:
    perf_project.makeini("""
        [pytest]
        neuronperf_baseline = perf/baseline.json
        neuronperf_save_baseline = true
        neuronperf_duration = 0.4
    """)
    result = run(perf_project)
    result.assert_outcomes(passed=2)
    data = load(perf_project.path / "perf" / "baseline.json")
    [machine] = data["machines"].values()
    entry = machine["tests"]["test_models.py::test_sleep"]
    assert entry["bs=1,n_models=1,workers=1,pipeline=1"]["metrics"]["throughput_avg"] > 0


def test_skip_and_only(perf_project: pytest.Pytester) -> None:
    run(perf_project, "--neuronperf-skip").assert_outcomes(passed=1, skipped=1)
    only = run(perf_project, "--neuronperf-only")
    only.assert_outcomes(passed=1, deselected=1)


def test_named_calls_are_recorded_apart(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_models=PERF_TESTS + '''

@pytest.mark.neuronperf(n_models=1, workers_per_model=1, duration=0.3, warmup=0.05)
def test_two_calls(neuronperf):
    neuronperf.benchmark(SleepModel, X, framework="python", name="first")
    neuronperf.benchmark(SleepModel, X, framework="python", name="second", batch_sizes=2)


@pytest.mark.neuronperf(n_models=1, workers_per_model=1, duration=0.3, warmup=0.05)
def test_unnamed_twice(neuronperf):
    neuronperf.benchmark(SleepModel, X, framework="python")
    neuronperf.benchmark(SleepModel, X, framework="python")
''')
    result = run(pytester, "--neuronperf-json=r.json", "-k", "two_calls or unnamed")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*give each call its own name=*"])
    tests = {r["test"] for r in load(pytester.path / "r.json")["reports"]}
    assert {"test_models.py::test_two_calls::first",
            "test_models.py::test_two_calls::second"} <= tests


CUSTOM_HOOKS = '''
import os

from pytest_neuronperf.devices.base import Placement
from pytest_neuronperf.devices.cpu import usable_cpus


class OneCoreDevice:
    """A custom backend: pretends the machine has one core, and marks its copies' env."""

    name = "onecore"

    def is_available(self):
        return True

    def cores(self):
        return usable_cpus()[:1]

    def placements(self, cores, n_models, pipeline_size):
        return [Placement(device_type="onecore", copy_index=i, cores=(cores[i],),
                          env={"ONECORE": "yes"}, cpu_affinity=(cores[i],))
                for i in range(n_models)]

    def fingerprint(self):
        return {"device_type": "onecore", "devices": ["imaginary accelerator"]}


def pytest_neuronperf_add_devices(config):
    return {"onecore": OneCoreDevice()}


def pytest_neuronperf_verdict(config, report, judgement):
    if report["batch_size"] == 2:
        return "REGRESSED"
    return None
'''


def test_custom_device_backend_and_verdict_override_via_hooks(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CUSTOM_HOOKS)
    pytester.makepyfile(PERF_TESTS.replace("n_models=1,", "n_models='max', device='onecore',"))
    result = run(pytester, "--neuronperf-json=r.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*bs=2*REGRESSED*"])
    reports = load(pytester.path / "r.json")["reports"]
    assert {r["device_type"] for r in reports} == {"onecore"}
    assert {r["n_models"] for r in reports} == {1}
    assert reports[0]["fingerprint"]["devices"] == ["imaginary accelerator"]


XDIST_TESTS = '''
import time

import numpy as np
import pytest


class SleepModel:
    def __call__(self, x):
        time.sleep(0.002)
        return x


@pytest.mark.parametrize("case", range(4))
@pytest.mark.neuronperf(n_models="max", workers_per_model=1, duration=0.3, warmup=0.05)
def test_case(neuronperf, case):
    [report] = neuronperf.benchmark(SleepModel, np.zeros((1, 2)), framework="python")
    assert report["status"] == "ok"
'''


def test_xdist_workers_merge_into_one_baseline(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(test_models=XDIST_TESTS)
    baseline = pytester.path / "baseline.json"
    result = run(pytester, "-n", "2", f"--neuronperf-baseline={baseline}",
                 "--neuronperf-save-baseline", "--neuronperf-json=r.json")
    result.assert_outcomes(passed=4)
    assert result.stdout.str().count("neuronperf summary") == 1
    [machine] = load(baseline)["machines"].values()
    assert sorted(machine["tests"]) == [f"test_models.py::test_case[{i}]" for i in range(4)]
    reports = load(pytester.path / "r.json")["reports"]
    assert len(reports) == 4
    # every worker got its own disjoint slice of the cores
    from pytest_neuronperf.devices.cpu import usable_cpus

    if len(usable_cpus()) >= 2:
        assert {r["n_models"] for r in reports} == {len(usable_cpus()) // 2}
