"""The gate on the real engine: A/A false failures and detection of a 25 % slowdown.

    .venv/bin/python benchmarks/gate_study_engine.py [--pairs 20] [--duration 3] [--record F]
    .venv/bin/python benchmarks/gate_study_engine.py --replay F [--recheck RULE] [--single-baseline]

A pair is four runs of one configuration, measured back to back: two baseline runs (pooled, as
``--neuronperf-save-baseline`` does), the run under test, and the run the plugin would make to
recheck it. A/A pairs run identical code; slowdown pairs make the last two runs do 25 % more work
(the MLP runs 5 layers instead of 4: throughput x0.8, latency x1.25). A/A and slowdown pairs
alternate, so both see the same machine. The contract: at most 1 A/A pair in 20 fails, and every
slowdown pair fails.

Recording (``--record``, JSON lines) and judging are apart: ``--replay`` judges recorded runs
again, so a change to the gate's rules can be compared with the old ones on the same
measurements. Judging follows the plugin by default: default tolerances, a baseline pooled from
two runs, the recheck run pooled in only when ``needs_recheck`` asks for it. The rules
docs/statistics.md compares it with are replay options: ``--recheck near-miss`` (also recheck
any metric worse than half its tolerance), ``--recheck always``, ``--recheck never``, and
``--single-baseline`` (the baseline is the first run alone, as before baselines pooled two
runs).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

KEPT_KEYS = ("status", "error", "batch_size", "n_models", "throughput_avg", "latency_ms_p50",
             "latency_ms_p99", "windows")
SAME, SLOW = "A/A", "slow"


def run(repeats: int, duration: float, n_models: Any) -> dict[str, Any]:
    """One configuration of the MLP with ``repeats`` layers of work (what the gate needs of it)."""
    import torch
    from figure_models import ScalableMLP

    import pytest_neuronperf as npf

    os.environ["MLP_REPEATS"] = str(repeats)
    [report] = npf.torch.benchmark(ScalableMLP, torch.rand(1, 512), batch_sizes=4,
                                   n_models=n_models, workers_per_model=1, duration=duration,
                                   verbosity=0, device_type="cpu")
    if report["status"] != "ok":
        raise SystemExit(f"benchmark failed: {report['error']}")
    return {key: report.get(key) for key in KEPT_KEYS}


def record(path: Path, pairs: int, duration: float, n_models: Any) -> None:
    """Measure ``pairs`` A/A and ``pairs`` slowdown pairs, alternating, appending to ``path``."""
    with path.open("a") as stream:
        for i in range(pairs):
            for kind in (SAME, SLOW):
                now = 5 if kind == SLOW else 4
                runs = [run(4, duration, n_models), run(4, duration, n_models),
                        run(now, duration, n_models), run(now, duration, n_models)]
                stream.write(json.dumps({"kind": kind, "pair": i, "duration": duration,
                                         "n_models": n_models, "runs": runs}) + "\n")
                stream.flush()
                print(f"  recorded {kind} pair {i + 1}/{pairs}", flush=True)


def recorded(path: Path) -> Iterator[dict[str, Any]]:
    """The pairs recorded in ``path``."""
    with path.open() as stream:
        for line in stream:
            if line.strip():
                yield json.loads(line)


RECHECK_RULES = ("suspect", "near-miss", "always", "never")


def judge_pair(
    runs: list[dict[str, Any]], recheck: str = "suspect", single_baseline: bool = False
) -> tuple[str, dict[str, float], bool]:
    """(verdict, deltas, rechecked) for one recorded pair, as the plugin (or ``recheck``'s rule)
    would decide it."""
    from pytest_neuronperf.gating.verdicts import (
        entry_from_report,
        judge,
        needs_recheck,
        pool_reports,
    )

    base1, base2, now, again = runs
    baseline = entry_from_report(base1 if single_baseline else pool_reports(base1, base2, "repeat"))
    judgement = judge(now, baseline)
    near_miss = any(c.worse > c.tolerance / 2 for c in judgement.comparisons)
    rechecked = {"suspect": needs_recheck(judgement), "always": True, "never": False,
                 "near-miss": needs_recheck(judgement) or near_miss}[recheck]
    if rechecked:
        judgement = judge(pool_reports(now, again), baseline)
    return judgement.verdict.value, judgement.delta, rechecked


def replay(path: Path, recheck: str = "suspect", single_baseline: bool = False) -> None:
    """Judge every recorded pair and print the tallies."""
    tallies: dict[str, Counter[str]] = {SAME: Counter(), SLOW: Counter()}
    rechecks: Counter[str] = Counter()
    settings = set()
    for pair in recorded(path):
        verdict, delta, rechecked = judge_pair(pair["runs"], recheck, single_baseline)
        tallies[pair["kind"]][verdict] += 1
        rechecks[pair["kind"]] += rechecked
        settings.add((pair["duration"], str(pair["n_models"])))
        deltas = ", ".join(f"{m} {d * 100:+.1f}%" for m, d in delta.items())
        print(f"  {pair['kind']:<4} pair {pair['pair'] + 1:2}: {verdict:<12} "
              f"{'(rechecked) ' if rechecked else '            '}{deltas}")
    print()
    pooled = "first run only" if single_baseline else "two runs pooled"
    print(f"recheck rule: {recheck}; baseline: {pooled}")
    for duration, n_models in sorted(settings):
        print(f"duration {duration:g} s, n_models {n_models}")
    same, slow = tallies[SAME], tallies[SLOW]
    print(f"A/A ({sum(same.values())} pairs): {dict(same)} -> false failures "
          f"{same['REGRESSED']}/{sum(same.values())}; rechecked {rechecks[SAME]}")
    print(f"25% slowdown ({sum(slow.values())} pairs): {dict(slow)} -> caught "
          f"{slow['REGRESSED']}/{sum(slow.values())}; rechecked {rechecks[SLOW]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--n-models", default="1", help="1, 2 or max")
    parser.add_argument("--record", type=Path, help="JSON lines file the runs are appended to")
    parser.add_argument("--replay", type=Path, help="judge the runs recorded in this file")
    parser.add_argument("--recheck", choices=RECHECK_RULES, default="suspect",
                        help="replay: when to pool in the recheck run (default: as the plugin)")
    parser.add_argument("--single-baseline", action="store_true",
                        help="replay: the baseline is the first run alone, not two pooled")
    args = parser.parse_args()
    if args.replay:
        replay(args.replay, args.recheck, args.single_baseline)
        return
    n_models: Any = args.n_models if args.n_models == "max" else int(args.n_models)
    path = args.record or Path(f"gate-runs-{os.getpid()}.jsonl")
    record(path, args.pairs, args.duration, n_models)
    print(f"runs recorded in {path}")
    replay(path)


if __name__ == "__main__":
    main()
