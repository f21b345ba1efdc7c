"""Change-point detection figures: the history's detector against E-divisive (MongoDB's
signal-processing-algorithms and Apache Otava), on the same series.

    # ours only (seconds):
    .venv/bin/python benchmarks/history_study.py
    # with the alternatives, each in its own environment (see history_detectors.py):
    .venv/bin/python benchmarks/history_study.py --alt e-divisive-mongodb-p05=/tmp/spa/bin/python \\
        --alt otava-p001=/tmp/otava/bin/python
    # their detections are kept in --cache, so the figures replay without those environments

Series (all of throughput per run, in run order):

- simulated, at the run-to-run noise this machine shows: each run's value is 1 + a relative
  deviation drawn (with replacement) from real A/A runs: ``quiet`` from
  ``gate-runs-quiet.jsonl`` (an earlier session's runs on a quiet machine of this class),
  ``loaded`` from ``history-runs-loaded.jsonl`` (runs recorded while other sessions shared the
  machine: ``history_record.py``). A/A series of 100 runs; step series of 60 runs with a
  slowdown of 3, 5 or 10 % from run 40 on.
  ``--scaled SD`` adds the quiet deviations scaled to that SD (what a dedicated runner shows).
- real: the recorded runs themselves. A/A: the MLP's runs. Steps: the MLP's runs up to run k,
  then MLPPlus10's (10 % more work per call, measured in the same pytest runs), for every k.

Figures per detector: change points found (within ``NEAR`` runs of the step, in the right
direction, on the whole series), false change points per 100 runs (all others), and the runs
after the step before it is found (running the detector on every prefix that ends 1 .. MAX_DELAY
runs after the step, as a gate on each new run would).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

STEPS = (0.03, 0.05, 0.10)
AA_RUNS, STEP_AT, STEP_RUNS = 100, 40, 60
N_AA, N_STEP = 30, 40
NEAR = 2
"""A change point this close to the step (runs) finds it."""
MAX_DELAY = 12
SEED = 20240611


# --- series ---------------------------------------------------------------------------------


def quiet_runs(path: Path) -> list[float]:
    """Throughput of the A/A runs of ``gate-runs-quiet.jsonl``, in the order measured."""
    values = []
    for line in path.read_text().splitlines():
        pair = json.loads(line)
        if pair["kind"] == "A/A":
            values += [run["throughput_avg"] for run in pair["runs"] if run.get("throughput_avg")]
    return values


def recorded_runs(path: Path) -> dict[str, list[float]]:
    """Throughput per run of each model of ``history_record.py``'s file, in run order (runs
    where any model failed are left out, so the models stay aligned)."""
    series: dict[str, list[float]] = {}
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        values = {str(r["test"]).split("[")[-1].rstrip("]"): r.get("throughput_avg")
                  for r in entry["reports"]}
        if len(values) == 3 and all(isinstance(v, float) and v > 0 for v in values.values()):
            for model, value in values.items():
                series.setdefault(model, []).append(value)
    return series


def deviations(values: Sequence[float]) -> np.ndarray:
    """Relative deviations of runs from their median."""
    array = np.asarray(values, dtype=float)
    return array / np.median(array) - 1.0


def simulated(noise: np.ndarray, rng: np.random.Generator) -> dict[str, list[list[float]]]:
    """A/A series and step series (slowdown from run STEP_AT) with resampled noise."""
    sets = {"A/A": [list(1.0 + rng.choice(noise, AA_RUNS)) for _ in range(N_AA)]}
    for step in STEPS:
        level = np.where(np.arange(STEP_RUNS) >= STEP_AT, 1.0 - step, 1.0)
        sets[f"-{step:.0%}"] = [list(level * (1.0 + rng.choice(noise, STEP_RUNS)))
                                for _ in range(N_STEP)]
    return sets


def real_sets(runs: dict[str, list[float]]) -> tuple[dict[str, list[list[float]]], list[int]]:
    """Real A/A series (each model alone) and spliced steps MLP -> MLPPlus10; the step runs."""
    sets = {"A/A": [runs[m] for m in ("MLP", "MLPPlus5", "MLPPlus10") if m in runs]}
    n = len(runs.get("MLP", []))
    ats = list(range(15, n - MAX_DELAY))
    sets["+10% work"] = [runs["MLP"][:k] + runs["MLPPlus10"][k:] for k in ats]
    return sets, ats


# --- detectors ------------------------------------------------------------------------------


def ours(**parameters: Any) -> Callable[[list[list[float]]], list[list[int]]]:
    """The history's detector with these parameters."""
    from pytest_neuronperf.history.changes import detect

    return lambda many: [[c.index for c in detect(s, **parameters)] for s in many]


def alternative(name: str, python: str | None, cache: dict[str, Any]
                ) -> Callable[[list[list[float]]], list[list[int]]]:
    """A detector of history_detectors.py run by ``python``, its answers kept in ``cache``."""
    def run(many: list[list[float]]) -> list[list[int]]:
        key = f"{name}:{hashlib.sha256(json.dumps(many).encode()).hexdigest()[:16]}"
        if key not in cache:
            if python is None:
                raise SystemExit(f"{name}: not in the cache; give --alt {name}=PYTHON")
            done = subprocess.run([python, str(HERE / "history_detectors.py")],
                                  input=json.dumps({"detector": name, "series": many}),
                                  capture_output=True, text=True, check=True)
            cache[key] = json.loads(done.stdout)
        return [list(found) for found in cache[key]]
    return run


# --- figures ---------------------------------------------------------------------------------


