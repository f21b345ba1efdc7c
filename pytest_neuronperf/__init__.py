"""pytest-neuronperf: performance-regression testing of ML inference, as a pytest plugin and a
NeuronPerf-shaped library. Importing this package never imports torch or TensorFlow."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = ("benchmark", "compare", "compile", "print_reports", "write_csv", "write_json",
         "get_reports", "evaluate", "list_metrics", "tune", "print_tuning", "Endpoint",
         "start_server")
"""The public calls, all defined or re-exported by ``pytest_neuronperf.api``."""
_SUBMODULES = ("torch", "tensorflow", "cpu", "model_index")

__all__ = [*_LAZY, *_SUBMODULES]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module("pytest_neuronperf.api"), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"pytest_neuronperf.{name}")
    raise AttributeError(f"module 'pytest_neuronperf' has no attribute {name!r}")
