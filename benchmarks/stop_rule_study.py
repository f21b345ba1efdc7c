"""Which early "clear" stop lets unchanged code finish sooner without losing the bars.

The paired gate (``gating.paired.look``) adds launch pairs until a look decides. A stop as
``regressed`` spends alpha (the false-failure rate); a stop as *clear* (the pairs say the change
is not a regression) only ever lowers the false-failure rate, and costs power: a real slowdown
that stops early as clear is missed. So the clear rule is chosen by what it costs the
detection bars (+10 % caught 19/20; +5 % where the spread allows) and what it saves unchanged
code, on simulated launch pairs of known spread and on the recorded pools (bootstrap, as
``launch_study.py``), with every variant replaying the gate's own code (only the clear rule is
swapped):

    .venv/bin/python benchmarks/stop_rule_study.py simulate [--runs 400]
    .venv/bin/python benchmarks/stop_rule_study.py pools benchmarks/launch-pool-loaded.jsonl

Simulated pairs (``scenario``): each process has its own speed for its life (log-normal SD
``launch``), each slice its own noise (``round``); p50 follows throughput, p99 has its own
slice noise (``p99``) and process offset. Time: pairs x (fixed cost + 2 x (rounds + 1) x
slice) against the one-pair engine (2 x duration + one fixed cost + a warm round of 0.25 s
per side). The fixed cost of a pair (fork, load and warm-up of both sides, stopping them) is
``--fixed`` seconds (0.5: measured for the numpy family, loaded machine, see docs/paired.md).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

DURATION = 3.0
SLICE_S = 0.1


@dataclass(frozen=True)
class Scenario:
    """Spreads (log-normal SDs) of one simulated family on one machine state."""

    name: str
    launch: float
    round: float
    p99: float


SCENARIOS = (
    Scenario("steady (1 % launch)", 0.01, 0.01, 0.04),
    Scenario("MLP quiet (2.6 %)", 0.026, 0.015, 0.06),
    Scenario("BERT quiet (4.5 %)", 0.045, 0.015, 0.06),
    Scenario("busy loop (3 %, slices 5 %)", 0.03, 0.05, 0.15),
    Scenario("heavy load (5 %, slices 25 %)", 0.05, 0.25, 0.25),
)


def synthetic_pair(rng: np.random.Generator, s: Scenario, rounds: int,
                   slowdown: float) -> dict[str, Any]:
    """One launch pair's recorded values: head does ``slowdown`` more work per call."""
    values = {}
    for side, shift in (("base", 0.0), ("head", math.log1p(slowdown))):
        offset = rng.normal(0, s.launch)
        offset99 = rng.normal(0, s.launch)
        log_thr = math.log(1000) - shift - offset + rng.normal(0, s.round, rounds)
        p50 = np.exp(-log_thr + math.log(1000) + rng.normal(0, s.round / 3, rounds))
        p99 = 1.4 * p50 * np.exp(offset99 + rng.normal(0, s.p99, rounds))
        values[side] = {"throughput": list(np.exp(log_thr)), "latency_ms_p50": list(p50),
                        "latency_ms_p99": list(p99)}
    return {"order": "head", "values": values}


# -- clear rules --------------------------------------------------------------------------------

ClearRule = Callable[[str, np.ndarray, float, int, int], bool]
"""(metric, pair values, tolerance, look, planned) -> whether this metric is clear."""


def beta_share(look: int, planned: int) -> float:
    """The rule before this study: ``BETA`` spread evenly over the looks."""
    from pytest_neuronperf.gating import paired as gate

    planned = max(planned, gate.MIN_PAIRS)
    return 1.0 / (planned - gate.MIN_PAIRS + 1) if gate.MIN_PAIRS <= look <= planned else 0.0


