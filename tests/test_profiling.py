"""Explaining a regression: profiles of head and base after the measurement, diffed.

The parts without processes first (trace tables, the diff's rules, the budget, the flame graph),
then real runs: three regressions against a git revision (a new operator, a doubled call count,
a slower ``postprocess_fn``) and identical code, a plain Python model, a crash while profiling,
TensorFlow, a stored baseline's profile, and the Neuron runtime's capture with the fake runtime.
Assertions are on names and counts, never on times.
"""

from __future__ import annotations

import cProfile
import json
import pstats
import re
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import pytest

from pytest_neuronperf.child import profile_traces as traces
from pytest_neuronperf.profiling import diff, explain
from pytest_neuronperf.profiling.html import flame_svg, profile_section
from pytest_neuronperf.profiling.run import window_plan
from pytest_neuronperf.profiling.summary import summarize
from pytest_neuronperf.protocol import messages

# -- tables from raw profiles -------------------------------------------------------------------


def test_self_time_is_a_span_minus_the_spans_directly_inside_it() -> None:
    spans = [(0.0, 10.0), (1.0, 4.0), (2.0, 1.0), (6.0, 3.0), (20.0, 2.0)]
    assert traces.self_times(spans) == [3.0, 3.0, 1.0, 3.0, 2.0]


def chrome_event(name: str, ts: float, dur: float, dims: Any = None, ext: int | None = None,
                 cat: str = "cpu_op", tid: int = 1) -> dict[str, Any]:
    """One complete event of a torch profiler's Chrome trace."""
    args: dict[str, Any] = {}
    if dims is not None:
        args["Input Dims"] = dims
    if ext is not None:
        args["External id"] = ext
    return {"ph": "X", "cat": cat, "name": name, "pid": 1, "tid": tid, "ts": ts, "dur": dur,
            "args": args}


def test_a_torch_trace_gives_operators_with_shapes_and_their_kernels_device_time() -> None:
    trace = {"traceEvents": [
        chrome_event("aten::linear", 0, 10, [[1, 256], [512, 256], [512]], 1),
        chrome_event("aten::addmm", 2, 7, [[512], [1, 256], [256, 512], [], []], 2),
        chrome_event("aten::linear", 20, 10, [[1, 256], [512, 256], [512]], 3),
        chrome_event("aten::addmm", 22, 7, [[512], [1, 256], [256, 512], [], []], 4),
        chrome_event("python_function", 0, 40, cat="python_function"),
        chrome_event("gemm_kernel", 50, 30, ext=2, cat="kernel", tid=7),
        {"ph": "M", "name": "process_name", "pid": 1},
    ]}
    rows = {row[0]: row[1:] for row in traces.torch_table(trace)}
    assert rows == {
        "aten::linear [1x256] [512x256] [512]": [2, 6000.0, 0.0],
        "aten::addmm [512] [1x256] [256x512]": [2, 14000.0, 30000.0],
    }


def test_a_preempted_call_does_not_make_an_operator_slow() -> None:
    calls = [chrome_event("aten::relu", 100 * i, 2, [[8]]) for i in range(9)]
    calls.append(chrome_event("aten::relu", 1000, 5000, [[8]]))  # descheduled for 5 ms
    [row] = traces.torch_table(calls)
    assert row == ["aten::relu [8]", 10, 20000.0, 0.0]


def postprocess(value: int) -> int:
    """A post-processing step that sleeps (the work a regression adds)."""
    time.sleep(0.0002)
    return value


class Layer:
    def forward(self, value: int) -> int:
        return postprocess(value) + 1


def test_python_rows_name_functions_by_qualified_name_and_built_ins_by_their_caller() -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for value in range(3):
        Layer().forward(value)
    profiler.disable()
    rows, stacks = traces.python_table(pstats.Stats(profiler).stats,  # type: ignore[attr-defined]
                                       sys.path, traces.qualified_names(profiler.getstats()))
    calls = {row[0]: row[1] for row in rows}
    assert calls["Layer.forward (test_profiling.py)"] == 3
    assert calls["<built-in method time.sleep> in postprocess (test_profiling.py)"] == 3
    paths = [path for path, _ in stacks]
    assert ["Layer.forward (test_profiling.py)", "postprocess (test_profiling.py)",
            "<built-in method time.sleep>"] in paths


