"""Figures for NeuronPerf's API (issue 11), one run each:

1. fp32 vs bf16 vs mixed (and fp16) throughput and accuracy of the README quick-start MLP on
   this CPU. Accuracy is agreement with the fp32 model's own predictions (arg-max of its 512
   outputs) on 1024 random inputs: the labels are what fp32 says, so fp32 scores 1.0 and a cast
   scores the share of predictions it keeps.
2. memory_mb_peak of each ResNet-50 and BERT-base copy (examples/zoo), n_models 1 and "max".

    PYTHONPATH=.:examples python benchmarks/api_figures.py [--duration 3]
"""

from __future__ import annotations

import argparse

import torch

import pytest_neuronperf as npf


class MLP(torch.nn.Sequential):
    """The README quick start's model."""

    def __init__(self) -> None:
        super().__init__(torch.nn.Linear(512, 2048), torch.nn.ReLU(),
                         torch.nn.Linear(2048, 2048), torch.nn.ReLU(), torch.nn.Linear(2048, 512))


CASTS = ["fp32", "bf16", "mixed", "fp16"]


def casts(duration: float) -> None:
    """Throughput (bs 8, one copy, one worker) and accuracy per cast mode."""
    torch.manual_seed(0)
    model = MLP().eval()
    x = torch.rand(1024, 512)
    with torch.no_grad():
        labels = model(x).argmax(dim=1)
    data = torch.utils.data.TensorDataset(x, labels)
    speed = npf.torch.benchmark(model, torch.rand(1, 512), batch_sizes=8, n_models=1,
                                workers_per_model=1, duration=duration, cast_modes=CASTS,
                                verbosity=0)
    accuracy = npf.torch.evaluate(model, data, metrics=["accuracy"], batch_sizes=8,
                                  cast_modes=CASTS, verbosity=0)
    print(f"README MLP, bs=8 n=1 w=1, {duration:g} s per cast (an instance: same weights "
          f"everywhere)")
    print(f"{'cast':<6} {'throughput/s':>13} {'p50 ms':>8} {'p99 ms':>8} {'accuracy':>9} "
          f"{'cpu %':>6} {'mem MB':>7}")
    for s, a in zip(speed, accuracy, strict=True):
        if s["status"] != "ok" or a["status"] != "ok":
            print(f"{s['cast_mode']:<6} error: {s.get('error') or a.get('error')}")
            continue
        print(f"{s['cast_mode']:<6} {s['throughput_avg']:>13.0f} {s['latency_ms_p50']:>8.3f} "
              f"{s['latency_ms_p99']:>8.3f} {a['accuracy']:>9.4f} {s['cpu_percent_avg']:>6.0f} "
              f"{s['memory_mb_peak']:>7.0f}")


def memory(duration: float) -> None:
    """Peak resident memory per copy of ResNet-50 and BERT-base."""
    from zoo.bert import BertBase
    from zoo.bert import example_inputs as bert_inputs
    from zoo.resnet import ResNet50
    from zoo.resnet import example_input as resnet_input

    print("\nmemory_mb_peak per copy (bs=1, w=1)")
    for name, model, inputs in (("ResNet-50", ResNet50, resnet_input(1)),
                                ("BERT-base", BertBase, bert_inputs(1))):
        reports = npf.torch.benchmark(model, inputs, n_models=[1, "max"], workers_per_model=1,
                                      duration=duration, verbosity=0)
        for r in reports:
            if r["status"] != "ok":
                print(f"  {name} n={r['n_models']}: error {r['error'].splitlines()[0]}")
                continue
            per_copy = ", ".join(f"{m:.0f}" for m in r["memory_mb_peak_per_copy"])
            print(f"  {name:<9} n={r['n_models']}: per copy [{per_copy}] MB, cpu "
                  f"{r['cpu_percent_avg']:.0f} %, throughput {r['throughput_avg']:.1f}/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0)
    args = parser.parse_args()
    casts(args.duration)
    memory(args.duration)


if __name__ == "__main__":
    main()
