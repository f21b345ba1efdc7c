"""``pytest_neuronperf.torch``: NeuronPerf's torch submodule: benchmark (and compile) torch models.

Importing this module does not import torch; the framework is imported in the worker processes.
"""

from __future__ import annotations

from typing import Any

from pytest_neuronperf.compiling import request as compiling
from pytest_neuronperf.engine import benchmark as api


def benchmark(model: Any, inputs: Any, *args: Any, **kwargs: Any) -> list[Any]:
    """:func:`pytest_neuronperf.benchmark` with ``framework="torch"``."""
    kwargs.setdefault("framework", "torch")
    return api.benchmark(model, inputs, *args, **kwargs)


def compile(model: Any, inputs: Any, *args: Any, **kwargs: Any) -> str:
    """:func:`pytest_neuronperf.compile` with ``framework="torch"``; returns the index path."""
    kwargs.setdefault("framework", "torch")
    return compiling.compile(model, inputs, *args, **kwargs)


def evaluate(model: Any, dataset: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """:func:`pytest_neuronperf.evaluate` with ``framework="torch"``."""
    from pytest_neuronperf.evaluation import evaluate as evaluate_model

    kwargs.setdefault("framework", "torch")
    return evaluate_model(model, dataset, **kwargs)