def test_windows_alternate_abba_and_the_last_of_each_kind_keeps_its_trace() -> None:
    plan = window_plan(("operators", "python"), ("head", "base"), {"operators": 3, "python": 2})
    assert [(k[0], s) for k, s, _ in plan] == [
        ("o", "head"), ("o", "base"), ("o", "base"), ("o", "head"), ("o", "head"), ("o", "base"),
        ("p", "head"), ("p", "base"), ("p", "base"), ("p", "head")]
    assert [(k, s) for k, s, keep in plan if keep] == [
        ("operators", "head"), ("operators", "base"), ("python", "base"), ("python", "head")]


# -- the diff -----------------------------------------------------------------------------------


def window(table: dict[str, tuple[int, float]], calls: int = 10,
           kind: str = "operators") -> messages.Profiled:
    """A profile window of ``calls`` inferences: key -> (calls, self ns in the window)."""
    return messages.Profiled(kind, calls, 0.01,
                             [[key, n, ns, 0.0] for key, (n, ns) in table.items()])


def side(*tables: dict[str, tuple[int, float]]) -> dict[str, Any]:
    """A side's summary from operator windows of 10 inferences each."""
    return summarize([window(t) for t in tables], "torch")


BASE = {"aten::addmm [1x64]": (10, 400_000.0), "aten::relu [1x64]": (10, 100_000.0)}


def changes_of(base: dict[str, Any], head: dict[str, Any]) -> list[diff.Change]:
    return diff.diff(base, head)["operators"]


def test_a_new_operator_a_doubled_count_and_a_slower_call_are_named_first() -> None:
    base = side(BASE, BASE, BASE)
    new = side(*[{**BASE, "aten::addmm [1x32]": (10, 300_000.0)}] * 3)
    [first, *_] = changes_of(base, new)
    assert (first.key, first.kind, first.significant) == ("aten::addmm [1x32]", "new", True)
    assert first.line() == ("aten::addmm [1x32]: new, 0.03000 ms per call x 1 per inference "
                            "(+0.03000 ms per inference)")

    doubled = side(*[{**BASE, "aten::addmm [1x64]": (20, 800_000.0)}] * 3)
    [first, *_] = changes_of(base, doubled)
    assert (first.key, first.kind, first.base_calls, first.head_calls) == (
        "aten::addmm [1x64]", "calls", 1.0, 2.0)
    assert first.line().startswith("aten::addmm [1x64]: 1 -> 2 calls per inference, 0.04000 -> "
                                   "0.04000 ms per call")

    slower = side(*[{**BASE, "aten::relu [1x64]": (10, 200_000.0)}] * 3)
    [first, *_] = changes_of(base, slower)
    assert (first.key, first.kind, first.significant) == ("aten::relu [1x64]", "per call", True)
    assert first.line() == ("aten::relu [1x64]: 0.01000 -> 0.02000 ms per call (+100.0%), 1 calls "
                            "(+0.01000 ms per inference)")


def test_identical_or_overlapping_windows_change_nothing_significant() -> None:
    assert not any(c.significant for c in changes_of(side(BASE, BASE), side(BASE, BASE)))
    noisy = [{**BASE, "aten::relu [1x64]": (10, ns)} for ns in (90_000.0, 150_000.0, 110_000.0)]
    busier = [{**BASE, "aten::relu [1x64]": (10, ns)} for ns in (100_000.0, 160_000.0, 140_000.0)]
    assert not any(c.significant for c in changes_of(side(*noisy), side(*busier)))


def test_a_change_below_the_floor_is_not_significant() -> None:
    tiny = side(*[{**BASE, "aten::t [1x64]": (10, 1_000.0)}] * 2)
    [change] = [c for c in changes_of(side(BASE, BASE), tiny) if c.key == "aten::t [1x64]"]
    assert change.kind == "new" and not change.significant


def test_a_key_below_what_the_base_listed_is_unknown_not_new() -> None:
    base = side(BASE, BASE)
    base["tables"]["operators"]["floor_ns"] = 5_000.0
    head = side(*[{**BASE, "aten::view": (10, 20_000.0)}] * 2)
    assert "aten::view" not in {c.key for c in changes_of(base, head)}


# -- when, and at what cost -----------------------------------------------------------------


def test_profiling_runs_when_regressed_saved_or_asked_and_the_marker_wins() -> None:
    assert explain.wanted("auto", None, "REGRESSED", False)
    assert explain.wanted("auto", None, "PASS", True)
    assert not explain.wanted("auto", None, "PASS", False)
    assert explain.wanted("all", None, "PASS", False)
    assert not explain.wanted("off", None, "REGRESSED", True)
    assert not explain.wanted("all", False, "REGRESSED", False)
    assert explain.wanted("off", True, "PASS", False)


