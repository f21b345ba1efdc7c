"""What a user sees: --help, the failing test's line, the summary's figures and notes, the
Markdown step summary, JUnit properties, report files, progress (issue 12)."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from projects import SLOWER, Run, sleep_tests

from pytest_neuronperf import formatting
from pytest_neuronperf.devices.cpu import usable_cpus
from pytest_neuronperf.engine.progress import Estimate, Progress
from pytest_neuronperf.plugin.progress import TerminalProgress
from pytest_neuronperf.plugin.session import unmeasured_reason
from pytest_neuronperf.reporting import files, tables
from pytest_neuronperf.reporting.markdown import format_markdown

PERF_TESTS = sleep_tests(plain=False)


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_works_with_the_plugin_installed(run: Run, flag: str) -> None:
    result = run(flag)
    assert result.ret == 0, result.stderr.str()
    # each value is named for what it is, as the README's option table names it
    result.stdout.fnmatch_lines(["*--neuronperf-baseline=PATH*", "*--neuronperf-tolerance=SPEC*",
                                 "*p99:10%,p50:10%*", "*--neuronperf-duration=S",
                                 "*--neuronperf-device=NAME*", "*--neuronperf-html=PATH*",
                                 "*--neuronperf-against=REV*",
                                 "*--neuronperf-paired-tolerance=SPEC*",
                                 "*--neuronperf-history=PATH_OR_URL*",
                                 "*--neuronperf-profile=[[]MODE[]]*"])
    assert "=VALUE" not in result.stdout.str()


@pytest.fixture(scope="module")
def regressed_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """One recorded baseline and one run five times slower, for a shorter duration, with every
    output on: what a user of a failing CI job sees."""
    directory = tmp_path_factory.mktemp("regressed")
    (directory / "test_models.py").write_text(PERF_TESTS)
    common = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist",
              "--neuronperf-baseline=perf.json"]
    subprocess.run([*common, "--neuronperf-save-baseline", "--neuronperf-json=old.json"],
                   cwd=directory, check=True, capture_output=True)
    env = {**os.environ, "SLOWDOWN": SLOWER, "GITHUB_STEP_SUMMARY": str(directory / "step.md"),
           "COLUMNS": "200"}
    done = subprocess.run([*common, "--neuronperf-duration=0.5", "--neuronperf-json=new.json",
                           "--neuronperf-html=report.html", "--junitxml=junit.xml", "-rf"],
                          cwd=directory, env=env, capture_output=True, text=True)
    return {"dir": directory, "ret": done.returncode, "out": done.stdout}


def test_failing_test_line_names_configuration_metric_and_change(regressed_run) -> None:
    assert regressed_run["ret"] == 1
    out = str(regressed_run["out"])
    assert re.search(r"FAILED test_models.py::test_sleep - Failed: REGRESSED throughput "
                     r"-\d+\.\d% at bs=\d n=1 w=1 p=1 \(tolerance -12%\)", out)


def test_summary_shows_the_figures_the_verdict_used(regressed_run) -> None:
    out = str(regressed_run["out"]).splitlines()
    reports = files.get_reports(Path(str(regressed_run["dir"])) / "new.json")
    header = next(line for line in out if line.startswith("test / configuration"))
    # every gated metric has its columns (the copies' peak memory is gated too, after these)
    assert header.split()[3:15] == ["throughput", "/s", "base", "Δ", "p50", "ms", "base", "Δ",
                                    "p99", "ms", "base", "Δ"]
    assert header.split()[-1] == "verdict"
    for report in reports:
        row = next(line for line in out if line.strip().startswith(tables.config_label(report)))
        gate = report["gate"]
        expected = []
        for metric in ("throughput", "latency_ms_p50", "latency_ms_p99"):
            expected += [formatting.number(gate[metric]["now"]),
                         formatting.number(gate[metric]["baseline"]),
                         formatting.percent(gate[metric]["delta"])]
        assert row.split()[4:13] == expected and row.split()[-1] == "REGRESSED"
        # the gate's medians, not one run's average: the recheck pooled two runs' windows
        assert gate["throughput"]["now"] != report["throughput_avg"]


def test_a_duration_other_than_the_baseline_is_named(regressed_run) -> None:
    assert ("test_models.py::test_sleep was measured for 0.5 s but its baseline for 0.6 s"
            in str(regressed_run["out"]))


def test_markdown_step_summary_lists_the_regressions(regressed_run) -> None:
    text = (Path(str(regressed_run["dir"])) / "step.md").read_text()
    assert text.startswith("## neuronperf\n")
    assert "2 configuration(s): **2 REGRESSED**" in text
    rows = [line for line in text.splitlines() if line.startswith("| REGRESSED |")]
    assert len(rows) == 2 and all("`test_models.py::test_sleep`" in row for row in rows)
    assert "- test_models.py::test_sleep was measured for 0.5 s" in text


def test_junit_xml_carries_each_configuration_headline(regressed_run) -> None:
    tree = ET.parse(Path(str(regressed_run["dir"])) / "junit.xml")
    properties = {p.get("name"): p.get("value") for p in tree.iter("property")}
    assert properties["neuronperf[bs=1 n=1 w=1 p=1].verdict"] == "REGRESSED"
    assert float(properties["neuronperf[bs=2 n=1 w=1 p=1].throughput.delta"]) < -0.12
    assert float(properties["neuronperf[bs=2 n=1 w=1 p=1].latency_ms_p99"]) > 0


def test_html_report_is_written_with_every_test(regressed_run) -> None:
    page = (Path(str(regressed_run["dir"])) / "report.html").read_text()
    assert "test_models.py::test_sleep" in page and page.count("data:image/png;base64,") == 3
    # nothing to fetch: the only address left once an SVG's namespace name is taken out is none
    addresses = re.sub(r"""xmlns(:\w+)?=['"]http://www\.w3\.org/[^'"]*['"]""", "", page)
    assert "http://" not in addresses and "https://" not in addresses


def test_unmeasured_baseline_configurations_are_listed(
        pytester: pytest.Pytester, run: Run, two_cores: list[int]) -> None:
    grid = sleep_tests(plain=False, n_models=[1, "max"])
    # two perf tests, one per xdist worker: a worker with no test may leave the host's registry
    # before the other seals the split, and then that one gets the whole machine
    pytester.makepyfile(test_models=grid, test_other=grid)
    pytester.makeini("[pytest]\nneuronperf_tolerance = throughput:off,p50:off,p99:off\n")
    result = run("-p", "no:xdist", "--neuronperf-baseline=perf.json",
                 "--neuronperf-save-baseline")
    result.assert_outcomes(passed=2)
    # under xdist a worker's share decides what "max" is: xdist schedules no test before both
    # workers have registered, so each worker's share is half the machine (docs/xdist.md)
    result = run("-n", "2", "--neuronperf-baseline=perf.json", "--neuronperf-json=r.json")
    result.assert_outcomes(passed=2)
    reports = [r for r in files.get_reports(pytester.path / "r.json")
               if r["test"].startswith("test_models.py")]
    machine = len(usable_cpus())
    assert {r["worker"] for r in files.get_reports(pytester.path / "r.json")} == {"gw0", "gw1"}
    assert reports[0]["core_share"] == {"used": machine // 2, "machine": machine}
    if machine == 2:  # "max" is 1 copy here: n=2 was not measured, and the summary says why
        assert len(reports) == 2
        result.stdout.fnmatch_lines([
            "*test_models.py::test_sleep: 2 baseline configuration(s) not measured this run: "
            "bs=1 n=2 w=1 p=1 (needs 2 cores; this pytest-xdist worker had 1 of the machine's "
            "2: run with fewer workers to measure it); bs=2 n=2 w=1 p=1 (needs 2 cores*"])
    pytester.makepyfile(test_models=sleep_tests(plain=False))
    result = run("-p", "no:xdist", "--neuronperf-baseline=perf.json")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([
        f"*test_models.py::test_sleep: 2 baseline configuration(s) not measured this run: "
        f"bs=1 n={machine} w=1 p=1 (not in this run's configurations: marker, overrides or a "
        f"filter); bs=2 n={machine} w=1 p=1 (not in this run's configurations*"])


def test_a_busy_machine_is_named_in_the_failure_and_the_summary(
        pytester: pytest.Pytester, run: Run) -> None:
    # a busy loop on the core the copy measures on: most of that core's time goes to it
    pytester.makepyfile(test_models=sleep_tests(plain=False, batch_sizes=[1], p50_ms=0.001))
    core = usable_cpus()[0]
    hog = subprocess.Popen([sys.executable, "-c", f"import os\nos.sched_setaffinity(0, {{{core}}})"
                            f"\nwhile True:\n    pass"])
    try:
        result = run("-p", "no:xdist", "--neuronperf-json=r.json")
    finally:
        hog.kill()
        hog.wait()
    result.assert_outcomes(failed=1)  # a missed budget: the failure shows the evidence
    [report] = files.get_reports(pytester.path / "r.json")
    assert report["interference"]["other_pct"] > 10, report["interference"]
    result.stdout.fnmatch_lines([
        "*note: busy machine: *% of the measured cores' time went to other processes, *% was "
        "stolen by the hypervisor; figures from a busy machine are less reliable*",
        "*neuronperf: 1 configuration(s) measured on a busy machine (up to *% of the measured "
        "cores' time went to other processes): their figures are less reliable; paired mode "
        "(--neuronperf-against) cancels such drift*"])


def test_unmeasured_reasons() -> None:
    key = "bs=8,n_models=2,workers=1,pipeline=1"
    assert unmeasured_reason(key, {"used": 2, "machine": 2}) == (
        "bs=8 n=2 w=1 p=1 (not in this run's configurations: marker, overrides or a filter)")
    assert unmeasured_reason(key, {"used": 1, "machine": 1}) == (
        "bs=8 n=2 w=1 p=1 (needs 2 cores; this run had 1)")


def test_markdown_without_failures_says_so() -> None:
    text = format_markdown([{"test": "t", "batch_size": 1, "verdict": "PASS"}])
    assert "1 configuration(s): 1 PASS" in text and "Every configuration passed." in text


def test_csv_cells_are_flat(tmp_path: Path) -> None:
    report = {"batch_size": 2, "delta": {"throughput": -0.25}, "cores": ["0", "1"],
              "windows": {"throughput": [1.5, 2.0]}, "timers": {"latency_ms": [[1, 2], [3]]},
              "error": None}
    path = files.write_csv([report], tmp_path / "r.csv")
    header, row = Path(path).read_text().splitlines()
    assert header == "batch_size,delta.throughput,cores,windows.throughput,timers.latency_ms,error"
    assert row == "2,-0.25,0;1,1.5;2.0,1;2|3,"
    only = files.write_csv([report], tmp_path / "s.csv", cols=["delta", "batch_size"])
    assert Path(only).read_text().splitlines()[0] == "delta.throughput,batch_size"


def test_print_reports_shows_the_column_it_sorts_by(capsys: pytest.CaptureFixture[str]) -> None:
    reports = [{"throughput_peak": 5.0, "batch_size": 1}, {"throughput_peak": 9.0,
                                                          "batch_size": 2}]
    tables.print_reports(reports, cols=["batch_size"], sort_by="throughput_peak", reverse=True)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["throughput_peak", "batch_size"]
    assert [line.split()[1] for line in lines[1:]] == ["2", "1"]


class FakeReporter:
    """The TerminalReporter calls the progress line uses."""

    verbosity = 1

    def __init__(self) -> None:
        self.lines: list[str] = []

    def ensure_newline(self) -> None:
        self.lines.append("<newline>")

    def rewrite(self, line: str, **markup: bool) -> None:
        self.lines.append(line)


def test_progress_line_counts_configurations_and_seconds() -> None:
    reporter = FakeReporter()
    progress = TerminalProgress(reporter, "test_mlp")
    progress(Progress("MLP", 1, 4, "bs=1 n=1 w=1 p=1", 16.0))
    progress.what = "recheck"
    progress(Progress("MLP", 1, 1, "bs=8 n=2 w=1 p=1", 4.0))
    progress.finish()
    assert reporter.lines[:3] == [
        "<newline>",
        "neuronperf test_mlp: configuration 1 of 4, bs=1 n=1 w=1 p=1, ~16 s left",
        "neuronperf test_mlp recheck: configuration 1 of 1, bs=8 n=2 w=1 p=1, ~4 s left"]
    assert reporter.lines[3].startswith("neuronperf test_mlp: measured in ")


def test_estimate_learns_the_overhead() -> None:
    now = [0.0]
    estimate = Estimate(3, duration=2.0, clock=lambda: now[0])
    assert estimate.start(1) == 3 * (2.0 + 1.0)
    now[0] = 2.5
    estimate.finish()
    assert estimate.start(2) == 2 * 2.5


def read_pty(args: list[str], cwd: Path, timeout: float = 120) -> str:
    """Everything a command writes to a terminal."""
    main, child = pty.openpty()
    proc = subprocess.Popen(args, cwd=cwd, stdin=child, stdout=child, stderr=child)
    os.close(child)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 1.0)
            if ready:
                try:
                    data = os.read(main, 65536)
                except OSError:
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
    finally:
        proc.kill()
        proc.wait()
        os.close(main)
    return b"".join(chunks).decode(errors="replace")


def test_live_progress_at_a_terminal_and_none_when_piped(pytester: pytest.Pytester,
                                                          run: Run) -> None:
    pytester.makepyfile(test_models=sleep_tests(plain=False, duration=0.3))
    shown = read_pty([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p",
                      "no:xdist"], pytester.path)
    assert "neuronperf test_sleep: configuration 1 of 2, bs=1 n=1 w=1 p=1, ~" in shown
    assert "configuration 2 of 2, bs=2 n=1 w=1 p=1" in shown
    assert "neuronperf test_sleep: measured in" in shown and "1 passed" in shown
    piped = run("-p", "no:xdist")
    piped.assert_outcomes(passed=1)
    assert "configuration 1 of" not in piped.stdout.str()


LIBRARY_SCRIPT = '''
import os, sys, time
import numpy as np
import pytest_neuronperf as npf

class Broken:
    def __call__(self, x):
        raise RuntimeError("shape mismatch")

class Sleepy:
    def __call__(self, x):
        time.sleep(0.001)
        return x

if __name__ == "__main__":
    model = Broken if sys.argv[1] == "broken" else Sleepy
    reports = npf.cpu.benchmark(model, np.zeros((1, 4), np.float32), batch_sizes=[1, 2],
                                n_models=1, workers_per_model=[1, 2], duration=0.3,
                                warmup=0.02, verbosity=int(sys.argv[2]))
'''


def test_library_progress_at_verbosity_1_and_errors_said_once(tmp_path: Path) -> None:
    script = tmp_path / "bench.py"
    script.write_text(LIBRARY_SCRIPT)

    def stderr(*args: str) -> str:
        return subprocess.run([sys.executable, str(script), *args], cwd=tmp_path,
                              capture_output=True, text=True, check=True).stderr

    shown = stderr("sleepy", "1")
    assert re.search(r"Benchmarking 'Sleepy' bs=1 n=1 w=1 p=1 \(configuration 1 of 4\), "
                     r"~\d+ seconds remaining", shown)
    assert "configuration 4 of 4" in shown and "throughput" in shown
    assert stderr("sleepy", "0") == ""
    broken = stderr("broken", "1").splitlines()
    errors = [line for line in broken if "shape mismatch" in line]
    assert len(errors) == 2, broken  # the first one, then a count for the other three
    assert "the same error in 3 more configuration(s)" in errors[1]


def test_json_reports_keep_a_latency_sketch_not_every_call(regressed_run) -> None:
    report = json.loads((Path(str(regressed_run["dir"])) / "new.json").read_text())["reports"][0]
    sketch = report["latency_sketch"]
    assert len(sketch["ms"]) == len(sketch["percent"]) == 103
    assert sketch["ms"] == sorted(sketch["ms"]) and sketch["percent"][-2:] == [99.9, 100.0]
