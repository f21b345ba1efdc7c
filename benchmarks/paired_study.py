"""The paired gate on the README quick start: false failures (A/A) and detection of +10 % / +5 %
work per call, quiet and loaded, beside the stored-baseline gate on the same kind of runs.

    # the quiet set (nothing else running on the machine). A trial (3 scenarios) takes about
    # 2 min paired only and 5 min with --baseline-gate on a quiet 2-core machine; the script
    # prints the time so far and an estimate of the time left after every scenario:
    .venv/bin/python benchmarks/paired_study.py --trials 20 --baseline-gate \\
        --record benchmarks/paired-runs-quiet.jsonl
    # the loaded set: the script starts a busy loop on one core for the whole run
    .venv/bin/python benchmarks/paired_study.py --trials 20 --baseline-gate --load \\
        --record benchmarks/paired-runs-loaded.jsonl
    # judge recorded runs again with other tolerances / fewer rounds (no measuring):
    .venv/bin/python benchmarks/paired_study.py --replay benchmarks/paired-runs-loaded.jsonl \\
        [--tolerance throughput:3%,p50:3%,p99:10%] [--rounds 8] [--per-cpu]

One trial measures each scenario once, in turn (so all scenarios see the same machine): A/A
(the quick start's MLP against itself), ``w10`` (head = the MLP plus a Linear with 10 % of its
multiply-adds) and ``w5`` (5 %). A paired test is one library ``compare`` of the quick start's
4 configurations (batch 1 and 8, one copy and one per core, 1 worker), ``duration`` 3 s per
side, exactly what ``--neuronperf-against`` runs per test; it fails when the paired gate (Holm
over its 4 configurations x 3 metrics) finds any REGRESSED. With ``--baseline-gate`` the same
trial also runs the stored-baseline flow the plugin uses: two base runs pooled (as
``--neuronperf-save-baseline``), one head run, and the recheck run pooled in when
``needs_recheck`` asks. Every run's per-round (or per-window) figures go to ``--record``
(JSON lines), so ``--replay`` can choose defaults on recorded data.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

SCENARIOS = {"aa": "MLP", "w10": "MLPPlus10", "w5": "MLPPlus5"}
"""Scenario -> the head model (the base is always ``MLP``)."""
SHOULD_FAIL = {"aa": False, "w10": True, "w5": True}
GRID = {"batch_sizes": [1, 8], "n_models": [1, "max"], "workers_per_model": 1}
KEPT = ("status", "error", "batch_size", "n_models", "workers_per_model", "pipeline_size",
        "throughput_avg", "latency_ms_p50", "latency_ms_p99", "windows", "interference")


def paired_trial(head: str, duration: float, rounds: int | None) -> dict[str, Any]:
    """One paired test: ``compare`` of the quick start's 4 configurations."""
    import paired_models
    import torch

    import pytest_neuronperf as npf

    started = time.perf_counter()
    reports = npf.torch.compare(paired_models.MLP, getattr(paired_models, head),
                                torch.rand(1, 512), duration=duration, paired_rounds=rounds,
                                verbosity=0, device_type="cpu", **GRID)
    wall = time.perf_counter() - started
    configs = []
    for report in reports:
        kept = {k: report.get(k) for k in KEPT}
        paired = report.get("paired") or {}
        kept["paired"] = {k: paired.get(k) for k in (
            "rounds", "seed", "order", "slices", "slice_rounds", "slice_cpu_s", "base_status",
            "base_error", "slice_s")}
        configs.append(kept)
    return {"wall_s": wall, "configs": configs}


def plain_run(model: str, duration: float) -> dict[str, Any]:
    """One plain benchmark of the 4 configurations (what one stored-baseline run measures)."""
    import paired_models
    import torch

    import pytest_neuronperf as npf

    started = time.perf_counter()
    reports = npf.torch.benchmark(getattr(paired_models, model), torch.rand(1, 512),
                                  duration=duration, verbosity=0, device_type="cpu", **GRID)
    return {"wall_s": time.perf_counter() - started,
            "configs": [{k: r.get(k) for k in KEPT} for r in reports]}


def baseline_trial(head: str, duration: float) -> dict[str, Any]:
    """The stored-baseline flow: base twice (pooled at judging), head, head again (recheck)."""
    return {"base": [plain_run("MLP", duration), plain_run("MLP", duration)],
            "head": [plain_run(head, duration), plain_run(head, duration)]}