def test_a_profile_that_would_overrun_the_timeout_is_skipped_with_a_line() -> None:
    report = {"load_avg_ms": 400.0, "warmup_avg_ms": 100.0, "duration": 1.0}
    assert explain.budget(report, None, 1) == (None, None)
    left, line = explain.budget(report, 60.0, 2)
    assert line is None and left == pytest.approx(57.0)
    left, line = explain.budget(report, 3.0, 1)
    assert left is None and line is not None
    assert line.startswith("profile skipped: it needs about ")
    assert "timeout=3 s leaves 1.5 s" in line
    assert explain.evidence(explain.skipped(line)) == [line]


def test_a_failed_profile_is_one_line_that_keeps_the_verdict() -> None:
    profile = explain.explanation({"status": "error", "error": "copy 0 died (exit code 7)",
                                   "detail": "copy 0 died (exit code 7)\n--- last output"},
                                  None, "base")
    assert explain.evidence(profile) == [
        "profile failed (the verdict stands): copy 0 died (exit code 7)"]


def test_the_html_section_has_the_table_and_a_flame_graph_red_where_the_head_grew() -> None:
    base_python = [window({"run (m.py)": (10, 100_000.0)}, kind="python")]
    head_python = [window({"run (m.py)": (10, 100_000.0)}, kind="python")]
    base = summarize(base_python, "python")
    head = summarize(head_python, "python")
    base["stacks"] = [[["run (m.py)"], 10_000.0], [["run (m.py)", "fast (m.py)"], 5_000.0]]
    head["stacks"] = [[["run (m.py)"], 10_000.0], [["run (m.py)", "slow (m.py)"], 40_000.0]]
    result = {"status": "ok", "seconds": 1.0, "sides": {"base": base, "head": head},
              "traces": ["/tmp/t/head-operators.json"], "directory": "/tmp/t"}
    page = profile_section({"profile": explain.explanation(result, None, "the base at HEAD")})
    assert "what got slower" in page and "head-operators.json" in page
    svg = flame_svg(base["stacks"], head["stacks"], True)
    boxes = {group.find("{http://www.w3.org/2000/svg}title").text.split("\n")[0]:  # type: ignore[union-attr]
             group.find("{http://www.w3.org/2000/svg}rect").get("fill")  # type: ignore[union-attr]
             for group in ElementTree.fromstring(svg).iter("{http://www.w3.org/2000/svg}g")}
    assert boxes["slow (m.py)"].startswith("rgb(230,")  # red: new in the head
    assert boxes["fast (m.py)"].endswith(",230)")  # blue: gone


# -- real runs ----------------------------------------------------------------------------------

