"""The server scenario: queries arrive on a Poisson schedule at a fixed rate, whether or not the
model keeps up, and latency runs from each query's arrival (what a service's users see)."""

import pytest
from zoo.resnet import TinyResNet, tiny_example_input


# 20 queries/s (one query = one batch) against one copy: p99 must stay within the SLO, and a
# rate the copy cannot sustain ("overloaded") never meets it. Generous for a shared 2-core
# machine; tighten to your own SLO.
@pytest.mark.neuronperf(batch_sizes=1, n_models=1, workers_per_model=1, duration=3,
                        scenario="server", target_qps=20, p99_ms=250)
def test_tiny_resnet_serves_20_qps_within_its_slo(neuronperf):
    [report] = neuronperf.benchmark(TinyResNet, tiny_example_input(1))
    assert report["status"] == "ok", report["error"]
    assert not report["overloaded"]
