"""The engine's four figures on this machine, each a ratio inside one run.

    .venv/bin/python benchmarks/engine_figures.py [--duration 5] [--repeats 3]

1. Harness efficiency: a no-op Python model driven by the engine (1 copy, 1 worker) vs a bare
   instrumented loop calling the same model in one pinned process. Goal >= 0.8.
2. Scaling: compute-bound torch MLP, n_models=2 vs n_models=1 (pipeline size 1). Goal >= 1.9.
3. Fixed cost per configuration: wall time minus duration for a small torch model. Goal <= 0.5 s.
4. Accuracy: the engine's p50 for the MLP vs a bare loop's p50 in the same run. Goal within 3 %.

Figures 1, 2 and 4 alternate engine and bare runs ``--repeats`` times and report the median
ratio, so a slow spell of the machine hits both sides.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from figure_models import ComputeMLP, NoopModel, SmallConv  # noqa: E402

import pytest_neuronperf as npf  # noqa: E402
from pytest_neuronperf.devices.cpu import usable_cpus  # noqa: E402

MLP_BATCH = 8


def bare_loop(model: Callable[[Any], Any], x: Any, duration: float) -> tuple[float, float]:
    """Calls per second and p50 latency (ms) of an instrumented loop calling ``model(x)``."""
    clock = time.perf_counter_ns
    for _ in range(20):
        model(x)
    lats = array("q")
    add = lats.append
    end = clock() + int(duration * 1e9)
    calls = 0
    while True:
        t0 = clock()
        model(x)
        t1 = clock()
        if t1 > end:
            break
        add(t1 - t0)
        calls += 1
    return calls / duration, float(np.percentile(np.frombuffer(lats, np.int64), 50)) / 1e6


def pinned(cpu: int, threads: int = 1) -> Any:
    """Context: this process on one CPU with one torch thread (as an engine copy is)."""

    class Pin:
        def __enter__(self) -> None:
            self.saved = os.sched_getaffinity(0)
            self.threads = torch.get_num_threads()
            os.sched_setaffinity(0, {cpu})
            torch.set_num_threads(threads)

        def __exit__(self, *exc: object) -> None:
            os.sched_setaffinity(0, self.saved)
            torch.set_num_threads(self.threads)

    return Pin()


def engine(model: Any, inputs: Any, duration: float, **kwargs: Any) -> dict[str, Any]:
    """One engine configuration's report."""
    [report] = npf.benchmark(model, inputs, duration=duration, workers_per_model=1,
                             verbosity=0, device_type="cpu", **kwargs)
    assert report["status"] == "ok", report["error"]
    return report


def harness_efficiency(duration: float, repeats: int) -> list[float]:
    """Engine throughput / bare-loop throughput for the no-op model."""
    x = np.zeros((1, 4), np.float32)
    model = NoopModel()
    ratios = []
    for _ in range(repeats):
        with pinned(usable_cpus()[0]):
            bare, _ = bare_loop(model, x, duration)
        report = engine(NoopModel, x, duration, n_models=1, framework="python")
        ratios.append(report["throughput_avg"] / bare)
        print(f"  no-op: engine {report['throughput_avg']:,.0f}/s, bare {bare:,.0f}/s")
    return ratios


def scaling_and_accuracy(duration: float, repeats: int) -> tuple[list[float], list[float]]:
    """MLP: n_models=2 / n_models=1 throughput, and engine p50 / bare p50."""
    x = torch.rand(MLP_BATCH, 512)
    mlp = ComputeMLP().eval()
    scaling, accuracy = [], []
    for _ in range(repeats):
        with pinned(usable_cpus()[0]), torch.inference_mode():
            _, bare_p50 = bare_loop(mlp, x, duration)
        one = engine(ComputeMLP, x, duration, n_models=1, batch_sizes=MLP_BATCH)
        two = engine(ComputeMLP, x, duration, n_models=2, batch_sizes=MLP_BATCH)
        scaling.append(two["throughput_avg"] / one["throughput_avg"])
        accuracy.append(one["latency_ms_p50"] / bare_p50)
        print(f"  mlp: 1 copy {one['throughput_avg']:,.0f}/s, 2 copies "
              f"{two['throughput_avg']:,.0f}/s; p50 engine {one['latency_ms_p50']:.4f} ms, "
              f"bare {bare_p50:.4f} ms")
    return scaling, accuracy


HAND_PINNED = """
import os, sys, time, torch
sys.path.insert(0, {here!r})
from figure_models import ComputeMLP
os.sched_setaffinity(0, {{{cpu}}})
torch.set_num_threads(1)
torch.set_grad_enabled(False)
model, x = ComputeMLP().eval(), torch.rand({batch}, 512)
for _ in range(50):
    model(x)
start = time.perf_counter(); end = start + {duration}; calls = 0
while time.perf_counter() < end:
    model(x); calls += 1
print(calls * {batch} / (time.perf_counter() - start))
"""


def hand_pinned_scaling(duration: float) -> float:
    """The reference: two hand-pinned single-thread processes vs one (no harness at all)."""
    import subprocess

    def launch(cpu: int) -> subprocess.Popen[str]:
        code = HAND_PINNED.format(here=str(Path(__file__).parent), cpu=cpu, batch=MLP_BATCH,
                                  duration=duration)
        return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)

    one = float(launch(usable_cpus()[0]).communicate()[0])
    pair = [launch(cpu) for cpu in usable_cpus()[:2]]
    two = sum(float(p.communicate()[0]) for p in pair)
    return two / one


def fixed_cost(duration: float, configs: int = 5) -> tuple[float, float]:
    """(first configuration's overhead incl. process-server start, mean overhead after it)."""
    x = torch.rand(1, 3, 32, 32)
    started = time.perf_counter()
    engine(SmallConv, x, duration, n_models=1)
    first = time.perf_counter() - started - duration
    started = time.perf_counter()
    reports = npf.benchmark(SmallConv, x, duration=duration, n_models=1, workers_per_model=1,
                            batch_sizes=list(range(1, configs + 1)), verbosity=0,
                            device_type="cpu")
    wall = time.perf_counter() - started
    assert all(r["status"] == "ok" for r in reports)
    return first, (wall - configs * duration) / configs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"cores {usable_cpus()}, duration {args.duration} s, repeats {args.repeats}")
    first, fixed = fixed_cost(1.0)
    efficiency = harness_efficiency(args.duration, args.repeats)
    scaling, accuracy = scaling_and_accuracy(args.duration, args.repeats)
    reference = [hand_pinned_scaling(args.duration) for _ in range(args.repeats)]
    median = statistics.median
    print()
    print(f"{'figure':<44} {'median':>8} {'runs':<26} goal")
    rows = [
        ("1. harness efficiency (engine/bare, no-op)", median(efficiency), efficiency, ">= 0.8"),
        ("2. scaling (MLP, 2 copies / 1 copy)", median(scaling), scaling, ">= 1.9"),
        ("   reference: 2 hand-pinned processes / 1", median(reference), reference, "(1.96)"),
        ("4. accuracy (MLP p50, engine/bare)", median(accuracy), accuracy, "within 3 %"),
    ]
    for name, value, runs, goal in rows:
        print(f"{name:<44} {value:>8.3f} {', '.join(f'{r:.3f}' for r in runs):<26} {goal}")
    print(f"{'3. fixed cost per configuration (s)':<44} {fixed:>8.3f} "
          f"{'first incl. start-up ' + format(first, '.2f'):<26} <= 0.5 s")


if __name__ == "__main__":
    main()
