"""The engine's figures on this machine, each a ratio inside one run.

    .venv/bin/python benchmarks/engine_figures.py [--slice 1] [--pairs 5] [--repeats 3]
        [--compare-ref DIR]

1. Harness efficiency: a no-op Python model driven by the engine (1 copy, 1 worker) vs a bare
   instrumented loop calling the same model in this process, pinned like a copy. Goal >= 0.8.
2. Scaling: compute-bound torch MLP, n_models=2 vs n_models=1 (pipeline size 1). Goal >= 1.9.
3. Fixed cost per configuration, torch and TensorFlow: wall time minus duration of the second
   and later configurations of a call (one copy). Goal <= 0.2 s for torch. Also the first
   configuration of a fresh process (it starts the forkserver).
4. Accuracy: the engine's p50 for the MLP vs a bare loop's p50. Goal within 3 %.

Figures 1 and 4 are measured interleaved: engine and bare loop alternate in short slices
(``--slice`` seconds each, in the order engine, bare, bare, engine, so a linear drift of the
machine cancels) and a repeat's ratio is the median of its ``--pairs`` pair ratios; the figure
is the median of ``--repeats`` repeats. Figure 3 runs each measurement in a fresh interpreter;
with ``--compare-ref DIR`` (a checkout of another revision, e.g. made by
``git archive main | tar -x -C DIR``) the same measurement of that revision alternates with
this tree's, in the same run, and figures 1 and 4 are measured for both trees too, each repeat
in a fresh interpreter per tree, the trees alternating (ref, this tree, ref, this tree ...).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

MLP_BATCH = 8
FIXED_COST_DURATION_S = 1.0
FIXED_COST_CONFIGS = 3


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


@contextmanager
def pinned(cpu: int, threads: int = 1) -> Iterator[None]:
    """This process on one CPU with one torch thread (as an engine copy is)."""
    import torch

    saved, saved_threads = os.sched_getaffinity(0), torch.get_num_threads()
    os.sched_setaffinity(0, {cpu})
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        os.sched_setaffinity(0, saved)
        torch.set_num_threads(saved_threads)


def engine(model: Any, inputs: Any, duration: float, **kwargs: Any) -> dict[str, Any]:
    """One engine configuration's report."""
    import pytest_neuronperf as npf

    [report] = npf.benchmark(model, inputs, duration=duration, workers_per_model=1,
                             verbosity=0, device_type="cpu", **kwargs)
    assert report["status"] == "ok", report["error"]
    return report


def interleaved(
    engine_slice: Callable[[], float], bare_slice: Callable[[], float], pairs: int
) -> float:
    """Median over ``pairs`` of engine/bare, slices in the order E B B E (drift cancels)."""
    ratios = []
    for i in range(pairs):
        if i % 2 == 0:
            e = engine_slice()
            b = bare_slice()
        else:
            b = bare_slice()
            e = engine_slice()
        ratios.append(e / b)
    return statistics.median(ratios)


def harness_efficiency(slice_s: float, pairs: int, cpu: int) -> float:
    """Engine throughput / bare-loop throughput for the no-op model, interleaved."""
    from figure_models import NoopModel

    x = np.zeros((1, 4), np.float32)
    model = NoopModel()

    def engine_slice() -> float:
        return float(engine(NoopModel, x, slice_s, n_models=1, framework="python")[
            "throughput_avg"])

    def bare_slice() -> float:
        with pinned(cpu):
            return bare_loop(model, x, slice_s)[0]

    return interleaved(engine_slice, bare_slice, pairs)


def accuracy(slice_s: float, pairs: int, cpu: int) -> float:
    """Engine p50 / bare-loop p50 for the MLP, interleaved."""
    import torch
    from figure_models import ComputeMLP

    x = torch.rand(MLP_BATCH, 512)
    mlp = ComputeMLP().eval()

    def engine_slice() -> float:
        return float(engine(ComputeMLP, x, slice_s, n_models=1, batch_sizes=MLP_BATCH)[
            "latency_ms_p50"])

    def bare_slice() -> float:
        with pinned(cpu), torch.inference_mode():
            return bare_loop(mlp, x, slice_s)[1]

    return interleaved(engine_slice, bare_slice, pairs)


