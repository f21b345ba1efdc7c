"""The plugin facing mistakes: bad paths and devices, failed compiles, names that collide."""

from __future__ import annotations

import json

import pytest
from projects import Run, reports_of, sleep_tests

TORCH_TESTS = '''
import pytest
import torch


class Net(torch.nn.Module):
    """Linear layer; refuses to trace at batch size 2."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(WIDTH, 4)

    def forward(self, x):
        if x.shape[0] == 2:
            raise RuntimeError("this model cannot run at batch size 2")
        return self.layer(x)


@pytest.mark.neuronperf(batch_sizes=BATCHES, n_models=1, workers_per_model=1, duration=0.3,
                        warmup=0.05, compiler="torchscript")
def test_net(neuronperf):
    neuronperf.benchmark(Net, torch.rand(1, WIDTH))
'''


def torch_tests(width: int, batches: list[int]) -> str:
    """A perf test module compiling ``Net`` (input width ``width``) at ``batches``."""
    return TORCH_TESTS.replace("WIDTH", str(width)).replace("BATCHES", repr(batches))


def test_unknown_device_option_is_a_usage_error(pytester: pytest.Pytester, run: Run) -> None:
    pytester.makepyfile(test_models=sleep_tests())
    result = run("--neuronperf-device=tpu")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown device 'tpu'; choose one of auto, cpu, cuda*"])


def test_a_directory_as_report_path_is_a_usage_error(pytester: pytest.Pytester, run: Run) -> None:
    pytester.makepyfile(test_models=sleep_tests())
    (pytester.path / "reports").mkdir()
    result = run("--neuronperf-json=reports")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--neuronperf-json=reports is a directory*"])


def test_unavailable_device_fails_the_test_with_a_sentence(
        pytester: pytest.Pytester, run: Run) -> None:
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    pytester.makepyfile(test_models=sleep_tests(device="cuda"))
    result = run()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*test_sleep: neuronperf.benchmark: device 'cuda' is not available on this machine*"])
    assert "Traceback" not in result.stdout.str()
    assert "During handling" not in result.stdout.str()  # one sentence, not a chain


def test_strict_does_not_fail_the_run_that_records_the_baseline(
        pytester: pytest.Pytester, run: Run) -> None:
    pytester.makepyfile(test_models=sleep_tests())
    baseline = pytester.path / "baseline.json"
    result = run(f"--neuronperf-baseline={baseline}", "--neuronperf-save-baseline",
                 "--neuronperf-strict")
    result.assert_outcomes(passed=2)
    assert baseline.exists()


def test_a_failed_compile_is_an_error_report_with_its_reason(
        pytester: pytest.Pytester, run: Run) -> None:
    pytester.makepyfile(test_net=torch_tests(16, [1, 2]))
    result = run("--neuronperf-json=r.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*test_net [[]bs=2 *[]]: ERROR*",
                                 "*compile failed (torchscript*cannot run at batch size 2*"])
    reports = reports_of(pytester.path / "r.json")
    assert [(r["batch_size"], r["status"], r["verdict"]) for r in reports] == [
        (1, "ok", "NEW"), (2, "error", "ERROR")]


def test_models_of_one_name_in_two_modules_get_their_own_index(
        pytester: pytest.Pytester, run: Run) -> None:
    pytester.makepyfile(test_a=torch_tests(16, [1]), test_b=torch_tests(32, [4]))
    result = run("--neuronperf-json=r.json")
    result.assert_outcomes(passed=2)
    indexes = [json.loads(p.read_text())
               for p in (pytester.path / ".neuronperf-cache").glob("Net-*.json")]
    assert sorted(i["model"] for i in indexes) == ["test_a:Net", "test_b:Net"]
    reports = reports_of(pytester.path / "r.json")
    assert {(r["test"], r["batch_size"]) for r in reports} == {
        ("test_a.py::test_net", 1), ("test_b.py::test_net", 4)}


