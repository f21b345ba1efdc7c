"""Where model processes come from: one forkserver per framework, each preloading its framework,
and a child that does not run the caller's main module again unless something sent needs it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import pytest_neuronperf as npf
from pytest_neuronperf.engine.processes import FORKSERVER_PRELOAD, process_context

QUICK = {"duration": 0.3, "warmup": 0.05, "verbosity": 0, "n_models": 1,
         "workers_per_model": 1, "device_type": "cpu"}
TESTS = Path(__file__).parent


@pytest.fixture
def records(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    from process_models import RECORD_ENV

    monkeypatch.setenv(RECORD_ENV, str(tmp_path))

    def read(tag: str) -> list[dict]:
        return [json.loads(p.read_text()) for p in sorted(tmp_path.glob(f"{tag}-*.json"))]

    return read


def test_each_framework_has_a_forkserver_preloading_it():
    torch_server = process_context("torch").server  # type: ignore[attr-defined]
    assert process_context("torch").server is torch_server  # type: ignore[attr-defined]
    preload = torch_server._preload_modules
    assert preload[:len(FORKSERVER_PRELOAD)] == list(FORKSERVER_PRELOAD) and "torch" in preload
    pytest.importorskip("tensorflow")
    tf_preload = process_context("tensorflow").server._preload_modules  # type: ignore[attr-defined]
    assert "tensorflow" in tf_preload and "torch" not in tf_preload


def test_torch_and_tensorflow_copies_come_from_their_own_servers(records):
    pytest.importorskip("tensorflow")
    import torch
    from process_models import keras_recorder, torch_recorder

    [torch_report] = npf.benchmark(torch_recorder, torch.zeros(1, 4),
                                   framework="torch", **QUICK)
    [tf_report] = npf.benchmark(keras_recorder, np.zeros((1, 4), np.float32),
                                framework="tensorflow", **QUICK)

    assert torch_report["status"] == tf_report["status"] == "ok"
    [torch_copy], [tf_copy] = records("torch"), records("tensorflow")
    assert torch_copy["ppid"] != tf_copy["ppid"]
    assert "tensorflow" not in torch_copy["modules"]
    # importing TensorFlow and Keras in the server started no thread pool a fork would inherit
    assert tf_copy["parent_threads"] == torch_copy["parent_threads"] == 1


SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
import numpy as np
import pytest_neuronperf as npf
from process_models import PythonRecorder, record

class MainModel:
    def __call__(self, x):
        return x

if __name__ == "__main__":
    model = MainModel if sys.argv[1] == "main" else PythonRecorder
    [report] = npf.benchmark(model, np.zeros((1, 4)), framework="python", **{quick!r})
    print(report["status"], report["error"])
else:
    record("main-module")  # runs only where the main module is imported again
"""


@pytest.mark.parametrize("model, reruns_main", [("main", True), ("module", False)])
def test_the_main_module_runs_again_in_a_copy_only_when_needed(
    tmp_path, records, model, reruns_main
):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(SCRIPT.format(tests=str(TESTS), quick=QUICK)))
    out = subprocess.run([sys.executable, str(script), model], capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.stdout.strip() == "ok None", out.stderr
    assert bool(records("main-module")) is reruns_main