def start_load() -> subprocess.Popen[bytes]:
    """A busy loop pinned to the first usable core, for the loaded set."""
    core = min(os.sched_getaffinity(0))
    return subprocess.Popen([sys.executable, "-c",
                             f"import os\nos.sched_setaffinity(0, {{{core}}})\nwhile True: pass"])


def elapsed(started: float, trial: int, scenario: str, args: argparse.Namespace) -> str:
    """``123 s so far, about 456 s left``."""
    so_far = time.perf_counter() - started
    done = trial * len(args.scenarios) + args.scenarios.index(scenario) + 1
    left = so_far / done * (args.trials * len(args.scenarios) - done)
    return f"{so_far:.0f} s so far, about {left:.0f} s left"


def record(args: argparse.Namespace) -> None:
    """Measure ``args.trials`` trials of every scenario, appending each to ``args.record``."""
    load = start_load() if args.load else None
    started = time.perf_counter()
    try:
        with open(args.record, "a") as stream:
            for trial in range(args.trials):
                for scenario in args.scenarios:
                    head = SCENARIOS[scenario]
                    entry: dict[str, Any] = {
                        "scenario": scenario, "loaded": bool(args.load), "trial": trial,
                        "duration": args.duration, "time": time.time(),
                        "paired": paired_trial(head, args.duration, args.paired_rounds)}
                    if args.baseline_gate:
                        entry["baseline"] = baseline_trial(head, args.duration)
                    stream.write(json.dumps(entry) + "\n")
                    stream.flush()
                    verdicts = judge_entry(entry, {}, None)
                    print(f"trial {trial + 1}/{args.trials} {scenario:>3}: paired "
                          f"{'FAILED' if verdicts['paired'] else 'passed'}"
                          + (f", baseline {'FAILED' if verdicts['baseline'] else 'passed'}"
                             if verdicts["baseline"] is not None else "")
                          + f"  ({elapsed(started, trial, scenario, args)})", flush=True)
    finally:
        if load is not None:
            load.send_signal(signal.SIGKILL)
            load.wait()
    print(f"recorded in {args.record}; took {time.perf_counter() - started:.0f} s")
    summarise([json.loads(line) for line in open(args.record)], {}, None)


# -- judging ----------------------------------------------------------------------------------


def truncated(paired: dict[str, Any], rounds: int | None) -> dict[str, Any]:
    """The paired part with only its first ``rounds`` rounds (all when None)."""
    if rounds is None or not paired.get("slices"):
        return paired
    out = dict(paired)
    keep = {side: [i for i, r in enumerate(paired["slice_rounds"][side]) if r < rounds]
            for side in ("head", "base")}
    out["slices"] = {side: {m: [v[i] for i in keep[side]] for m, v in series.items()}
                     for side, series in paired["slices"].items()}
    out["slice_rounds"] = {side: [paired["slice_rounds"][side][i] for i in keep[side]]
                           for side in ("head", "base")}
    return out


def per_cpu(paired: dict[str, Any]) -> dict[str, Any]:
    """The paired part with throughput replaced by work per CPU second of the copies (what a
    slice did with the CPU it got; runs recorded before ``slice_cpu_s`` existed stay as they
    are)."""
    cpu = paired.get("slice_cpu_s")
    if not cpu or not paired.get("slices"):
        return paired
    out = dict(paired)
    out["slices"] = {}
    for side, series in paired["slices"].items():
        rates = [t * paired["slice_s"] / c if c and c > 0 else None
                 for t, c in zip(series["throughput"], cpu[side], strict=True)]
        out["slices"][side] = {**series, "throughput": rates}
    return out


def judge_paired(trial: dict[str, Any], tolerance: dict[str, float], rounds: int | None,
                 cpu: bool = False) -> tuple[bool, list[Any]]:
    """(the paired test failed, its judgements); ``cpu`` judges throughput per CPU second."""
    from pytest_neuronperf.gating.paired import judge_family

    reports = [{**c, "paired": truncated(per_cpu(c["paired"]) if cpu else c["paired"],
                                         rounds)} for c in trial["configs"]]
    judgements = judge_family(reports, tolerance)
    failed = any(j is not None and j.verdict.failing() for j in judgements)
    return failed, judgements


