"""Install the fake Neuron runtimes and ``neuron-ls`` for one test, and read what they logged.

How the fakes reach the model processes: those come from a forkserver that may have been started
by an earlier test, so their environment can be older than this test's. Their ``sys.path``,
though, is sent by multiprocessing with every process start. So the fake packages sit in a
directory put on ``sys.path``, and the log location is a file named ``FAKE_NEURON_LOG`` in a
per-test directory that is also put on ``sys.path``; the fakes look it up on every event.
``NEURON_RT_VISIBLE_CORES`` needs no such care: the worker sets it from its ``Placement``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

FAKES_DIR = Path(__file__).parent / "neuron"
FAKE_MODULES = ("torch_neuron", "torch_neuronx", "fake_neuron_log", "neuron_models",
                "neuronx_distributed_inference", "neuronx_distributed_inference.models",
                "neuronx_distributed_inference.models.llama",
                "neuronx_distributed_inference.utils",
                "neuronx_distributed_inference.utils.hf_adapter")
NEURON_ENV = ("NEURON_RT_VISIBLE_CORES", "NEURON_RT_NUM_CORES", "FAKE_NEURON_LOG")


@dataclass(frozen=True)
class FakeNeuron:
    """A fake Neuron machine for one test: its log, and helpers to read it."""

    log: Path

    def events(self, event: str | None = None, module: str | None = None) -> list[dict[str, Any]]:
        """Every logged event, optionally only one kind (``import``, ``trace``) or module."""
        if not self.log.exists():
            return []
        found = [json.loads(line) for line in self.log.read_text().splitlines() if line]
        return [
            e for e in found
            if (event is None or e["event"] == event) and (module is None or e["module"] == module)
        ]

    def worker_imports(self, module: str) -> list[dict[str, Any]]:
        """Imports of ``module`` by model processes (not by this test process)."""
        return [e for e in self.events("import", module) if e["pid"] != os.getpid()]

    def worker_cores(self, module: str) -> list[str]:
        """``NEURON_RT_VISIBLE_CORES`` of each model process that imported ``module``, sorted."""
        return sorted(e["visible_cores"] for e in self.worker_imports(module))


def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNeuron]:
    """Fixture body: 2 fake Neuron devices x 2 NeuronCores, both fake runtimes importable."""
    config = tmp_path / "fake-neuron-config"
    config.mkdir()
    log = tmp_path / "fake-neuron.jsonl"
    (config / "FAKE_NEURON_LOG").write_text(str(log))
    for name in NEURON_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FAKE_NEURON_DEVICES", "2")
    monkeypatch.setenv("FAKE_NEURON_CORES_PER_DEVICE", "2")
    monkeypatch.setenv("PATH", f"{FAKES_DIR}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.syspath_prepend(str(FAKES_DIR))
    monkeypatch.syspath_prepend(str(config))
    for name in FAKE_MODULES:  # a real runtime imported earlier is put back afterwards
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield FakeNeuron(log)
    for name in FAKE_MODULES:  # imported by this test process, e.g. while compiling
        sys.modules.pop(name, None)