def scaling(duration: float) -> float:
    """MLP: n_models=2 / n_models=1 throughput."""
    import torch
    from figure_models import ComputeMLP

    x = torch.rand(MLP_BATCH, 512)
    one = engine(ComputeMLP, x, duration, n_models=1, batch_sizes=MLP_BATCH)
    two = engine(ComputeMLP, x, duration, n_models=2, batch_sizes=MLP_BATCH)
    return float(two["throughput_avg"] / one["throughput_avg"])


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


def hand_pinned_scaling(duration: float, cpus: list[int]) -> float:
    """The reference: two hand-pinned single-thread processes vs one (no harness at all)."""

    def launch(cpu: int) -> subprocess.Popen[str]:
        code = HAND_PINNED.format(here=str(HERE), cpu=cpu, batch=MLP_BATCH, duration=duration)
        return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)

    one = float(launch(cpus[0]).communicate()[0])
    pair = [launch(cpu) for cpu in cpus[:2]]
    two = sum(float(p.communicate()[0]) for p in pair)
    return two / one


# --- figure 3, in a fresh interpreter per measurement -----------------------------------------

def probe_fixed_cost(framework: str, repeats: int) -> dict[str, Any]:
    """Run inside a fresh interpreter: first configuration, then later configurations' cost."""
    import pytest_neuronperf as npf

    if framework == "torch":
        import torch
        from figure_models import SmallConv

        model: Any = SmallConv
        x: Any = torch.rand(1, 3, 32, 32)
    else:
        import tensorflow  # noqa: F401 - a TF user's process has it imported
        from figure_tf_models import small_keras_mlp

        model, x = small_keras_mlp, np.zeros((1, 32), np.float32)
    duration = FIXED_COST_DURATION_S

    def call(configs: int) -> float:
        started = time.perf_counter()
        reports = npf.benchmark(model, x, duration=duration, n_models=1, workers_per_model=1,
                                batch_sizes=list(range(1, configs + 1)), verbosity=0,
                                device_type="cpu", framework=framework)
        wall = time.perf_counter() - started
        assert all(r["status"] == "ok" for r in reports), [r["error"] for r in reports]
        return wall

    first = call(1) - duration
    later = []
    for _ in range(repeats):
        one, many = call(1), call(FIXED_COST_CONFIGS)
        later.append((many - one) / (FIXED_COST_CONFIGS - 1) - duration)
    return {"first": first, "later": statistics.median(later), "runs": later}


def fixed_cost(framework: str, tree: Path, repeats: int) -> dict[str, Any]:
    """``probe_fixed_cost`` in a fresh interpreter importing the package from ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree), "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run(  # cwd: the forkserver of Python < 3.12 imports from its cwd first
        [sys.executable, __file__, "--probe", framework, "--repeats", str(repeats)],
        env=env, cwd=tree, capture_output=True, text=True, check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"fixed-cost probe ({framework}, {tree}) failed:\n{out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def probe_interleaved(what: str, slice_s: float, pairs: int) -> float:
    """Run inside a fresh interpreter: figure 1 (``efficiency``) or 4 (``accuracy``)."""
    from pytest_neuronperf.devices.cpu import usable_cpus

    figure = harness_efficiency if what == "efficiency" else accuracy
    return figure(slice_s, pairs, usable_cpus()[0])


def interleaved_in(what: str, tree: Path, slice_s: float, pairs: int) -> float:
    """``probe_interleaved`` in a fresh interpreter importing the package from ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree), "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run(
        [sys.executable, __file__, "--probe", what, "--slice", str(slice_s),
         "--pairs", str(pairs)], env=env, cwd=tree, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{what} probe ({tree}) failed:\n{out.stderr}")
    return float(json.loads(out.stdout.strip().splitlines()[-1]))


