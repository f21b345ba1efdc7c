"""The gate on the real engine: A/A false failures and detection of a 25 % slowdown.

    .venv/bin/python benchmarks/gate_study_engine.py [--pairs 20] [--duration 3]

Each pair records a fresh baseline (two runs pooled, as ``--neuronperf-save-baseline`` does),
then measures the same configuration again and gates it against that baseline with the default
tolerances (``pytest_neuronperf.gating``), re-measuring once and deciding on both runs when the
first verdict is REGRESSED or INCONCLUSIVE, exactly as the plugin does.
A/A pairs run identical code; slowdown pairs make the second run do 25 % more work (the MLP runs
5 layers instead of 4: throughput x0.8, latency x1.25). The contract: at most 1 A/A pair in 20
fails, and every slowdown pair fails.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
from figure_models import ScalableMLP  # noqa: E402

import pytest_neuronperf as npf  # noqa: E402
from pytest_neuronperf.gating import (  # noqa: E402
    entry_from_report,
    judge,
    needs_recheck,
    pool_reports,
)


def run(repeats: int, duration: float, n_models: Any) -> dict[str, Any]:
    """One configuration of the MLP with ``repeats`` layers of work."""
    os.environ["MLP_REPEATS"] = str(repeats)
    [report] = npf.torch.benchmark(ScalableMLP, torch.rand(1, 512), batch_sizes=4,
                                   n_models=n_models,
                                   workers_per_model=1, duration=duration, verbosity=0,
                                   device_type="cpu")
    assert report["status"] == "ok", report["error"]
    return report


def study(pairs: int, duration: float, slower: bool, n_models: Any) -> Counter[str]:
    """Verdict counts over ``pairs`` (baseline, candidate) pairs."""
    verdicts: Counter[str] = Counter()
    for i in range(pairs):
        # as --neuronperf-save-baseline does: the baseline pools two runs
        base = pool_reports(run(4, duration, n_models), run(4, duration, n_models), "repeat")
        now = run(5 if slower else 4, duration, n_models)
        judgement = judge(now, entry_from_report(base))
        if needs_recheck(judgement):  # as the plugin does: measure again, decide on both runs
            now = pool_reports(now, run(5 if slower else 4, duration, n_models))
            judgement = judge(now, entry_from_report(base))
        verdicts[judgement.verdict.value] += 1
        deltas = ", ".join(f"{m} {d * 100:+.1f}%" for m, d in judgement.delta.items())
        print(f"  {'slow' if slower else 'A/A '} pair {i + 1:2}: {judgement.verdict.value:<12} "
              f"{deltas}", flush=True)
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--n-models", default="1", help="1, 2 or max")
    args = parser.parse_args()
    n_models: Any = args.n_models if args.n_models == "max" else int(args.n_models)
    same = study(args.pairs, args.duration, False, n_models)
    slow = study(args.pairs, args.duration, True, n_models)
    print()
    print(f"A/A ({args.pairs} pairs, duration {args.duration} s, n_models {n_models}): "
          f"{dict(same)} -> false failures {same['REGRESSED']}/{args.pairs}")
    print(f"25% slowdown ({args.pairs} pairs): {dict(slow)} -> caught "
          f"{slow['REGRESSED']}/{args.pairs}")


if __name__ == "__main__":
    main()
