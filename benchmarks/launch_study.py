"""The paired gate per model family: false failures, detection and time to a verdict.

Pools of real launch pairs are recorded per family and head (A/A, +10 % and +5 % work:
``family_models.py``) with ``variance_levels.py record`` (every pair fresh processes, launch
order a coin, the engine's default rounds per pair). A simulated *test* then draws pairs from
its family's pool with replacement (a bootstrap over launches: the pools are only 2-3 times
the planned pairs) and runs the gate exactly as the engine does (``gating.paired.look`` after
every pair, ``judge_family`` at the stop, default
tolerances, one configuration x 3 metrics), so the rates replay from the recorded files:

    # the quiet-machine confirmation set (one command; about 40 min on a quiet 2-core machine):
    # records benchmarks/launch-pool-quiet.jsonl and launch-pool-busy.jsonl, then prints both
    .venv/bin/python benchmarks/launch_study.py confirm
    # rates from recorded pools (no measuring)
    .venv/bin/python benchmarks/launch_study.py replay benchmarks/launch-pool-quiet.jsonl

Per family and head it prints: tests failed (REGRESSED) out of ``--runs`` simulated tests
(A/A pools centred first: ``centred``), the true effect (mean over all the pool's pairs), the
per-pair SD of the throughput log ratio, the smallest slowdown caught 19 times in 20 (the
centred A/A pool with the head's figures scaled),
pairs used and time to a verdict (median, 90th percentile: the pairs' own wall time, loads
included) against the time of the one-pair engine it replaces (2 x duration + one pair's
loads and warm-up). ``tuning`` families chose the defaults; the others only confirm them.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

DURATION = 3.0
"""Seconds of measuring per side a test may use (the DESIGN's bar is stated at 3 s)."""
FAMILY_SIZE = 3
"""One configuration x throughput, p50, p99 (Holm over them)."""
SHIFTS = (0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.10, 0.12, 0.15, 0.20, 0.30)


def load_pool(path: str) -> dict[tuple[str, str, bool], list[dict[str, Any]]]:
    """(family, head, loaded) -> every recorded launch pair, with its wall time."""
    pool: dict[tuple[str, str, bool], list[dict[str, Any]]] = defaultdict(list)
    for text in Path(path).read_text().splitlines():
        if not text.strip():
            continue
        line = json.loads(text)
        if line.get("status") != "ok":
            continue
        for launch in line.get("launches") or []:
            pool[(line["family"], line["head"], bool(line.get("loaded")))].append(
                {**launch, "load": line.get("load_before"), "slice_s": line.get("slice_s"),
                 "other_pct": (launch.get("interference") or {}).get("other_pct")})
    return pool


def scaled(launch: dict[str, Any], slowdown: float) -> dict[str, Any]:
    """A launch pair whose head did ``slowdown`` more work per call (throughput / (1 + s),
    latencies x (1 + s))."""
    head = launch["values"]["head"]
    values = {"base": launch["values"]["base"], "head": {
        "throughput": [v / (1 + slowdown) for v in head["throughput"]],
        "latency_ms_p50": [v * (1 + slowdown) for v in head["latency_ms_p50"]],
        "latency_ms_p99": [v * (1 + slowdown) for v in head["latency_ms_p99"]]}}
    return {**launch, "values": values}


def centred(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An A/A pool with its mean change per metric taken out of the head's figures, so that
    resampling it draws from a population where the null holds (a pool of a dozen pairs has a
    mean of a few per cent by chance; resampling it as it is would test that accident)."""
    from pytest_neuronperf.gating import paired as gate

    shift = {}
    for metric in gate.PAIRED_TOLERANCE:
        y = gate.launch_values({"launches": pairs}, metric)
        shift[metric] = math.exp(float(np.mean(y[np.isfinite(y)])))
    return [{**launch, "values": {"base": launch["values"]["base"], "head": {
        metric: [v / shift[metric] for v in values]
        for metric, values in launch["values"]["head"].items() if metric in shift}}}
        for launch in pairs]


def simulate(pairs: list[dict[str, Any]], rng: np.random.Generator, planned: int,
             slowdown: float = 0.0) -> tuple[str, int, float, str]:
    """One simulated test: (verdict, pairs used, wall seconds, stop code)."""
    from pytest_neuronperf.gating import paired as gate

    tolerances = gate.effective_tolerance({})
    order = rng.integers(0, len(pairs), size=max(planned, 1))  # the bootstrap: with replacement
    paired: dict[str, Any] = {"base_status": "ok", "planned_pairs": planned, "launches": []}
    wall = 0.0
    stop = gate.Look(True, "cap", "")
    for index in order:
        launch = pairs[index] if not slowdown else scaled(pairs[index], slowdown)
        paired["launches"].append(launch)
        wall += float(launch.get("wall_s") or 0.0)
        stop = gate.look(paired, tolerances, FAMILY_SIZE, planned)
        if stop.stop:
            break
    [judgement] = gate.judge_family([{"status": "ok", "paired": paired}])
    assert judgement is not None
    return judgement.verdict.value, len(paired["launches"]), wall, stop.code


def planned_for(pairs: list[dict[str, Any]]) -> int:
    """The pairs the engine plans at ``DURATION`` for the recorded rounds and slice (pools
    recorded before the slice was: ``SLICE_S``)."""
    from pytest_neuronperf.engine.paired import SLICE_S, planned_pairs

    rounds = int(np.median([rounds_of(launch) for launch in pairs]))
    slices = [p["slice_s"] for p in pairs if p.get("slice_s")]
    return planned_pairs(DURATION, rounds, float(np.median(slices)) if slices else SLICE_S)


def rounds_of(launch: dict[str, Any]) -> int:
    """The rounds one recorded pair ran."""
    return len(launch["values"]["head"]["throughput"])


def one_pair_time(pairs: list[dict[str, Any]]) -> float:
    """The engine this replaces: one pair, both sides measured ``DURATION``, one load."""
    from pytest_neuronperf.engine.paired import SLICE_S

    overheads = [float(p.get("wall_s") or 0) - 2 * (rounds_of(p) + 1) * SLICE_S for p in pairs]
    return 2 * DURATION + float(np.median(overheads))


def pair_sd(pairs: list[dict[str, Any]]) -> float:
    """SD of the pairs' throughput values (median log ratio over each pair's rounds)."""
    from pytest_neuronperf.gating import paired as gate

    y = gate.launch_values({"launches": pairs}, "throughput")
    y = y[np.isfinite(y)]
    return float(np.std(y, ddof=1)) if y.size > 1 else math.nan


def true_effect(pairs: list[dict[str, Any]]) -> float:
    """The mean throughput change over every pair of a pool (relative)."""
    from pytest_neuronperf.gating import paired as gate

    y = gate.launch_values({"launches": pairs}, "throughput")
    return math.expm1(float(np.mean(y[np.isfinite(y)])))


def smallest_caught(pairs: list[dict[str, Any]], runs: int, planned: int) -> float:
    """The smallest slowdown in ``SHIFTS`` caught in at least 19 of 20 simulated tests."""
    for shift in SHIFTS:
        rng = np.random.default_rng(int(shift * 1000))
        caught = sum(simulate(pairs, rng, planned, shift)[0] == "REGRESSED"
                     for _ in range(runs))
        if caught >= 0.95 * runs:
            return shift
    return math.inf


def replay(args: argparse.Namespace) -> None:
    """Print the table for every (family, head, load) of a recorded pool."""
    import family_models

    pool = load_pool(args.file)
    print(f"duration {DURATION:g} s per side, {args.runs} simulated tests per row; "
          f"pool {args.file}")
    print(f"{'family':<11} {'role':<8} {'head':<19} {'load':<5} {'pairs':>5} {'effect':>7} "
          f"{'sd/pair':>7} {'failed':>9} {'used':>5} {'t50 s':>6} {'t90 s':>6} {'1-pair s':>8} "
          f"{'19/20 at':>8} {'load1':>5} {'other%':>6}")
    for (family, head, loaded), pairs in sorted(pool.items()):
        if len(pairs) < 4:
            continue
        planned = planned_for(pairs)
        rng = np.random.default_rng(0)
        is_aa = head == family_models.FAMILIES[family]["models"][0]
        drawn = centred(pairs) if is_aa else pairs
        sims = [simulate(drawn, rng, planned) for _ in range(args.runs)]
        failed = sum(verdict == "REGRESSED" for verdict, *_ in sims)
        used = float(np.median([s[1] for s in sims]))
        walls = [s[2] for s in sims]
        detect = smallest_caught(drawn, args.runs // 2, planned) if is_aa else math.nan
        load1 = np.mean([p["load"]["load1"] for p in pairs if p.get("load")])
        others = [p["other_pct"] for p in pairs if p.get("other_pct") is not None]
        if not is_aa:
            detect_text = "-"
        else:
            detect_text = f"{detect:.0%}" if math.isfinite(detect) else f">{SHIFTS[-1]:.0%}"
        print(f"{family:<11} {family_models.FAMILIES[family]['role']:<8} {head:<19} "
              f"{'busy' if loaded else '-':<5} {len(pairs):>5} {true_effect(pairs):>+7.1%} "
              f"{pair_sd(pairs):>7.1%} {failed:>4}/{args.runs:<4} {used:>5.1f} "
              f"{np.median(walls):>6.1f} {np.percentile(walls, 90):>6.1f} "
              f"{one_pair_time(pairs):>8.1f} {detect_text:>8}", end="")
        print(f" {load1:>5.2f} {np.mean(others) if others else math.nan:>6.1f}")


CONFIRM_FAMILIES = "tiny_mlp,medium_mlp,conv,lstm,numpy,keras,bert"


def confirm(args: argparse.Namespace) -> None:
    """Record the confirmation pools (quiet, then with one busy loop), then replay both."""
    started = time.time()
    for out, extra in ((args.quiet, []), (args.busy, ["--load"])):
        command = [sys.executable, str(HERE / "variance_levels.py"), "record",
                   "--sessions", "2", "--launches", "1", "--pairs", str(args.pairs),
                   "--rounds", "3", "--heads", "0,1,2" if not extra else "0,1",
                   "--families", args.families, "--engine", "launch-pairs", "--out", out,
                   *extra]
        subprocess.run(command, check=True)
        print(f"recorded {out} ({(time.time() - started) / 60:.0f} min so far)", flush=True)
    for out in (args.quiet, args.busy):
        replay(argparse.Namespace(file=out, runs=args.runs))
    print(f"confirmation took {(time.time() - started) / 60:.0f} min")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sub = commands.add_parser("replay")
    sub.add_argument("file")
    sub.add_argument("--runs", type=int, default=200)
    sub = commands.add_parser("confirm")
    sub.add_argument("--families", default=CONFIRM_FAMILIES)
    sub.add_argument("--pairs", type=int, default=10, help="launch pairs per recorded call")
    sub.add_argument("--runs", type=int, default=200)
    sub.add_argument("--quiet", default=str(HERE / "launch-pool-quiet.jsonl"))
    sub.add_argument("--busy", default=str(HERE / "launch-pool-busy.jsonl"))
    args = parser.parse_args()
    {"replay": replay, "confirm": confirm}[args.command](args)


if __name__ == "__main__":
    main()
