"""pytest-neuronperf: performance-regression testing of ML inference, as a pytest plugin and a
NeuronPerf-shaped library. Importing this package never imports torch or TensorFlow."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "benchmark": "pytest_neuronperf.engine.benchmark",
    "compare": "pytest_neuronperf.engine.paired",
    "compile": "pytest_neuronperf.compiling.request",
    "print_reports": "pytest_neuronperf.reporting.tables",
    "write_csv": "pytest_neuronperf.reporting.files",
    "write_json": "pytest_neuronperf.reporting.files",
    "get_reports": "pytest_neuronperf.reporting.files",
    "evaluate": "pytest_neuronperf.evaluation",
    "list_metrics": "pytest_neuronperf.evaluation",
    "tune": "pytest_neuronperf.tuning",
    "Endpoint": "pytest_neuronperf.engine.specs",
    "start_server": "pytest_neuronperf.engine.server_command",
    "print_tuning": "pytest_neuronperf.tuning",
}
_SUBMODULES = ("torch", "tensorflow", "cpu", "model_index")

__all__ = [*_LAZY, *_SUBMODULES]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"pytest_neuronperf.{name}")
    raise AttributeError(f"module 'pytest_neuronperf' has no attribute {name!r}")
