"""End-to-end latency with pre- and post-processing, and absolute budgets beside the baseline."""

import pytest
from zoo.preprocessing import postprocess_fn, preprocess_fn, raw_image_input
from zoo.resnet import TinyResNet, tiny_example_input


# One configuration of ~10 ms calls: also the example the demo runs in paired mode
# (--neuronperf-against=HEAD), where each 0.25 s slice holds a few dozen calls per side.
@pytest.mark.neuronperf(batch_sizes=1, n_models=1, workers_per_model=1, duration=3)
def test_tiny_resnet_with_pre_and_post_processing(neuronperf):
    # raw 0-255 images in; normalisation, inference and top-5 are all inside the timed call
    reports = neuronperf.benchmark(TinyResNet, raw_image_input(1, size=64),
                                   preprocess_fn=preprocess_fn, postprocess_fn=postprocess_fn)
    assert all(r["status"] == "ok" for r in reports)


# Budgets are service-level objectives: they hold with or without a baseline, on any machine.
# These are generous for a 2-core CI machine; tighten them to your own SLO.
@pytest.mark.neuronperf(batch_sizes=4, n_models="max", workers_per_model=1, duration=3,
                        p99_ms=250, min_throughput=100)
def test_tiny_resnet_meets_its_budget(neuronperf):
    reports = neuronperf.benchmark(TinyResNet, tiny_example_input(1))
    assert all(r["status"] == "ok" for r in reports)