def by_tree(what: str, trees: dict[str, Path], args: argparse.Namespace) -> dict[str, list[float]]:
    """Figure 1 or 4 of each tree, ``--repeats`` times, the trees alternating."""
    results: dict[str, list[float]] = {name: [] for name in trees}
    for _ in range(args.repeats):
        for name, tree in trees.items():
            results[name].append(interleaved_in(what, tree, args.slice, args.pairs))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slice", type=float, default=1.0,
                        help="seconds of one interleaved slice (figures 1 and 4)")
    parser.add_argument("--pairs", type=int, default=5, help="engine/bare pairs per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds (figure 2)")
    parser.add_argument("--compare-ref", type=Path, default=None, metavar="DIR",
                        help="also measure figure 3 for the package tree in DIR, alternating")
    parser.add_argument("--only", choices=("fixed", "all"), default="all",
                        help="'fixed': figure 3 only")
    parser.add_argument("--frameworks", default="torch,tensorflow",
                        help="comma-separated frameworks for figure 3")
    parser.add_argument("--probe", choices=("torch", "tensorflow", "efficiency", "accuracy"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe in ("efficiency", "accuracy"):
        print(json.dumps(probe_interleaved(args.probe, args.slice, args.pairs)))
        return
    if args.probe:
        print(json.dumps(probe_fixed_cost(args.probe, args.repeats)))
        return

    from pytest_neuronperf.devices.cpu import usable_cpus

    cpus = usable_cpus()
    median = statistics.median
    print(f"cores {cpus}, slice {args.slice} s x {args.pairs} pairs, repeats {args.repeats}, "
          f"load average {os.getloadavg()[0]:.2f}")
    rows: list[tuple[str, float, list[float], str]] = []
    if args.only == "all":
        efficiency = [harness_efficiency(args.slice, args.pairs, cpus[0])
                      for _ in range(args.repeats)]
        rows.append(("1. harness efficiency (engine/bare, no-op)", median(efficiency),
                     efficiency, ">= 0.8"))
        scale = [scaling(args.duration) for _ in range(args.repeats)]
        reference = [hand_pinned_scaling(args.duration, cpus) for _ in range(args.repeats)]
        rows.append(("2. scaling (MLP, 2 copies / 1 copy)", median(scale), scale, ">= 1.9"))
        rows.append(("   reference: 2 hand-pinned processes / 1", median(reference), reference,
                     "(1.96)"))
        acc = [accuracy(args.slice, args.pairs, cpus[0]) for _ in range(args.repeats)]
        rows.append(("4. accuracy (MLP p50, engine/bare)", median(acc), acc, "within 3 %"))
    trees = {"this tree": HERE.parent}
    if args.compare_ref is not None:
        trees = {"ref": args.compare_ref.resolve(), **trees}
        if args.only == "all":
            for what, label, goal in (("efficiency", "1. harness efficiency", ">= 0.8"),
                                      ("accuracy", "4. accuracy (MLP p50)", "within 3 %")):
                for name, runs in by_tree(what, trees, args).items():
                    rows.append((f"{label}, {name}", median(runs), runs, goal))
    for framework in args.frameworks.split(","):
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
        for _ in range(2):  # alternate the trees, twice
            for name, tree in trees.items():
                results[name].append(fixed_cost(framework, tree, args.repeats))
        for name, runs in results.items():
            later = [r["later"] for r in runs]
            first = [r["first"] for r in runs]
            rows.append((f"3. fixed cost {framework}, {name} (s)", median(later), later,
                         "<= 0.2 s" if framework == "torch" else ""))
            rows.append((f"   first configuration, {name} (s)", median(first), first, ""))
    print(f"load average {os.getloadavg()[0]:.2f}")
    print()
    print(f"{'figure':<48} {'median':>8} {'runs':<26} goal")
    for name, value, runs, goal in rows:
        print(f"{name:<48} {value:>8.3f} {', '.join(f'{r:.3f}' for r in runs):<26} {goal}")


if __name__ == "__main__":
    main()