def two_sided_inside(split: bool) -> ClearRule:
    """The rule before this study: the interval at beta's share per side inside the band."""
    from pytest_neuronperf.gating import paired as gate

    def rule(metric: str, y: np.ndarray, tolerance: float, look: int, planned: int) -> bool:
        beta = gate.BETA * (beta_share(look, planned) if split else 1.0)
        _, low, high = gate.t_interval(y, 1.0 - 2.0 * beta)
        band = math.log1p(tolerance), math.log1p(-min(tolerance, 0.99))
        return math.isfinite(low) and band[1] < low and high < band[0]

    return rule


def one_sided_below(margin: float, split: bool) -> ClearRule:
    """Clear when the one-sided upper bound of *worse* (level 1 - beta's share) lies below
    ``margin`` x tolerance: being better than the band is no reason to go on."""
    from pytest_neuronperf.gating import paired as gate
    from pytest_neuronperf.metrics import METRICS

    def rule(metric: str, y: np.ndarray, tolerance: float, look: int, planned: int) -> bool:
        beta = gate.BETA * (beta_share(look, planned) if split else 1.0)
        worse = -y if METRICS[metric].higher_is_better else y
        _, _, high = gate.t_interval(worse, 1.0 - 2.0 * beta)
        return math.isfinite(high) and high < math.log1p(margin * tolerance)

    return rule


def never(metric: str, y: np.ndarray, tolerance: float, look: int, planned: int) -> bool:
    """No early clear stop: every test runs its planned pairs unless it regresses."""
    return False


RULES: dict[str, Callable[[], ClearRule]] = {
    "none (cap)": lambda: never,
    "2-sided tol, beta/looks (old)": lambda: two_sided_inside(True),
    "1-sided tol, beta/looks": lambda: one_sided_below(1.0, True),
    "1-sided tol, beta each": lambda: one_sided_below(1.0, False),
    "1-sided 2tol, beta/looks": lambda: one_sided_below(2.0, True),
    "1-sided 2tol, beta each": lambda: one_sided_below(2.0, False),
}


def run_test(next_pair: Callable[[], dict[str, Any]], planned: int,
             clear: ClearRule) -> tuple[str, int]:
    """One simulated test with the gate's own looks and verdict, ``clear`` as its clear rule:
    (verdict, pairs used)."""
    from pytest_neuronperf.gating import paired as gate

    tolerances = gate.effective_tolerance({})
    family = gate.family_size(1, None)
    paired: dict[str, Any] = {"base_status": "ok", "planned_pairs": planned, "launches": []}
    while True:
        paired["launches"].append(next_pair())
        pairs = len(paired["launches"])
        if pairs >= gate.MIN_PAIRS:
            level = gate.ALPHA * gate.alpha_share(pairs, planned) / family
            cleared = []
            regressed = False
            for metric, tolerance in tolerances.items():
                y = gate.launch_values(paired, metric)
                y = y[np.isfinite(y)]
                decided = gate.metric_decision(metric, y, tolerance, level, 0.0)
                regressed |= decided == "regressed"
                cleared.append(decided == "improved" or clear(metric, y, tolerance, pairs,
                                                              planned))
            if regressed or all(cleared) or pairs >= planned:
                break
    [judgement] = gate.judge_family([{"status": "ok", "paired": paired}])
    assert judgement is not None
    return judgement.verdict.value, len(paired["launches"])


def planned_pairs(rounds: int) -> int:
    from pytest_neuronperf.engine.paired import planned_pairs as plan

    return plan(DURATION, rounds, SLICE_S)


def times(pairs: list[int], rounds: int, fixed: float) -> tuple[float, float]:
    """(median, 90th percentile) of a test's time relative to the one-pair engine."""
    old = 2 * DURATION + fixed + 2 * 0.25
    per_pair = fixed + 2 * (rounds + 1) * SLICE_S
    spent = np.array(pairs) * per_pair / old
    return float(np.median(spent)), float(np.percentile(spent, 90))


