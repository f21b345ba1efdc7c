"""The torch and TensorFlow adapters, end to end through the engine."""

from __future__ import annotations

import numpy as np
import pytest

import pytest_neuronperf as npf

torch = pytest.importorskip("torch")

QUICK = {"duration": 0.3, "warmup": 0.05, "verbosity": 0, "n_models": 1,
         "workers_per_model": 1, "device_type": "cpu"}


def test_torch_module_class_is_inferred_and_measured():
    from torch_models import TinyMLP

    reports = npf.benchmark(TinyMLP, torch.rand(1, 64), batch_sizes=[1, 8], **QUICK)
    assert [(r["framework"], r["batch_size"], r["status"]) for r in reports] == [
        ("torch", 1, "ok"), ("torch", 8, "ok")]


def test_torch_threads_match_the_slice_and_autograd_is_off(monkeypatch, two_cores):
    from torch_models import ThreadProbe

    monkeypatch.setenv("EXPECTED_THREADS", "2")
    [report] = npf.torch.benchmark(ThreadProbe, torch.rand(1, 4), cores=two_cores,
                                   **{**QUICK, "pipeline_sizes": 2, "workers_per_model": 2})
    assert report["status"] == "ok", report["error"]


def test_torch_multi_input_and_torchscript_file(tmp_path):
    from torch_models import TinyMLP, TwoInputs

    pair = (torch.rand(1, 16), torch.rand(1, 16))
    assert npf.torch.benchmark(TwoInputs, pair, batch_sizes=4, **QUICK)[0]["status"] == "ok"
    path = tmp_path / "mlp.pt"
    torch.jit.save(torch.jit.trace(TinyMLP().eval(), torch.rand(2, 64)), str(path))
    [report] = npf.benchmark(str(path), torch.rand(1, 64), batch_sizes=2, **QUICK)
    assert report["status"] == "ok" and report["model_filename"] == str(path)
    assert report["framework"] == "torch" and report["model_name"] == "mlp"


def test_keras_factory_runs_through_the_tensorflow_adapter():
    pytest.importorskip("tensorflow")
    from tf_models import small_keras_model

    [report] = npf.tensorflow.benchmark(small_keras_model, np.zeros((1, 32), np.float32),
                                        batch_sizes=2, **QUICK)
    assert report["status"] == "ok", report["error"]
    assert report["framework"] == "tensorflow"
