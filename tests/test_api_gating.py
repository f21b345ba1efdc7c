"""Memory and accuracy gate like throughput: budgets, the baseline comparison, from pytest; and
the Neuron compilers get the cast options of ``cast_modes`` / ``performance_levels``."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fakes import neuron_support
from fakes.neuron.neuron_models import TinyNet
from fakes.neuron_support import FakeNeuron

import pytest_neuronperf as npf
from pytest_neuronperf.gating.verdicts import (
    Verdict,
    compare_value,
    entry_from_report,
    judge,
    parse_tolerance,
)
from pytest_neuronperf.plugin.markers import MARKER_KEYWORDS

WINDOWS = {"throughput": [100.0] * 10, "latency_ms_p50": [1.0] * 10,
           "latency_ms_p99": [2.0] * 10}


def report(**values: float | None) -> dict[str, object]:
    """A measured configuration whose timings never change; memory/accuracy as given."""
    return {"status": "ok", "batch_size": 1, "n_models": 1, "workers_per_model": 1,
            "pipeline_size": 1, "throughput_avg": 100.0, "latency_ms_p50": 1.0,
            "latency_ms_p99": 2.0, "windows": WINDOWS, **values}


def test_an_accuracy_drop_beyond_tolerance_regresses_even_when_faster() -> None:
    base = entry_from_report(report(accuracy=0.95, memory_mb_peak=200.0))
    faster = report(accuracy=0.90, memory_mb_peak=200.0)
    faster["windows"] = {**WINDOWS, "throughput": [200.0] * 10}
    judgement = judge(faster, base)
    assert judgement.verdict is Verdict.REGRESSED
    [acc] = [c for c in judgement.comparisons if c.metric == "accuracy"]
    assert acc.verdict is Verdict.REGRESSED and acc.delta == pytest.approx(0.90 / 0.95 - 1)
    assert judge(report(accuracy=0.949, memory_mb_peak=200.0), base).verdict is Verdict.PASS


def test_memory_growth_beyond_tolerance_regresses() -> None:
    base = entry_from_report(report(memory_mb_peak=200.0))
    assert judge(report(memory_mb_peak=260.0), base).verdict is Verdict.REGRESSED
    assert judge(report(memory_mb_peak=210.0), base).verdict is Verdict.PASS
    assert judge(report(memory_mb_peak=100.0), base).verdict is Verdict.IMPROVED
    loose = parse_tolerance("memory:50%")
    assert judge(report(memory_mb_peak=260.0), base, loose).verdict is Verdict.PASS


def test_a_side_without_the_value_is_not_compared() -> None:
    assert compare_value("accuracy", None, 0.9, 0.01) is None
    old_baseline = {"metrics": {"throughput_avg": 100.0}, "windows": WINDOWS}
    judgement = judge(report(memory_mb_peak=500.0, accuracy=0.5), old_baseline)
    assert judgement.verdict is Verdict.PASS
    assert {c.metric for c in judgement.comparisons} == {
        "throughput", "latency_ms_p50", "latency_ms_p99"}
    stored = entry_from_report(report(memory_mb_peak=10.0, accuracy=None))
    assert "accuracy" not in stored["metrics"] and stored["metrics"]["memory_mb_peak"] == 10.0


def test_memory_and_accuracy_budgets() -> None:
    assert {"max_memory_mb", "min_accuracy", "cast_modes"} <= set(MARKER_KEYWORDS)
    over = judge(report(memory_mb_peak=300.0), None, budgets={"max_memory_mb": 256})
    assert over.verdict is Verdict.OVER_BUDGET
    low = judge(report(accuracy=0.8), None, budgets={"min_accuracy": 0.9})
    assert low.verdict is Verdict.OVER_BUDGET
    assert judge(report(accuracy=0.95), None, budgets={"min_accuracy": 0.9}).verdict is Verdict.NEW
    missing = judge(report(), None, budgets={"min_accuracy": 0.9})
    assert missing.verdict is Verdict.OVER_BUDGET and math.isnan(missing.budget_misses[0].actual)


MODELS = '''
import os
import torch

THRESHOLD = 1.005


class Threshold(torch.nn.Module):
    """Class 0 when x > 1.005; with LOSSY=1 it rounds x to bfloat16 first (faster, less exact)."""

    def __init__(self):
        super().__init__()
        self.lossy = os.environ.get("LOSSY") == "1"

    def forward(self, x):
        if self.lossy:
            x = x.to(torch.bfloat16).float()
        return torch.cat([x, torch.full_like(x, THRESHOLD)], dim=1)


def data():
    x = torch.linspace(1.0, 1.01, 64).reshape(64, 1)
    return torch.utils.data.TensorDataset(x, (x[:, 0] <= THRESHOLD).long())
'''
ACCURACY_TESTS = '''
import os
import pytest
from perf_models import Threshold, data

SETTINGS = dict(batch_sizes=8, n_models=1, workers_per_model=1, duration=0.3, warmup=0.05,
                tolerance="throughput:off,p50:off,p99:off,memory:off")


@pytest.mark.neuronperf(min_accuracy=0.95, **SETTINGS)
def test_budget(neuronperf):
    neuronperf.benchmark(Threshold, data(), eval_metrics=["accuracy"], loop_dataset=False,
                         cast_modes=os.environ.get("CAST", "fp32").split(","))


@pytest.mark.neuronperf(**SETTINGS)
def test_baseline(neuronperf):
    neuronperf.benchmark(Threshold, data(), eval_metrics="accuracy", loop_dataset=False)
'''


@pytest.fixture
def accuracy_project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(perf_models=MODELS, test_accuracy=ACCURACY_TESTS)
    return pytester


def test_accuracy_fails_a_lossy_cast_by_budget_and_a_less_accurate_model_by_baseline(
    accuracy_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # one project, three runs: record both tests, then a lossy cast beside fp32 (the budget fails
    # only the cast; the unchanged model passes its gate), then a model that got less accurate
    baseline = accuracy_project.path / "baseline.json"
    args = ("-p", "no:cacheprovider", f"--neuronperf-baseline={baseline}")
    accuracy_project.runpytest_subprocess(*args, "--neuronperf-save-baseline").assert_outcomes(
        passed=2)
    stored = json.loads(baseline.read_text())
    [machine] = stored["machines"].values()
    entries = machine["tests"]["test_accuracy.py::test_baseline"]
    assert [e["metrics"]["accuracy"] for e in entries.values()] == [1.0]
    monkeypatch.setenv("CAST", "fp32,bf16")
    result = accuracy_project.runpytest_subprocess(*args, "--neuronperf-json=casts.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*OVER_BUDGET*accuracy*"])
    reports = json.loads((accuracy_project.path / "casts.json").read_text())["reports"]
    assert sorted((r["test"], r["cast_mode"], r["verdict"]) for r in reports) == [
        ("test_accuracy.py::test_baseline", "fp32", "PASS"),
        ("test_accuracy.py::test_budget", "bf16", "OVER_BUDGET"),
        ("test_accuracy.py::test_budget", "fp32", "PASS")]
    monkeypatch.delenv("CAST")
    monkeypatch.setenv("LOSSY", "1")
    result = accuracy_project.runpytest_subprocess(*args, "-k", "baseline")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*REGRESSED*accuracy*"])


# --- Neuron: casts become compiler options (fake runtimes) ---------------------------------------


@pytest.fixture
def fake_neuron(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNeuron]:
    """A machine with 2 fake Neuron devices x 2 NeuronCores and both fake runtimes installed."""
    yield from neuron_support.install(tmp_path, monkeypatch)


def test_neuron_cast_modes_and_performance_levels_are_compiler_options(
    fake_neuron: FakeNeuron, tmp_path: Path
) -> None:
    index = npf.torch.compile(TinyNet, torch.rand(1, 8), cast_modes=["fp32", "bf16"],
                              compiler="neuron", device_type="neuron", models_dir=tmp_path,
                              verbosity=0, cache=False)
    traced = [e["compiler_args"] for e in fake_neuron.events("trace", "torch_neuron")]
    assert traced == [["--fast-math", "none"], ["--fast-math", "fp32-cast-all"]]
    entries = json.loads(Path(index).read_text())["model_configs"]
    assert [(e["cast_mode"], e["status"]) for e in entries] == [("fp32", "ok"), ("bf16", "ok")]

    npf.torch.compile(TinyNet, torch.rand(1, 8), performance_levels=[0, 3], compiler="neuron",
                      device_type="neuron", models_dir=tmp_path / "levels", verbosity=0,
                      cache=False)
    traced = [e["compiler_args"] for e in fake_neuron.events("trace", "torch_neuron")][2:]
    assert traced == [["--fast-math", "none"], ["--fast-math", "all"]]

    npf.torch.compile(TinyNet, torch.rand(1, 8), cast_modes="mixed", compiler="neuronx",
                      device_type="neuronx", models_dir=tmp_path / "x", verbosity=0, cache=False)
    [args] = [e["compiler_args"] for e in fake_neuron.events("trace", "torch_neuronx")]
    assert args == ["--auto-cast", "matmult", "--auto-cast-type", "bf16"]


def test_a_load_time_cast_on_neuron_is_refused(fake_neuron: FakeNeuron) -> None:
    with pytest.raises(ValueError, match="compile with cast_modes"):
        npf.benchmark(TinyNet, torch.rand(1, 8), device_type="neuronx", cast_modes="bf16",
                      n_models=1, duration=0.2, verbosity=0)


COMPILED_CASTS = '''
import pytest
import torch


class Small(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(8, 8)

    def forward(self, x):
        return self.linear(x)


@pytest.mark.neuronperf(compiler="torchscript", cast_modes=["fp32", "bf16"], n_models=1,
                        workers_per_model=1, duration=0.3, warmup=0.05, max_memory_mb=100000)
def test_casts(neuronperf):
    reports = neuronperf.benchmark(Small, torch.rand(1, 8))
    assert [(r["status"], r["cast_mode"]) for r in reports] == [("ok", "fp32"), ("ok", "bf16")]
    assert all(r["memory_mb_peak"] > 0 for r in reports)
'''


def test_the_marker_compiles_and_runs_every_cast(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_casts=COMPILED_CASTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*cast=bf16*"])