def judge_baseline(trial: dict[str, Any]) -> bool:
    """The stored-baseline test failed (any configuration REGRESSED after its recheck)."""
    from pytest_neuronperf.gating.verdicts import (
        entry_from_report,
        judge,
        needs_recheck,
        pool_reports,
    )

    failed = False
    base1, base2 = trial["base"]
    head1, head2 = trial["head"]
    for b1, b2, h1, h2 in zip(base1["configs"], base2["configs"], head1["configs"],
                              head2["configs"], strict=True):
        entry = entry_from_report(pool_reports(b1, b2, "repeat"))
        judgement = judge(h1, entry)
        if needs_recheck(judgement):
            judgement = judge(pool_reports(h1, h2), entry)
        failed |= judgement.verdict.failing()
    return failed


def judge_entry(entry: dict[str, Any], tolerance: dict[str, float],
                rounds: int | None, cpu: bool = False) -> dict[str, Any]:
    """Both gates' outcomes of one recorded trial."""
    failed, judgements = judge_paired(entry["paired"], tolerance, rounds, cpu)
    throughput = [c.delta for j in judgements if j is not None for c in j.comparisons
                  if c.metric == "throughput"]
    return {"paired": failed, "throughput_delta": throughput,
            "baseline": judge_baseline(entry["baseline"]) if "baseline" in entry else None}


def summarise(entries: list[dict[str, Any]], tolerance: dict[str, float],
              rounds: int | None, cpu: bool = False) -> None:
    """Tests failed out of N per scenario and load, both gates; estimates; wall times."""
    groups: dict[tuple[str, bool], list[dict[str, Any]]] = defaultdict(list)
    for entry in entries:
        groups[(entry["scenario"], entry["loaded"])].append(entry)
    print(f"{'scenario':<9} {'load':<7} {'paired failed':>14} {'baseline failed':>16} "
          f"{'median Δthr (paired)':>21} {'other% (median)':>16}")
    for (scenario, loaded), group in sorted(groups.items()):
        judged = [judge_entry(e, tolerance, rounds, cpu) for e in group]
        paired = sum(j["paired"] for j in judged)
        with_base = [j["baseline"] for j in judged if j["baseline"] is not None]
        deltas = [d for j in judged for d in j["throughput_delta"]]
        other = [c["interference"]["other_pct"] for e in group for c in e["paired"]["configs"]
                 if c.get("interference")]
        want = "should fail" if SHOULD_FAIL[scenario] else "should pass"
        base_text = f"{sum(with_base)}/{len(with_base)}" if with_base else "-"
        print(f"{scenario:<9} {'loaded' if loaded else 'quiet':<7} "
              f"{paired:>7}/{len(group):<6} {base_text:>16} "
              f"{statistics.median(deltas) if deltas else float('nan'):>+21.2%} "
              f"{statistics.median(other) if other else float('nan'):>16.0f}   ({want})")
    walls = [e["paired"]["wall_s"] for e in entries]
    plain = [e["baseline"]["head"][0]["wall_s"] for e in entries if "baseline" in e]
    print(f"wall time of one paired test (4 configurations, 2 x {entries[0]['duration']} s "
          f"each): median {statistics.median(walls):.1f} s")
    if plain:
        print(f"wall time of one stored-baseline test run (4 configurations, "
              f"{entries[0]['duration']} s each, before any recheck): median "
              f"{statistics.median(plain):.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--paired-rounds", type=int, default=None,
                        help="rounds per paired configuration (default: from duration)")
    parser.add_argument("--scenarios", default="aa,w10,w5",
                        help="comma-separated, of: " + ", ".join(SCENARIOS))
    parser.add_argument("--baseline-gate", action="store_true",
                        help="also run the stored-baseline flow on the same kind of runs")
    parser.add_argument("--load", action="store_true", help="run a busy loop on one core")
    parser.add_argument("--record", type=Path, default=Path("paired-runs.jsonl"))
    parser.add_argument("--replay", type=Path, help="judge a recorded file again")
    parser.add_argument("--tolerance", default=None, help="paired tolerances for --replay")
    parser.add_argument("--rounds", type=int, default=None,
                        help="--replay: judge only the first ROUNDS rounds of each run")
    parser.add_argument("--per-cpu", action="store_true",
                        help="--replay: gate throughput per CPU second of the copies")
    args = parser.parse_args()
    if args.replay:
        from pytest_neuronperf.gating.verdicts import parse_tolerance

        tolerance = parse_tolerance(args.tolerance) if args.tolerance else {}
        summarise([json.loads(line) for line in open(args.replay)], tolerance, args.rounds,
                  args.per_cpu)
        return
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; choose from {', '.join(SCENARIOS)}")
    record(args)


if __name__ == "__main__":
    main()