def judge(detector: Callable[[list[list[float]]], list[list[int]]],
          sets: dict[str, list[list[float]]], steps: dict[str, list[int]]) -> dict[str, Any]:
    """Found, false change points per 100 runs and delays, per set."""
    figures: dict[str, Any] = {}
    for name, many in sets.items():
        ats = steps.get(name)
        found_all = detector(many)
        false = found = 0
        for i, cps in enumerate(found_all):
            at = None if ats is None else ats[i]
            hit = at is not None and any(abs(c - at) <= NEAR for c in cps)
            found += hit
            false += sum(1 for c in cps if at is None or abs(c - at) > NEAR)
        runs = sum(len(s) for s in many)
        entry = {"series": len(many), "false_per_100": 100.0 * false / runs}
        if ats is not None:
            entry["found"] = found / len(many)
            entry["delays"] = delays(detector, many, ats)
        figures[name] = entry
    return figures


def delays(detector: Callable[[list[list[float]]], list[list[int]]], many: list[list[float]],
           ats: list[int]) -> list[int | None]:
    """Per series: runs after the step (counting the first changed run) until a prefix shows a
    change point near it; None when MAX_DELAY runs do not."""
    prefixes, owners = [], []
    for i, series in enumerate(many):
        for k in range(1, MAX_DELAY + 1):
            if ats[i] + k <= len(series):
                prefixes.append(series[:ats[i] + k])
                owners.append((i, k))
    found = detector(prefixes)
    first: dict[int, int] = {}
    for (i, k), cps in zip(owners, found, strict=True):
        if i not in first and any(abs(c - ats[i]) <= NEAR for c in cps):
            first[i] = k
    return [first.get(i) for i in range(len(many))]


def row(detector: str, noise: str, figures: dict[str, Any]) -> str:
    """One Markdown table row: A/A false rate, then per step found / false / delay."""
    cells = [detector, noise, f"{figures['A/A']['false_per_100']:.2f}"]
    for name, entry in figures.items():
        if name == "A/A":
            continue
        known = [d for d in entry["delays"] if d is not None]
        within5 = sum(1 for d in known if d <= 5) / len(entry["delays"])
        median = f"{np.median(known):.0f}" if known else "-"
        cells.append(f"{entry['found']:.0%} / {entry['false_per_100']:.2f} / {median} "
                     f"({within5:.0%} in 5)")
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", type=Path, default=HERE / "history-runs-loaded.jsonl")
    parser.add_argument("--quiet", type=Path, default=HERE / "gate-runs-quiet.jsonl")
    parser.add_argument("--cache", type=Path, default=HERE / "history-study-detections.json")
    parser.add_argument("--alt", action="append", default=[], metavar="NAME=PYTHON")
    parser.add_argument("--scaled", type=float, action="append", default=[], metavar="SD",
                        help="also the quiet noise scaled to this SD (0.02: a dedicated runner)")
    parser.add_argument("--ours", action="append", default=[], metavar="PARAM=VALUE,...",
                        help="another setting of ours to compare, e.g. penalty=4,min_runs=2")
    args = parser.parse_args()
    cache = json.loads(args.cache.read_text()) if args.cache.exists() else {}
    detectors: dict[str, Callable[[list[list[float]]], list[list[int]]]] = {"ours": ours()}
    for spec in args.ours:
        parameters = {k: float(v) if "." in v else int(v) for k, v in
                      (p.split("=") for p in spec.split(","))}
        detectors[f"ours {spec}"] = ours(**parameters)
    alternatives = dict(a.split("=", 1) for a in args.alt)
    for name in sorted({*alternatives, *(k.split(":")[0] for k in cache)}):
        detectors[name] = alternative(name, alternatives.get(name), cache)
    runs = recorded_runs(args.record)
    noises = {"quiet": deviations(quiet_runs(args.quiet)), "loaded": deviations(runs["MLP"])}
    for sd in args.scaled:  # the same shape of noise, as small as a dedicated runner's
        noises[f"quiet x {sd / np.std(noises['quiet']):.2f} (SD {sd:.0%})"] = (
            noises["quiet"] * sd / np.std(noises["quiet"]))
    for name, noise in noises.items():
        print(f"noise {name}: {noise.size} runs, SD {np.std(noise):.1%}, "
              f"p5..p95 {np.percentile(noise, 5):+.1%}..{np.percentile(noise, 95):+.1%}")
    step_runs = {f"-{s:.0%}": [STEP_AT] * N_STEP for s in STEPS}
    real, ats = real_sets(runs)
    print("\n| detector | noise | A/A false per 100 runs | "
          + " | ".join(f"{n} found / false per 100 / median delay" for n in step_runs) + " |")
    print("|---|---|---|" + "---|" * len(step_runs))
    for detector_name, detector in detectors.items():
        for noise_name, noise in noises.items():
            sets = simulated(noise, np.random.default_rng(SEED))
            print(row(detector_name, noise_name, judge(detector, sets, step_runs)), flush=True)
        args.cache.write_text(json.dumps(cache))
    if not ats:
        print(f"\nreal runs: only {len(runs['MLP'])} recorded, too few for spliced steps")
        return
    print(f"\nreal runs ({len(runs['MLP'])} recorded; steps spliced at runs "
          f"{ats[0]}..{ats[-1]}): MLPPlus10 / MLP = "
          f"{np.median(runs['MLPPlus10']) / np.median(runs['MLP']) - 1:+.1%} (medians)")
    print("| detector | A/A false per 100 runs | +10% work found / false per 100 / median "
          "delay |\n|---|---|---|")
    for detector_name, detector in detectors.items():
        figures = judge(detector, real, {"+10% work": ats})
        print(row(detector_name, "real", figures).replace(" real |", ""), flush=True)
    args.cache.write_text(json.dumps(cache))


if __name__ == "__main__":
    main()