BASE_MODELS = textwrap.dedent('''
    import time

    import torch


    class MLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(64, 256)
            self.b = torch.nn.Linear(256, 64)

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
HEAD_MODELS = textwrap.dedent('''
    import time

    import torch


    class MLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(64, 256)
            self.b = torch.nn.Linear(256, 64)

        def forward(self, x):
            return self.b(torch.relu(self.a(x)))


    class Extra(MLP):  # one more layer: a new operator
        def __init__(self):
            super().__init__()
            self.c = torch.nn.Linear(64, 64)

        def forward(self, x):
            return self.c(super().forward(x))


    class Twice(MLP):  # the first layer called twice: a doubled count
        def forward(self, x):
            return self.b(torch.relu(self.a(x)) + torch.relu(self.a(x)))


    class Same(MLP):
        pass


    def postprocess(y):  # Python time outside the model
        time.sleep(0.003)
        return y
''')
PAIRED_TESTS = textwrap.dedent('''
    import pytest
    import torch

    import models

    pytestmark = pytest.mark.neuronperf(n_models=1, workers_per_model=1, duration=0.4)


    def test_extra(neuronperf):
        neuronperf.benchmark(models.Extra, torch.rand(1, 64))


    def test_twice(neuronperf):
        neuronperf.benchmark(models.Twice, torch.rand(1, 64))


    def test_post(neuronperf):
        neuronperf.benchmark(models.Same, torch.rand(1, 64), postprocess_fn=models.postprocess)


    def test_same(neuronperf):
        neuronperf.benchmark(models.Same, torch.rand(1, 64))
''')
ALWAYS_REGRESSED = textwrap.dedent('''
    def pytest_neuronperf_verdict(config, report, judgement):
        return "REGRESSED"
''')


def git(directory: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
                   cwd=directory, check=True, capture_output=True)


def pytest_run(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pytest in a subprocess in ``directory``, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=directory, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def against_head(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    """Three regressions and identical code in a git repository, profiled against HEAD with
    every verdict forced to REGRESSED (a verdict hook): (pytest's output, reports by test)."""
    repo = tmp_path_factory.mktemp("against")
    (repo / "models.py").write_text(BASE_MODELS)
    (repo / "test_perf.py").write_text(PAIRED_TESTS)
    (repo / "conftest.py").write_text(ALWAYS_REGRESSED)
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "base")
    (repo / "models.py").write_text(HEAD_MODELS)
    result = pytest_run(repo, "--neuronperf-against=HEAD", "--neuronperf-json=out/r.json")
    assert "4 failed" in result.stdout, result.stdout + result.stderr
    reports = json.loads((repo / "out" / "r.json").read_text())["reports"]
    return result.stdout, {r["test"].rsplit("::", 1)[-1]: r for r in reports}


def significant(report: dict[str, Any], table: str) -> list[dict[str, Any]]:
    """The significant changes of one table of a report's profile, slowest first."""
    return [c for c in report["profile"]["changes"][table] if c["significant"]]


def test_an_extra_linear_layer_is_named_as_a_new_operator(
        against_head: tuple[str, dict[str, Any]]) -> None:
    output, reports = against_head
    profile = reports["test_extra"]["profile"]
    assert profile["base_from"].startswith("the base at HEAD (")
    [top, *_] = [c for c in significant(reports["test_extra"], "operators") if c["delta_ns"] > 0]
    assert (top["key"], top["kind"], top["head_calls"]) == ("aten::addmm [64] [1x64] [64x64]",
                                                            "new", 1.0)
    assert "  operators: aten::addmm [64] [1x64] [64x64]: new, " in output
    names = {Path(t).name for t in profile["traces"]}
    assert {"head-operators.json", "base-operators.json", "head-python.pstats",
            "base-python.pstats"} <= names
    trace = json.loads(Path(profile["directory"], "head-operators.json").read_text())
    assert any(e.get("cat") == "python_function" for e in trace["traceEvents"])  # with stacks


def test_a_layer_called_twice_is_named_as_a_doubled_count(
        against_head: tuple[str, dict[str, Any]]) -> None:
    _, reports = against_head
    found = {c["key"]: c for c in significant(reports["test_twice"], "operators")}
    doubled = found["aten::addmm [256] [1x64] [64x256]"]
    assert (doubled["kind"], doubled["base_calls"], doubled["head_calls"]) == ("calls", 1.0, 2.0)


def test_a_slower_postprocess_is_named_in_the_python_frames(
        against_head: tuple[str, dict[str, Any]]) -> None:
    output, reports = against_head
    [top, *_] = [c for c in significant(reports["test_post"], "python") if c["delta_ns"] > 0]
    assert top["key"] == "<built-in method time.sleep> in postprocess (models.py)"
    assert top["kind"] == "new" and top["head_calls"] == 1.0
    assert "  python: <built-in method time.sleep> in postprocess (models.py): new, " in output
    structural = [c for c in significant(reports["test_post"], "operators")
                  if c["kind"] != "per call"]
    assert structural == []  # the model did not change


def test_identical_code_shows_no_new_gone_or_recounted_operator(
        against_head: tuple[str, dict[str, Any]]) -> None:
    _, reports = against_head
    changes = reports["test_same"]["profile"]["changes"]
    assert not [c for c in changes["operators"] if c["kind"] != "per call"]
    assert reports["test_same"]["verdict"] == "REGRESSED"  # the hook's verdict stands


PYTHON_TESTS = textwrap.dedent('''
    import os
    import sys

    import numpy as np
    import pytest

    WEIGHTS = np.random.default_rng(0).standard_normal((32, 32))


    class Plain:
        def __call__(self, x):
            return np.tanh(x @ WEIGHTS)


    class CrashesWhenProfiled(Plain):
        def __call__(self, x):
            if sys.getprofile() is not None:
                os._exit(7)
            return super().__call__(x)


    @pytest.mark.neuronperf(n_models=1, workers_per_model=1, duration=0.3, profile=True)
    def test_plain(neuronperf):
        neuronperf.benchmark(Plain, np.ones((1, 32)), framework="python")


    @pytest.mark.neuronperf(n_models=1, workers_per_model=1, duration=0.3)
    def test_crash(neuronperf):
        neuronperf.benchmark(CrashesWhenProfiled, np.ones((1, 32)), framework="python")
''')


def test_a_plain_python_model_gets_python_frames_and_a_crash_keeps_its_verdict(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_python=PYTHON_TESTS)
    pytester.makeconftest(ALWAYS_REGRESSED.replace('return "REGRESSED"', (
        'return "REGRESSED" if "crash" in report["test"] else None')))
    result = pytester.runpytest_subprocess("--neuronperf-json=r.json", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*REGRESSED bs=1 n=1 w=1 p=1: verdict set by a pytest_neuronperf_verdict hook*",
        "profile failed (the verdict stands): copy 0 died (exit code 7) while profiling (head "
        "side)"])
    reports = {r["test"].rsplit("::", 1)[-1]: r for r in
               json.loads((pytester.path / "r.json").read_text())["reports"]}
    crashed = reports["test_crash"]
    assert crashed["verdict"] == "REGRESSED" and crashed["profile"]["status"] == "error"
    plain = reports["test_plain"]["profile"]
    assert plain["status"] == "ok" and plain["base_from"] is None
    tables = plain["head"]["tables"]
    assert tables["operators"]["rows"] == {}
    assert "no operator profiler" in tables["operators"]["note"]
    assert "Plain.__call__ (test_python.py)" in tables["python"]["rows"]


KERAS_TESTS = textwrap.dedent('''
    import numpy as np
    import pytest
    import tensorflow as tf


    def two():
        return tf.keras.Sequential([tf.keras.Input((16,)), tf.keras.layers.Dense(16),
                                    tf.keras.layers.Dense(16)])


    @pytest.mark.neuronperf(n_models=1, workers_per_model=1, duration=0.3, profile=True)
    def test_keras(neuronperf):
        neuronperf.benchmark(two, np.ones((1, 16), np.float32), framework="tensorflow")
''')


def test_tensorflow_operators_come_from_its_profiler(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_keras=KERAS_TESTS)
    result = pytester.runpytest_subprocess("--neuronperf-json=r.json", "-p", "no:cacheprovider")
    [report] = json.loads((pytester.path / "r.json").read_text())["reports"]
    profile = report["profile"]
    assert profile["status"] == "ok", (profile, result.stdout.str())
    operators = profile["head"]["tables"]["operators"]["rows"]
    assert operators["MatMul"][0] == 2.0  # calls per inference: one per Dense layer
    folder = Path(profile["directory"])
    assert (folder / "head-operators.json").is_file()
    assert (folder / "head-operators.xplane.pb").is_file()
    trace = json.loads((folder / "head-operators.json").read_text())
    assert any(e.get("name") == "EagerExecute" for e in trace["traceEvents"])


BASELINE_TESTS = textwrap.dedent('''
    import pytest
    import torch

    import models


    @pytest.mark.neuronperf(n_models=1, workers_per_model=1, duration=0.4)
    def test_extra(neuronperf):
        neuronperf.benchmark(models.Extra, torch.rand(1, 64))
''')


def test_a_saved_baseline_stores_the_profile_a_later_regression_is_diffed_against(
        pytester: pytest.Pytester) -> None:
    (pytester.path / "models.py").write_text(BASE_MODELS)
    pytester.makepyfile(test_perf=BASELINE_TESTS)
    saved = pytester.runpytest_subprocess("--neuronperf-baseline=b.json",
                                          "--neuronperf-save-baseline", "-p", "no:cacheprovider")
    saved.assert_outcomes(passed=1)
    [entry] = json.loads((pytester.path / "b.json").read_text())["machines"].popitem()[1][
        "tests"]["test_perf.py::test_extra"].values()
    assert "aten::addmm [256] [1x64] [64x256]" in entry["profile"]["tables"]["operators"]["rows"]

    (pytester.path / "models.py").write_text(HEAD_MODELS)
    pytester.makeconftest(ALWAYS_REGRESSED)
    gated = pytester.runpytest_subprocess("--neuronperf-baseline=b.json", "-p", "no:cacheprovider")
    gated.assert_outcomes(failed=1)
    gated.stdout.fnmatch_lines([
        "what got slower (profiled * s after the measurement; head vs the baseline's stored "
        "profile; per inference):"])
    assert "\n  operators: aten::addmm [64] [1x64] [64x64]: new, " in gated.stdout.str()


@pytest.fixture
def fake_neuron(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """2 fake Neuron devices x 2 NeuronCores with both fake runtimes (tests/fakes/neuron)."""
    from fakes import neuron_support

    yield from neuron_support.install(tmp_path, monkeypatch)


@pytest.mark.parametrize(("device", "module", "variable", "written"), [
    ("neuronx", "torch_neuronx", "inspect_dir", "*.ntff"),
    ("neuron", "torch_neuron", "profile_dir", "*.profile"),
])
def test_neuron_copies_capture_with_the_runtime_variables_only_when_profiled(
        fake_neuron: Any, tmp_path: Path, device: str, module: str, variable: str,
        written: str) -> None:
    import torch
    from fakes.neuron.neuron_models import TinyNet

    from pytest_neuronperf.api import benchmark
    from pytest_neuronperf.engine.request import BenchmarkRequest
    from pytest_neuronperf.profiling.run import ProfileRequest, profile

    model = str(tmp_path / "tiny.pt")
    torch.jit.save(torch.jit.trace(TinyNet().eval(), torch.rand(1, 8)), model)
    options: dict[str, Any] = {"n_models": 1, "workers_per_model": 1, "duration": 0.3,
                               "warmup": 0.05, "verbosity": 0, "device_type": device}
    [measured] = benchmark(model, torch.rand(1, 8), **options)
    [profiled] = profile(BenchmarkRequest(model, torch.rand(1, 8), **options),
                         ProfileRequest(str(tmp_path / "profiles")))
    assert measured["status"] == "ok"
    captures = [e[variable] for e in fake_neuron.worker_imports(module)]
    folder = tmp_path / "profiles" / "bs1-n1-w1-p1"
    assert captures == [None, str(folder / "head-neuron")]  # the measured copy had none
    profile = profiled["profile"]
    assert profile["status"] == "ok"
    assert set(profile["sides"]["head"]["tables"]) == {"python"}  # no framework profiler on top
    assert list((folder / "head-neuron").rglob(written))
    assert any(t.endswith(written[1:]) for t in profile["traces"])


def test_the_browser_draws_the_profile_section(tmp_path: Path) -> None:
    from test_html import chromium, report

    from pytest_neuronperf.reporting.html import write_html

    base = side(BASE, BASE, BASE)
    head = side(*[{**BASE, "aten::addmm [1x32]": (10, 300_000.0)}] * 3)
    base["stacks"] = [[["forward (m.py)", "linear"], 40_000.0], [["forward (m.py)"], 10_000.0]]
    head["stacks"] = [[["forward (m.py)", "linear"], 40_000.0], [["forward (m.py)"], 10_000.0],
                      [["forward (m.py)", "extra (m.py)", "linear"], 30_000.0]]
    result = {"status": "ok", "seconds": 2.0, "sides": {"base": base, "head": head},
              "directory": str(tmp_path / "t"), "traces": [str(tmp_path / "t" / "x.json")]}
    configuration = report("test_perf.py::test_mlp", 1, 1, 500.0, "REGRESSED", 0)
    configuration["profile"] = explain.explanation(result, None, "the base at HEAD")
    page = Path(write_html([configuration], tmp_path / "report.html"))
    assert "<script" not in page.read_text()
    dom = chromium(page, tmp_path / "browser", "--dump-dom").stdout
    if not dom:
        pytest.skip("chromium did not start")
    assert "profile: what got slower" in dom and "differential flame graph" in dom
    assert "aten::addmm [1x32]: new, 0.03000 ms per call" in dom
    boxes = re.findall(r"<title>([^\n<]*)\n[^<]*</title><rect [^>]*fill=\"([^\"]+)\"", dom)
    assert ("extra (m.py)", "rgb(230,60,60)") in boxes  # new in the head: full red
    assert ("linear", "#d9d9d9") in boxes  # the unchanged path: grey
    assert len(boxes) == 5  # all, forward, both linear paths, extra


def test_a_bad_profile_option_or_marker_value_is_one_sentence(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bad='''
        import pytest

        @pytest.mark.neuronperf(profile="yes")
        def test_x(neuronperf):
            pass
    ''')
    option = pytester.runpytest_subprocess("--neuronperf-profile=sometimes")
    option.stderr.fnmatch_lines(["*--neuronperf-profile / neuronperf_profile must be one of "
                                 "auto, all, off, got 'sometimes'*"])
    marker = pytester.runpytest_subprocess("--neuronperf-profile=off")
    marker.stderr.fnmatch_lines(["*test_bad.py::test_x: neuronperf marker: profile must be True, "
                                 "False or None, got 'yes'*"])
