"""The pytest plugin as users run it: real pytest sessions (pytester) with real model processes."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from projects import (
    ONE_CORE_DEVICE,
    SLEEP_MODEL,
    SLOWER,
    Run,
    baseline_entries,
    load_json,
    perf_test,
    reports_of,
    sleep_tests,
)

# Comparisons of unchanged code (A/A) in these tests check the flow, not this machine's noise: a
# sleep's p99 follows the scheduler's wake-up latency, which moves with whatever else the machine
# runs (CI measured +35 % between two runs once). The gate's false-failure rate is measured by
# benchmarks/gate_study_engine.py instead; here the A/A runs use tolerances wide enough that
# only a broken plugin fails them.
LOOSE_TOLERANCE = "--neuronperf-tolerance=throughput:40%,p50:40%,p99:300%"


def test_marker_is_documented(run: Run) -> None:
    result = run("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.neuronperf(batch_sizes=*"])


def test_save_then_compare_passes(perf_project: pytest.Pytester, run: Run) -> None:
    baseline = perf_project.path / "baseline.json"
    saved = run(f"--neuronperf-baseline={baseline}", "--neuronperf-save-baseline")
    saved.assert_outcomes(passed=2)
    saved.stdout.fnmatch_lines(["*neuronperf summary*", "*bs=1 n=1 w=1 p=1*NEW*",
                                "*saved 2 configuration(s)*"])
    data = load_json(baseline)
    assert data["format"] == "pytest-neuronperf-baseline" and data["version"] == 1
    assert set(baseline_entries(baseline)["test_models.py::test_sleep"]) == {
        "bs=1,n_models=1,workers=1,pipeline=1", "bs=2,n_models=1,workers=1,pipeline=1"}
    for entry in baseline_entries(baseline)["test_models.py::test_sleep"].values():
        # saving measured two launches and says which windows each gave
        assert len(entry["launch_windows"]) == 2
        assert sum(entry["launch_windows"]) == len(entry["windows"]["throughput"])
    compared = run(f"--neuronperf-baseline={baseline}", LOOSE_TOLERANCE)
    compared.assert_outcomes(passed=2)
    assert "REGRESSED" not in compared.stdout.str()
    compared.stdout.fnmatch_lines(["*neuronperf: baseline*machine*"])


def test_injected_slowdown_fails_with_regressed_confirmed_by_a_second_run(
        perf_project: pytest.Pytester, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    baseline = perf_project.path / "baseline.json"
    run(f"--neuronperf-baseline={baseline}", "--neuronperf-save-baseline")
    before = baseline.read_bytes()
    monkeypatch.setenv("SLOWDOWN", SLOWER)
    result = run(f"--neuronperf-baseline={baseline}", "--neuronperf-json=r.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*neuronperf gate failed*",
        "*test_sleep*REGRESSED*",
        "*metric*baseline*now*delta*tolerance*",
        "*1 failed, 1 passed*",
    ])
    assert baseline.read_bytes() == before  # comparing never writes
    reports = reports_of(perf_project.path / "r.json")
    assert {r["verdict"] for r in reports} == {"REGRESSED"}
    for report in reports:  # measured twice, judged on both runs' windows
        assert report["recheck"]["status"] == "ok"
        assert len(report["windows"]["throughput"]) == 20


def test_budget_miss_fails_with_over_budget(pytester: pytest.Pytester, run: Run) -> None:
    pytester.makepyfile(sleep_tests(p50_ms=0.5))
    result = run()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*OVER_BUDGET*", "*p50 budget*"])


def test_throughput_floor_applies_without_a_baseline(pytester: pytest.Pytester, run: Run) -> None:
    pytester.makepyfile(sleep_tests(min_throughput=1e6))
    result = run()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*OVER_BUDGET*"])


def other_machine_baseline(path: Path) -> None:
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
        perf_project: pytest.Pytester, run: Run) -> None:
    baseline = perf_project.path / "baseline.json"
    other_machine_baseline(baseline)
    result = run(f"--neuronperf-baseline={baseline}")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*no results for this machine*it has: 0123456789ab*Imaginary*",
                                 "*2 NEW*"])


def test_strict_fails_new_configurations(perf_project: pytest.Pytester, run: Run) -> None:
    baseline = perf_project.path / "baseline.json"
    other_machine_baseline(baseline)
    result = run(f"--neuronperf-baseline={baseline}", "--neuronperf-strict")
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
        perf_project: pytest.Pytester, run: Run, content: str, expected: str) -> None:
    baseline = perf_project.path / "baseline.json"
    baseline.write_text(content)
    result = run(f"--neuronperf-baseline={baseline}", "--neuronperf-save-baseline")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{baseline.name}*"])
    result.stderr.fnmatch_lines([expected])
    assert baseline.read_text() == content


def test_unknown_marker_keyword_is_a_usage_error_naming_the_test(
        pytester: pytest.Pytester, run: Run) -> None:
    pytester.makepyfile(sleep_tests(n_models=None, n_model=1))
    result = run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*test_*.py::test_sleep: neuronperf marker: unknown keyword 'n_model' "
         "(did you mean 'n_models'?)*"])


def test_bad_marker_value_and_bad_option_are_usage_errors(pytester: pytest.Pytester,
                                                          run: Run) -> None:
    pytester.makepyfile(sleep_tests(duration=-1))
    result = run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_sleep*duration must be a positive number, got -1*"])
    result = run("--neuronperf-duration=soon")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--neuronperf-duration*positive number*'soon'*"])
    result = run("--neuronperf-tolerance=p99:lots")
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_reports_files_carry_test_verdict_baseline_and_delta(
        perf_project: pytest.Pytester, run: Run) -> None:
    baseline = perf_project.path / "baseline.json"
    run(f"--neuronperf-baseline={baseline}", "--neuronperf-save-baseline")
    result = run(f"--neuronperf-baseline={baseline}", LOOSE_TOLERANCE,
                 "--neuronperf-json=out/r.json", "--neuronperf-csv=out/r.csv")
    result.assert_outcomes(passed=2)
    reports = reports_of(perf_project.path / "out" / "r.json")
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


def test_ini_options_are_read(perf_project: pytest.Pytester, run: Run) -> None:
    perf_project.makeini("""
        [pytest]
        neuronperf_baseline = perf/baseline.json
        neuronperf_save_baseline = true
        neuronperf_duration = 0.4
    """)
    result = run()
    result.assert_outcomes(passed=2)
    entries = baseline_entries(perf_project.path / "perf" / "baseline.json")
    entry = entries["test_models.py::test_sleep"]
    assert entry["bs=1,n_models=1,workers=1,pipeline=1"]["metrics"]["throughput_avg"] > 0


def test_skip_and_only(perf_project: pytest.Pytester, run: Run) -> None:
    run("--neuronperf-skip").assert_outcomes(passed=1, skipped=1)
    only = run("--neuronperf-only")
    only.assert_outcomes(passed=1, deselected=1)


TWO_CALLS = perf_test("test_two_calls", batch_sizes=None, duration=0.3, body="""\
neuronperf.benchmark(SleepModel, X, framework="python", name="first")
    neuronperf.benchmark(SleepModel, X, framework="python", name="second", batch_sizes=2)""")
UNNAMED_TWICE = perf_test("test_unnamed_twice", batch_sizes=None, duration=0.3, body="""\
neuronperf.benchmark(SleepModel, X, framework="python")
    neuronperf.benchmark(SleepModel, X, framework="python")""")


def test_named_calls_are_recorded_apart(pytester: pytest.Pytester, run: Run) -> None:
    pytester.makepyfile(test_models=SLEEP_MODEL + TWO_CALLS + UNNAMED_TWICE)
    result = run("--neuronperf-json=r.json", "--junitxml=junit.xml")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*give each call its own name=*"])
    tests = {r["test"] for r in reports_of(pytester.path / "r.json")}
    assert {"test_models.py::test_two_calls::first",
            "test_models.py::test_two_calls::second"} <= tests
    # JUnit properties name the call: neuronperf[NAME bs=...] (docs/results.md)
    [case] = [c for c in ET.parse(pytester.path / "junit.xml").iter("testcase")
              if c.get("name") == "test_two_calls"]
    properties = {p.get("name") for p in case.iter("property")}
    assert {"neuronperf[first bs=1 n=1 w=1 p=1].verdict",
            "neuronperf[second bs=2 n=1 w=1 p=1].throughput"} <= properties


CUSTOM_HOOKS = ONE_CORE_DEVICE + '''

def pytest_neuronperf_verdict(config, report, judgement):
    if report["batch_size"] == 2:
        return "REGRESSED"
    return None
'''


def test_custom_device_backend_and_verdict_override_via_hooks(pytester: pytest.Pytester,
                                                              run: Run) -> None:
    pytester.makeconftest(CUSTOM_HOOKS)
    pytester.makepyfile(sleep_tests(n_models="max", device="onecore"))
    result = run("--neuronperf-json=r.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*bs=2*REGRESSED*"])
    reports = reports_of(pytester.path / "r.json")
    assert {r["device_type"] for r in reports} == {"onecore"}
    assert {r["n_models"] for r in reports} == {1}
    assert reports[0]["fingerprint"]["devices"] == ["imaginary accelerator"]


def test_xdist_workers_merge_into_one_baseline(pytester: pytest.Pytester, run: Run,
                                              cores: list[int], two_cores: list[int]) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(test_models=SLEEP_MODEL + perf_test(
        "test_case", cases=4, n_models="max", batch_sizes=None, duration=0.3))
    baseline = pytester.path / "baseline.json"
    result = run("-n", "2", f"--neuronperf-baseline={baseline}", "--neuronperf-save-baseline",
                 "--neuronperf-json=r.json")
    result.assert_outcomes(passed=4)
    assert result.stdout.str().count("neuronperf summary") == 1
    assert sorted(baseline_entries(baseline)) == [
        f"test_models.py::test_case[{i}]" for i in range(4)]
    reports = reports_of(pytester.path / "r.json")
    assert len(reports) == 4
    # every worker got its own disjoint slice of the cores: half of them each
    assert {r["n_models"] for r in reports} == {len(cores) // 2}
