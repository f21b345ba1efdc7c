"""Would a CPU speed probe explain the run-to-run drift of a benchmark? (a study, not a feature)

    .venv/bin/python benchmarks/speed_probe_study.py [--runs 20] [--duration 3]

Each round times a one-core torch matmul loop for 0.3 s (the probe, pinned to CPU 0 in this
process), benchmarks the MLP for ``duration`` on one copy (also on CPU 0), and probes again. It
prints the coefficient of variation over the rounds of the MLP's throughput, of the probe, and
of their ratio: if the ratio varies much less than the throughput, dividing by the probe would
remove the machine's drift from the gate.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

PROBE_S = 0.3


def probe() -> float:
    """Calls per second of a 4x512 @ 512x512 linear layer on CPU 0, one thread."""
    import torch

    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {0})
    torch.set_num_threads(1)
    layer, x = torch.nn.Linear(512, 512), torch.rand(4, 512)
    calls, started = 0, time.perf_counter()
    with torch.inference_mode():
        while time.perf_counter() - started < PROBE_S:
            for _ in range(20):
                layer(x)
            calls += 20
    rate = calls / (time.perf_counter() - started)
    os.sched_setaffinity(0, previous)
    return rate


def cv(values: list[float]) -> float:
    """Coefficient of variation."""
    return statistics.pstdev(values) / statistics.mean(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--duration", type=float, default=3.0)
    args = parser.parse_args()

    import torch
    from figure_models import ScalableMLP

    import pytest_neuronperf as npf

    throughputs, probes = [], []
    for i in range(args.runs):
        before = probe()
        [report] = npf.torch.benchmark(ScalableMLP, torch.rand(1, 512), batch_sizes=4,
                                       n_models=1, workers_per_model=1, duration=args.duration,
                                       verbosity=0, device_type="cpu", cores=[0])
        after = probe()
        throughputs.append(report["throughput_avg"])
        probes.append((before + after) / 2)
        print(f"{i + 1:2} throughput {throughputs[-1]:9.1f}/s  probe {before:8.1f} {after:8.1f}"
              f"  ratio {throughputs[-1] / probes[-1]:.4f}", flush=True)
    ratios = [t / p for t, p in zip(throughputs, probes, strict=True)]
    print(f"CV over {args.runs} runs: throughput {cv(throughputs):.3f}, probe {cv(probes):.3f}, "
          f"throughput / probe {cv(ratios):.3f}")


if __name__ == "__main__":
    main()
