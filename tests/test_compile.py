"""``compile``: per-configuration artifacts in a model index, cached, verified, in a process."""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from compile_models import (
    PID_FILE_ENV,
    CrashesAtBatchTwo,
    HangsAtBatchTwo,
    NoBatchOfThree,
    NoisyMLP,
    TinyConvNet,
    TinyMLP,
    keras_mlp,
)
from fakes import neuron_support
from fakes.neuron.neuron_models import TinyNet

import pytest_neuronperf as neuronperf
from pytest_neuronperf.compilers.base import Compiler
from pytest_neuronperf.compiling import cache as compile_cache
from pytest_neuronperf.compiling import child as compile_worker
from pytest_neuronperf.compiling import request as compiling
from pytest_neuronperf.compiling import supervisor as compile_supervisor
from pytest_neuronperf.model_index import INDEX_FORMAT

TESTS_DIR = Path(__file__).parent
QUICK = {"n_models": 1, "workers_per_model": 1, "duration": 0.3, "warmup": 0}


def example() -> torch.Tensor:
    """One TinyMLP input with leading dimension 1 (expanded to each batch size)."""
    return torch.rand(1, 16)


def load_index(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def configs_by_batch(index: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {entry["batch_size"]: entry for entry in index["model_configs"]}


def process_gone(pid: int, within_s: float = 10.0) -> bool:
    """True once ``pid`` no longer runs (a zombie nobody reaped counts as gone)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def mlp_index(models_dir: Path) -> str:
    return neuronperf.compile(TinyMLP, example(), batch_sizes=[1, 2], compiler="torchscript",
                              models_dir=models_dir, verbosity=0)


# --- the index and benchmarking from it -------------------------------------------------------


def test_index_lists_one_verified_artifact_per_batch_size(mlp_index: str, models_dir: Path):
    index = load_index(mlp_index)
    assert Path(mlp_index) == models_dir / "TinyMLP.json"
    assert index["format"] == INDEX_FORMAT and index["version"] == 1
    assert index["model_name"] == "TinyMLP" and index["framework"] == "torch"
    assert [e["batch_size"] for e in index["model_configs"]] == [1, 2]
    for entry in index["model_configs"]:
        assert entry["status"] == "ok" and entry["verified"] and not entry["cached"]
        assert entry["compiler"] == "torchscript" and entry["pipeline_size"] == 1
        assert entry["compile_s"] > 0
        assert not Path(entry["filename"]).is_absolute() and entry["filename"].endswith(".pt")
        assert (models_dir / entry["filename"]).is_file()


def test_benchmark_of_an_index_filters_by_batch_size(mlp_index: str):
    reports = neuronperf.benchmark(mlp_index, example(), batch_sizes=[2], **QUICK)

    assert [(r["batch_size"], r["status"]) for r in reports] == [(2, "ok")]
    artifact = configs_by_batch(load_index(mlp_index))[2]["filename"]
    assert reports[0]["model_filename"].endswith(artifact)
    assert reports[0]["model_name"] == "TinyMLP"


def test_second_compile_reuses_artifacts_without_a_compile_process(
    mlp_index: str, models_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    before = {e["filename"]: (models_dir / e["filename"]).stat().st_mtime_ns
              for e in load_index(mlp_index)["model_configs"]}

    def no_process(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a cache hit must not start a compile process")

    monkeypatch.setattr(compile_supervisor, "CompileProcess", no_process)
    again = neuronperf.compile(TinyMLP, example(), batch_sizes=[1, 2], compiler="torchscript",
                               models_dir=models_dir, verbosity=0)

    entries = load_index(again)["model_configs"]
    assert all(e["cached"] and e["compile_s"] == 0 and e["status"] == "ok" for e in entries)
    assert {e["filename"]: (models_dir / e["filename"]).stat().st_mtime_ns
            for e in entries} == before


def test_other_compiler_args_miss_the_cache(mlp_index: str, models_dir: Path):
    index = neuronperf.compile(TinyMLP, example(), batch_sizes=[1], compiler="torchscript",
                               compiler_args={"optimize": False}, models_dir=models_dir,
                               filename="unoptimized.json", verbosity=0)

    entry = load_index(index)["model_configs"][0]
    assert entry["status"] == "ok" and not entry["cached"]
    assert entry["compiler_args"] == {"optimize": False}
    assert entry["filename"] != configs_by_batch(load_index(mlp_index))[1]["filename"]


def test_shared_cache_dir_serves_another_models_dir(tmp_path: Path):
    shared = tmp_path / "shared"
    first = neuronperf.compile(TinyMLP, example(), compiler="torchscript",
                               models_dir=tmp_path / "a", cache=shared, verbosity=0)
    second = neuronperf.compile(TinyMLP, example(), compiler="torchscript",
                                models_dir=tmp_path / "b", cache=shared, verbosity=0)

    entry = load_index(second)["model_configs"][0]
    assert entry["cached"] and (tmp_path / "b" / entry["filename"]).is_file()
    assert entry["filename"] == load_index(first)["model_configs"][0]["filename"]
    assert (shared / entry["filename"]).is_file()


def test_changed_model_source_misses_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    name = f"changing_model_{uuid.uuid4().hex[:8]}"
    source = tmp_path / f"{name}.py"
    code = textwrap.dedent("""
        import torch

        class Changing(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.linear = torch.nn.Linear(16, {width})

            def forward(self, x):
                return self.linear(x)
    """)
    source.write_text(code.format(width=8))
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module(name)
    kwargs: dict[str, Any] = {"compiler": "torchscript", "models_dir": tmp_path / "models",
                              "verbosity": 0}

    first = load_index(neuronperf.compile(module.Changing, example(), **kwargs))
    unchanged = load_index(neuronperf.compile(module.Changing, example(), **kwargs))
    source.write_text(code.format(width=12))
    module = importlib.reload(module)
    changed = load_index(neuronperf.compile(module.Changing, example(), **kwargs))

    assert unchanged["model_configs"][0]["cached"]
    assert not changed["model_configs"][0]["cached"]
    assert changed["model_configs"][0]["status"] == "ok"
    assert changed["model_configs"][0]["filename"] != first["model_configs"][0]["filename"]


def test_cache_key_covers_shapes_dtypes_compiler_pipeline_and_versions():
    versions = {"torch": "2.13.0"}
    base = {"fingerprint": "abc", "example": np.zeros((1, 16), np.float32), "batch_size": 4,
            "pipeline_size": 1, "compiler": "torchscript", "compiler_args": None,
            "framework": "torch", "versions": versions, "device": "cpu"}
    key = compile_cache.cache_key(**base)

    assert compile_cache.cache_key(**base) == key
    assert compile_cache.cache_key(**{**base, "example": np.zeros((4, 16), np.float32)}) == key
    changes = [
        {"fingerprint": "abd"},
        {"example": np.zeros((1, 32), np.float32)},
        {"example": np.zeros((1, 16), np.float64)},
        {"compiler": "export"},
        {"compiler_args": {"freeze": False}},
        {"pipeline_size": 2},
        {"versions": {"torch": "2.14.0"}},
    ]
    keys = {compile_cache.cache_key(**{**base, **change}) for change in changes}
    assert key not in keys and len(keys) == len(changes)


def test_artifact_path_fingerprint_follows_its_bytes(tmp_path: Path):
    artifact = tmp_path / "model.pt"
    artifact.write_bytes(b"one")
    source = compiling.describe_model(artifact)
    first = compile_cache.model_fingerprint(artifact, source)
    artifact.write_bytes(b"two")
    assert compile_cache.model_fingerprint(artifact, source) != first


def test_torchscript_conv_model_loads_back_where_optimize_for_inference_cannot(tmp_path: Path):
    index = neuronperf.compile(TinyConvNet, torch.rand(1, 3, 8, 8), compiler="torchscript",
                               models_dir=tmp_path, verbosity=0)
    entry = load_index(index)["model_configs"][0]
    assert entry["status"] == "ok" and entry["verified"], entry.get("error")


# --- failures are recorded, and compilation goes on -------------------------------------------


def test_failing_configuration_is_recorded_and_the_others_compile(tmp_path: Path):
    index = load_index(neuronperf.compile(NoBatchOfThree, example(), batch_sizes=[1, 3, 2],
                                          compiler="torchscript", models_dir=tmp_path,
                                          verbosity=0))

    entries = configs_by_batch(index)
    assert [e["batch_size"] for e in index["model_configs"]] == [1, 3, 2]
    assert entries[1]["status"] == entries[2]["status"] == "ok"
    assert entries[3]["status"] == "error" and entries[3]["filename"] is None
    assert "does not support batch size 3" in entries[3]["error"]
    # benchmarking the failed size reports the compile error instead of dropping it
    [report] = neuronperf.benchmark(tmp_path / "NoBatchOfThree.json", example(), batch_sizes=[3],
                                    n_models=1, workers_per_model=1, duration=0.2, verbosity=0)
    assert report["status"] == "error" and report["batch_size"] == 3
    assert "compile failed (torchscript" in report["error"]
    assert "does not support batch size 3" in report["error"]
    with pytest.raises(ValueError, match=r"no configuration matching.*it has .*\(1, 1\)"):
        neuronperf.benchmark(tmp_path / "NoBatchOfThree.json", example(), batch_sizes=[7])


def test_output_mismatch_is_an_error_with_the_max_abs_diff(tmp_path: Path):
    index = neuronperf.compile(NoisyMLP, example(), compiler="torchscript", models_dir=tmp_path,
                               verbosity=0)
    entry = load_index(index)["model_configs"][0]
    assert entry["status"] == "error"
    assert entry["error"].startswith("OutputMismatch: outputs of the torchscript artifact differ")
    assert "max abs diff" in entry["error"]

    unchecked = neuronperf.compile(NoisyMLP, example(), compiler="torchscript",
                                   models_dir=tmp_path, verify=False, verbosity=0)
    entry = load_index(unchecked)["model_configs"][0]
    assert entry["status"] == "ok" and entry["verified"] is False


def test_compile_process_crash_fails_one_configuration(tmp_path: Path):
    index = load_index(neuronperf.compile(CrashesAtBatchTwo, example(), batch_sizes=[1, 2, 4],
                                          compiler="torchscript", models_dir=tmp_path,
                                          verbosity=0))

    entries = configs_by_batch(index)
    assert entries[2]["status"] == "error"
    assert "compile process died (killed by SIGKILL)" in entries[2]["error"]
    assert entries[1]["status"] == entries[4]["status"] == "ok"


def test_timeout_kills_the_compile_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    pid_file = tmp_path / "pid"
    monkeypatch.setenv(PID_FILE_ENV, str(pid_file))
    index = load_index(neuronperf.compile(HangsAtBatchTwo, example(), batch_sizes=[1, 2, 4],
                                          compiler="torchscript", models_dir=tmp_path / "m",
                                          timeout=3, verbosity=0))

    entries = configs_by_batch(index)
    assert "timed out after 3 s" in entries[2]["error"]
    # the compile process's Python stacks, taken before the kill (docs/measuring.md)
    assert "hang_in_a_named_place" in entries[2]["error"], entries[2]["error"]
    assert entries[1]["status"] == entries[4]["status"] == "ok"
    assert process_gone(int(pid_file.read_text()))
    assert not [p.name for p in (tmp_path / "m").iterdir() if ".tmp-" in p.name]


def test_ctrl_c_kills_the_compile_process_and_leaves_a_valid_partial_index(tmp_path: Path):
    pid_file = tmp_path / "pid"
    script = tmp_path / "interrupted.py"
    script.write_text(textwrap.dedent(f"""
        import signal, sys
        sys.path.insert(0, {str(TESTS_DIR)!r})
        import torch
        import pytest_neuronperf
        from compile_models import HangsAtBatchTwo

        if __name__ == "__main__":
            signal.signal(signal.SIGINT, signal.default_int_handler)
            pytest_neuronperf.compile(HangsAtBatchTwo, torch.rand(1, 16), batch_sizes=[1, 2, 4],
                                      compiler="torchscript", models_dir={str(tmp_path)!r},
                                      verbosity=0)
    """))
    env = {**os.environ, PID_FILE_ENV: str(pid_file)}
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not pid_file.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pid_file.exists(), "the compile process never reached batch size 2"
        time.sleep(0.2)  # the pid is written just before the process hangs
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()

    assert b"KeyboardInterrupt" in stderr
    assert process_gone(int(pid_file.read_text()))
    index = load_index(tmp_path / "HangsAtBatchTwo.json")
    assert [(e["batch_size"], e["status"]) for e in index["model_configs"]] == [(1, "ok")]
    assert not [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name]


# --- other compilers --------------------------------------------------------------------------


def test_export_aoti_package_is_benchmarked_from_the_index(tmp_path: Path):
    # AOTInductor runs a C++ compiler: tens of seconds even for this model, so it is tested once.
    index = neuronperf.compile(TinyMLP, example(), compiler="export", models_dir=tmp_path,
                               verbosity=0)
    entry = load_index(index)["model_configs"][0]
    assert entry["status"] == "ok", entry.get("error")
    assert entry["filename"].endswith(".pt2") and entry["verified"]

    reports = neuronperf.benchmark(index, example(), **QUICK)
    assert [r["status"] for r in reports] == ["ok"], reports[0]["error"]
    assert reports[0]["model_filename"].endswith(entry["filename"])


def test_export_without_aoti_saves_an_exported_program(tmp_path: Path):
    index = neuronperf.torch.compile(TinyMLP, example(), compiler="export",
                                     compiler_args={"aoti": False}, models_dir=tmp_path,
                                     verbosity=0)
    entry = load_index(index)["model_configs"][0]
    assert entry["status"] == "ok" and entry["verified"], entry.get("error")


def test_keras_model_compiles_to_saved_models(tmp_path: Path):
    inputs = np.random.rand(1, 8).astype(np.float32)
    index = neuronperf.tensorflow.compile(keras_mlp, inputs, batch_sizes=[1, 4],
                                          models_dir=tmp_path, verbosity=0)

    data = load_index(index)
    assert data["framework"] == "tensorflow"
    for entry in data["model_configs"]:
        assert entry["status"] == "ok" and entry["verified"], entry.get("error")
        assert entry["compiler"] == "saved_model"
        assert (tmp_path / entry["filename"] / "saved_model.pb").is_file()
    reports = neuronperf.benchmark(index, inputs, batch_sizes=[4], **QUICK)
    assert [(r["batch_size"], r["status"]) for r in reports] == [(4, "ok")], reports[0]["error"]


@pytest.fixture
def fake_neuron(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """2 fake Neuron devices with the fake torch_neuronx runtime (tests/fakes/neuron)."""
    yield from neuron_support.install(tmp_path, monkeypatch)


def test_auto_compiles_for_neuronx_on_a_neuron_machine(tmp_path: Path, fake_neuron: Any):
    index = neuronperf.compile(TinyNet, torch.rand(1, 8), device_type="neuronx",
                               models_dir=tmp_path / "models", verbosity=0)

    entry = load_index(index)["model_configs"][0]
    assert entry["compiler"] == "neuronx"
    assert entry["status"] == "ok" and entry["verified"], entry.get("error")
    traces = fake_neuron.events("trace", "torch_neuronx")
    assert [e["pid"] != os.getpid() for e in traces] == [True]  # in the compile process
    reports = neuronperf.benchmark(index, torch.rand(1, 8), device_type="neuronx", **QUICK)
    assert [r["status"] for r in reports] == ["ok"], reports[0]["error"]


# --- arguments --------------------------------------------------------------------------------


def test_eager_is_refused_with_a_pointer_to_benchmark(tmp_path: Path):
    with pytest.raises(ValueError, match="benchmark the model class"):
        neuronperf.compile(TinyMLP, example(), compiler="eager", models_dir=tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"compiler": "nope"}, ValueError, "unknown compiler 'nope'"),
        ({"compiler_args": {"f": object()}}, TypeError, "JSON-serialisable"),
        ({"timeout": 0}, ValueError, "timeout must be"),
        ({"framework": "python"}, ValueError, "framework='torch' or 'tensorflow'"),
        ({"verify": {"tol": 1}}, ValueError, "verify must be"),
    ],
)
def test_bad_arguments_are_refused_before_any_process(
    tmp_path: Path, kwargs: dict[str, Any], error: type[Exception], match: str
):
    with pytest.raises(error, match=match):
        neuronperf.compile(TinyMLP, example(), models_dir=tmp_path, **kwargs)


def test_an_index_is_not_compiled_again(mlp_index: str):
    with pytest.raises(ValueError, match="already a model index"):
        neuronperf.compile(mlp_index, example())


@pytest.mark.parametrize(
    ("framework", "device", "expected"),
    [("torch", "cpu", "torchscript"), ("torch", "neuronx", "neuronx"),
     ("torch", "neuron", "neuron"), ("tensorflow", "auto", "saved_model")],
)
def test_auto_compiler_follows_framework_and_device(framework: str, device: str, expected: str):
    assert compiling.resolve_compiler("auto", framework, device) == expected


@pytest.mark.parametrize("name", ["torchscript", "export", "saved_model", "xla"])
def test_builtin_compilers_follow_the_protocol(name: str):
    compiler = compile_worker.load_compiler(name)
    assert isinstance(compiler, Compiler)
    assert compiler.name == name and compiler.is_available()
    assert compiler.framework == ("torch" if name in ("torchscript", "export") else "tensorflow")


def test_importing_compile_imports_no_framework():
    code = ("import sys, pytest_neuronperf, pytest_neuronperf.compiling, pytest_neuronperf.torch, "
            "pytest_neuronperf.tensorflow; pytest_neuronperf.compile; "
            "print([m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"format": "pytest-neuronperf-index", "version": 1, "model_configs": [',
         "not valid JSON"),
        ('{"format": "something-else"}', "not a pytest-neuronperf model index"),
        ('{"format": "pytest-neuronperf-index", "version": 7, "model_configs": []}',
         "has version 7; this pytest-neuronperf reads versions up to 1"),
        ('{"format": "pytest-neuronperf-index", "version": 1}', 'no "model_configs" list'),
    ],
)
def test_unreadable_index_is_refused_naming_the_file(tmp_path: Path, content: str,
                                                    message: str) -> None:
    index = tmp_path / "model.json"
    index.write_text(content)
    with pytest.raises(ValueError, match=message) as caught:
        neuronperf.torch.benchmark(str(index), torch.rand(1, 16), duration=0.2)
    assert str(index) in str(caught.value)
    assert index.read_text() == content


def test_a_framework_contradicting_the_model_is_refused_before_compiling(tmp_path: Path):
    with pytest.raises(ValueError, match="is a torch model but framework='tensorflow'"):
        neuronperf.compile(TinyMLP, example(), framework="tensorflow", models_dir=tmp_path)
    assert not list(tmp_path.iterdir())
