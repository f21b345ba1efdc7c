"""``pytest_neuronperf.cpu``: benchmark plain Python callables on NumPy inputs, on the CPU."""

from __future__ import annotations

from typing import Any

from pytest_neuronperf.engine import benchmark as api


def benchmark(model: Any, inputs: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """:func:`pytest_neuronperf.benchmark` with ``framework="python"`` on the ``cpu`` device."""
    kwargs.setdefault("framework", "python")
    kwargs.setdefault("device_type", "cpu")
    return api.benchmark(model, inputs, **kwargs)
