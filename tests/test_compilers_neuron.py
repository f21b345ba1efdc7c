"""The Neuron compilers: arguments handed to ``trace``, saved artifacts, and benchmarking them.

``trace`` comes from the fake ``torch_neuron`` / ``torch_neuronx`` packages (tests/fakes/neuron),
which trace on the CPU and log each call.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fakes import neuron_support
from fakes.neuron.neuron_models import PairNet, TinyNet
from fakes.neuron_support import FakeNeuron

import pytest_neuronperf as npf
from pytest_neuronperf.compilers import COMPILERS
from pytest_neuronperf.compilers.base import Compiler
from pytest_neuronperf.compilers.neuron import NeuronCompiler, NeuronxCompiler, as_arg_list


@pytest.fixture
def fake_neuron(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNeuron]:
    """A machine with 2 fake Neuron devices x 2 NeuronCores and both fake runtimes installed."""
    yield from neuron_support.install(tmp_path, monkeypatch)


@pytest.mark.parametrize(("given", "expected"), [
    (None, []),
    ("--verbose 1 -O2", ["--verbose", "1", "-O2"]),
    (["--auto-cast", "none"], ["--auto-cast", "none"]),
    (("--fast-math", "none"), ["--fast-math", "none"]),
])
def test_compiler_args_may_be_a_string_or_a_list(given: object, expected: list[str]) -> None:
    assert as_arg_list(given) == expected


def test_other_compiler_args_are_refused() -> None:
    with pytest.raises(TypeError, match="compiler_args"):
        as_arg_list(3)


def test_both_follow_the_compiler_protocol_and_are_registered() -> None:
    for name, cls in (("neuron", NeuronCompiler), ("neuronx", NeuronxCompiler)):
        compiler = cls()
        assert isinstance(compiler, Compiler)
        assert (compiler.name, compiler.framework, compiler.suffix) == (name, "torch", ".pt")
        module, _, attr = COMPILERS[name].partition(":")
        assert getattr(importlib.import_module(module), attr) is cls


def test_unavailable_without_the_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(NeuronxCompiler, "runtime_module", "torch_neuronx_is_not_installed")
    assert not NeuronxCompiler().is_available()


def test_inf1_pipeline_size_becomes_pipeline_cores() -> None:
    compiler = NeuronCompiler()
    assert compiler.compiler_args_for("-O2", 1) == ["-O2"]
    assert compiler.compiler_args_for("-O2", 4) == ["-O2", "--neuroncore-pipeline-cores", "4"]
    given = ["--neuroncore-pipeline-cores", "2"]
    assert compiler.compiler_args_for(given, 2) == given
    with pytest.raises(ValueError, match="pipeline size 4"):
        compiler.compiler_args_for(given, 4)


def test_neuronx_refuses_a_pipeline() -> None:
    assert NeuronxCompiler().compiler_args_for(None, 1) == []
    with pytest.raises(ValueError, match="one NeuronCore"):
        NeuronxCompiler().compiler_args_for(None, 2)


def test_neuron_compile_traces_with_pipeline_cores_and_saves_torchscript(
    fake_neuron: FakeNeuron, tmp_path: Path
) -> None:
    model, example = TinyNet().eval(), torch.rand(1, 8)
    output = tmp_path / "tiny.pt"
    compiler = NeuronCompiler()
    assert compiler.is_available()
    compiler.compile(model, (example,), 1, 2, ["--verbose", "1"], output)

    (call,) = fake_neuron.events("trace", "torch_neuron")
    assert call["compiler_args"] == ["--verbose", "1", "--neuroncore-pipeline-cores", "2"]
    assert call["args"] == {"shape": [1, 8]}
    loaded = torch.jit.load(str(output))  # type: ignore[no-untyped-call]
    assert torch.allclose(loaded(example), model(example))


def test_neuronx_compile_passes_every_input(fake_neuron: FakeNeuron, tmp_path: Path) -> None:
    example = (torch.rand(1, 8), torch.rand(1, 8))
    NeuronxCompiler().compile(PairNet(), example, 1, 1, "--auto-cast none", tmp_path / "pair.pt")
    (call,) = fake_neuron.events("trace", "torch_neuronx")
    assert call["args"] == [{"shape": [1, 8]}, {"shape": [1, 8]}]
    assert call["compiler_args"] == ["--auto-cast", "none"]
    assert (tmp_path / "pair.pt").is_file()


def test_a_compiled_artifact_benchmarks_on_neuronx(fake_neuron: FakeNeuron, tmp_path: Path) -> None:
    artifact = tmp_path / "tiny.pt"
    NeuronxCompiler().compile(TinyNet(), (torch.rand(1, 8),), 1, 1, None, artifact)
    reports = npf.benchmark(str(artifact), torch.rand(1, 8), device_type="neuronx", n_models=2,
                            workers_per_model=1, duration=0.3, warmup=0.05, verbosity=0)
    assert [(r["status"], r["device_type"], r["n_models"]) for r in reports] == [
        ("ok", "neuronx", 2)
    ]
    assert fake_neuron.worker_cores("torch_neuronx") == ["0-0", "1-1"]