INDEX_TEST = '''
import pytest
import torch

import pytest_neuronperf as npf
from test_net import Net


@pytest.mark.neuronperf(n_models=1, workers_per_model=1, duration=0.3, warmup=0.05)
def test_index(neuronperf, tmp_path):
    index = npf.torch.compile(Net, torch.rand(1, 16), batch_sizes=[1, 4],
                              models_dir=tmp_path, verbosity=0)
    reports = neuronperf.benchmark(index, torch.rand(1, 16))
    assert sorted(r["batch_size"] for r in reports) == [1, 4]
'''


SHAPES_TEST = '''
import pytest
import torch

from test_net import Net


class Flex(torch.nn.Module):
    """Takes any width."""

    def forward(self, x):
        return x.sum(1)


@pytest.mark.neuronperf(compiler="torchscript")
def test_two_shapes(neuronperf):
    narrow = neuronperf.compile(Flex, torch.rand(1, 16))
    wide = neuronperf.compile(Flex, torch.rand(1, 32))
    assert narrow != wide


@pytest.mark.neuronperf(compiler="torchscript")
def test_compile_refusal_names_compile(neuronperf):
    neuronperf.compile(Net, torch.rand(1, 16), batch_sizes=0)
'''


def test_an_index_runs_every_compiled_batch_size_and_indexes_follow_the_input_shapes(
        pytester: pytest.Pytester, run: Run) -> None:
    # one pytest run for both modules: test_index passes only if both batch sizes ran
    pytester.makepyfile(test_net=torch_tests(16, [1]), test_index=INDEX_TEST,
                        test_shapes=SHAPES_TEST)
    result = run("test_index.py", "test_shapes.py", "-rA")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["PASSED test_index.py::test_index",
                                 "PASSED test_shapes.py::test_two_shapes"], consecutive=False)
    result.stdout.fnmatch_lines(["*test_compile_refusal_names_compile: neuronperf.compile: "
                                 "batch_sizes must be positive integers, got 0*"])


XDIST_REFUSALS = '''
import numpy as np
import pytest

from test_models import SleepModel, X


@pytest.mark.neuronperf(n_models=2, workers_per_model=1, duration=0.3, warmup=0.05)
def test_too_many_copies(neuronperf):
    neuronperf.benchmark(SleepModel, X, framework="python")


@pytest.mark.neuronperf(n_models=1, workers_per_model=1, duration=0.3, warmup=0.05)
def test_bad_inputs(neuronperf):
    neuronperf.benchmark(SleepModel, [X, X, X], framework="python")
'''


def test_under_xdist_only_core_shortage_mentions_the_worker_share(
        pytester: pytest.Pytester, run: Run) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(test_models=sleep_tests(), test_refusals=XDIST_REFUSALS)
    result = run("-n", "2", "test_refusals.py")
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    [shortage] = [line for line in out.splitlines() if "needs 2 cores" in line][:1]
    assert "this pytest-xdist worker has 1 of the machine's 2 cpu cores" in shortage
    [bad_inputs] = [line for line in out.splitlines() if "list of 3 examples" in line][:1]
    assert "pytest-xdist worker" not in bad_inputs


BAD_HOOK = '''
def pytest_neuronperf_verdict(config, report, judgement):
    return "WARN"
'''


def test_a_verdict_hook_answering_nonsense_is_an_error_and_loses_nothing(
        pytester: pytest.Pytester, run: Run) -> None:
    pytester.makeconftest(BAD_HOOK)
    pytester.makepyfile(test_models=sleep_tests())
    result = run("--neuronperf-json=r.json", "-k", "test_sleep")
    result.assert_outcomes(failed=1, deselected=1)
    result.stdout.fnmatch_lines(["*pytest_neuronperf_verdict hook returned 'WARN', not a verdict*"])
    reports = reports_of(pytester.path / "r.json")
    assert [r["verdict"] for r in reports] == ["ERROR", "ERROR"]
