"""``pytest_neuronperf.torch``: NeuronPerf's torch submodule: benchmark (and compile) torch models.

Importing this module does not import torch; the framework is imported in the worker processes.
"""

from __future__ import annotations

from typing import Any

from pytest_neuronperf import api
from pytest_neuronperf.reports import Report


def benchmark(model: Any, inputs: Any, *args: Any, **kwargs: Any) -> list[Any]:
    """:func:`pytest_neuronperf.benchmark` with ``framework="torch"``."""
    kwargs.setdefault("framework", "torch")
    return api.benchmark(model, inputs, *args, **kwargs)


def compile(model: Any, inputs: Any, *args: Any, **kwargs: Any) -> str:
    """:func:`pytest_neuronperf.compile` with ``framework="torch"``; returns the index path."""
    kwargs.setdefault("framework", "torch")
    return api.compile(model, inputs, *args, **kwargs)


def evaluate(model: Any, dataset: Any, **kwargs: Any) -> list[Report]:
    """:func:`pytest_neuronperf.evaluate` with ``framework="torch"``."""
    kwargs.setdefault("framework", "torch")
    return api.evaluate(model, dataset, **kwargs)


def compare(base_model: Any, model: Any, inputs: Any, **kwargs: Any) -> list[Report]:
    """:func:`pytest_neuronperf.compare` (A/B of two models, interleaved on the same cores)
    with ``framework="torch"``."""
    kwargs.setdefault("framework", "torch")
    return api.compare(base_model, model, inputs, **kwargs)
