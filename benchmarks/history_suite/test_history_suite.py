"""The suite ``benchmarks/history_record.py`` runs again and again: the quick start's MLP and
two variants with 5 % and 10 % more work per call, measured in the same pytest run, so that a
series spliced from MLP runs and then MLPPlus10 runs is a real step of +10 % work on whatever
the machine did at the time (``history_study.py``)."""

from __future__ import annotations

import paired_models
import pytest
import torch

GRID = {"batch_sizes": [1], "n_models": [1], "workers_per_model": [1]}


@pytest.mark.neuronperf(**GRID)
@pytest.mark.parametrize("model", ["MLP", "MLPPlus5", "MLPPlus10"])
def test_variant(neuronperf, model: str) -> None:  # type: ignore[no-untyped-def]
    reports = neuronperf.benchmark(getattr(paired_models, model), torch.rand(1, 512))
    assert all(r["status"] == "ok" for r in reports)