def simulate(args: argparse.Namespace) -> None:
    """The table over simulated scenarios."""
    rounds = args.rounds
    planned = planned_pairs(rounds)
    print(f"simulated: {args.runs} tests per cell, rounds/pair {rounds}, planned pairs "
          f"{planned}, pair fixed cost {args.fixed:g} s, default tolerances, 1 configuration")
    header = (f"{'scenario':<30} {'clear rule':<30} {'A/A fail':>8} {'+5%':>5} {'+10%':>5} "
              f"{'pairs A/A':>9} {'time A/A':>11} {'pairs +10%':>10}")
    print(header)
    for scenario in SCENARIOS:
        for name, make in RULES.items():
            rule = make()
            row = {}
            for slowdown in (0.0, 0.05, 0.10):
                # each test its own stream (common random numbers): every rule sees the same
                # pairs, so an early stop cannot shift the draws of the tests after it
                row[slowdown] = [
                    run_test(partial(synthetic_pair,
                                     np.random.default_rng([args.seed, int(slowdown * 100), i]),
                                     scenario, rounds, slowdown), planned, rule)
                    for i in range(args.runs)]
            print_row(scenario.name, name, row, rounds, args.fixed)


def print_row(label: str, name: str, row: dict[float, list[tuple[str, int]]], rounds: int,
              fixed: float) -> None:
    """One (scenario, rule) line."""
    def rate(slowdown: float) -> float:
        return float(np.mean([v == "REGRESSED" for v, _ in row[slowdown]]))

    used = [n for _, n in row[0.0]]
    t50, t90 = times(used, rounds, fixed)
    print(f"{label:<30} {name:<30} {rate(0.0):>8.1%} {rate(0.05):>5.0%} {rate(0.10):>5.0%} "
          f"{np.median(used):>4.0f}/{np.percentile(used, 90):<4.0f} "
          f"{t50:>5.2f}/{t90:<5.2f} {np.median([n for _, n in row[0.10]]):>10.0f}", flush=True)


def drawn_pair(drawn: list[dict[str, Any]], rng: np.random.Generator,
               slowdown: float) -> dict[str, Any]:
    """One launch pair drawn from a recorded pool, ``slowdown`` scaled into its head."""
    import launch_study

    launch = drawn[int(rng.integers(0, len(drawn)))]
    return launch_study.scaled(launch, slowdown) if slowdown else launch


def pools(args: argparse.Namespace) -> None:
    """The same table from recorded pools: A/A pools centred, slowdowns scaled in."""
    import family_models
    import launch_study

    pool = launch_study.load_pool(args.file)
    print(f"recorded pools {args.file}: {args.runs} bootstrap tests per cell")
    for (family, head, _), pairs in sorted(pool.items()):
        if head != family_models.FAMILIES[family]["models"][0] or len(pairs) < 4:
            continue
        drawn = launch_study.centred(pairs)
        planned = launch_study.planned_for(pairs)
        rounds = launch_study.rounds_of(pairs[0])
        for name, make in RULES.items():
            rule = make()
            row = {}
            for slowdown in (0.0, 0.05, 0.10):
                row[slowdown] = [
                    run_test(partial(drawn_pair, drawn,
                                     np.random.default_rng([args.seed, int(slowdown * 100), i]),
                                     slowdown), planned, rule)
                    for i in range(args.runs)]
            print_row(f"{family} ({len(pairs)} pairs)", name, row, rounds, args.fixed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sub = commands.add_parser("simulate")
    sub.add_argument("--rounds", type=int, default=3)
    sub = commands.add_parser("pools")
    sub.add_argument("file")
    for sub in commands.choices.values():
        sub.add_argument("--runs", type=int, default=400)
        sub.add_argument("--seed", type=int, default=1)
        sub.add_argument("--fixed", type=float, default=0.5)
    args = parser.parse_args()
    {"simulate": simulate, "pools": pools}[args.command](args)


if __name__ == "__main__":
    main()
