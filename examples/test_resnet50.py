"""ResNet-50 (torch, random weights) at batch sizes 1 and 4, one copy and one copy per core."""

import pytest
from zoo.resnet import ResNet50, example_input


@pytest.mark.neuronperf(batch_sizes=[1, 4], n_models=[1, "max"], workers_per_model=1, duration=5)
def test_resnet50(neuronperf):
    reports = neuronperf.benchmark(ResNet50, example_input(1))
    assert all(r["status"] == "ok" for r in reports)
