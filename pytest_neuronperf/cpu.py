"""``pytest_neuronperf.cpu``: benchmark plain Python callables on NumPy inputs, on the CPU."""

from __future__ import annotations

from typing import Any

from pytest_neuronperf import api
from pytest_neuronperf.frameworks import infer_framework
from pytest_neuronperf.reports import Report


def benchmark(model: Any, inputs: Any, *args: Any, **kwargs: Any) -> list[Any]:
    """:func:`pytest_neuronperf.benchmark` on the ``cpu`` device (``framework="python"``
    unless the model is a torch or Keras class)."""
    # a torch or Keras class runs with its framework's adapter (eval mode, no autograd)
    kwargs.setdefault("framework", infer_framework(model, None) or "python")
    kwargs.setdefault("device_type", "cpu")
    return api.benchmark(model, inputs, *args, **kwargs)


def compare(base_model: Any, model: Any, inputs: Any, **kwargs: Any) -> list[Report]:
    """:func:`pytest_neuronperf.compare` (A/B of two models, interleaved) of plain Python
    callables, with ``framework="python"`` on the ``cpu`` device."""
    kwargs.setdefault("framework", "python")
    kwargs.setdefault("device_type", "cpu")
    return api.compare(base_model, model, inputs, **kwargs)
