"""Where paired noise lives: between sessions, between launches, between rounds of a launch.

Many short A/A launch pairs per model family (``family_models.py``): each is one library
``compare`` of a family's model against itself, one configuration (one copy, one worker), so
both sides are fresh processes; every round's head / base figures are recorded. Runs happen in
*sessions* (one Python process, hence one forkserver and one hash seed each) so that a third
level (session) can be told from the launch level. The variance components of the per-round
log ratio are then estimated with statsmodels' linear mixed model (REML):

    log(head / base) of round r of launch j of session s = mu + S_s + L_sj + e_sjr

``S`` (session), ``L`` (launch pair) and ``e`` (round) independent, centred. A launch pair's
value (mean over its rounds) has variance ``var_L + var_e / r``; pairs of one session share
``S``. Kalibera & Jones (ISMM 2013): the rounds per launch that minimise time for a given
precision are ``sqrt((c_launch / c_round) * (var_e / var_L))``.

    # record (appends JSON lines; every line carries uptime's load and the interference meter)
    .venv/bin/python benchmarks/variance_levels.py record --sessions 4 --launches 1 --pairs 4 \\
        --families tiny_mlp,bert,medium_mlp,conv,keras,lstm,numpy \\
        --out benchmarks/variance-levels.jsonl [--condition thp] [--load]
    # the variance components per family (and condition) from the recorded lines
    .venv/bin/python benchmarks/variance_levels.py analyse benchmarks/variance-levels.jsonl

Conditions (``--condition``), each tried as a cheap way to shrink the launch level:
``default``; ``thp`` (torch's allocator asks for transparent huge pages:
``THP_MEM_ALLOC_ENABLE=1``, the kernel being in ``madvise`` mode); ``hashseed0``
(``PYTHONHASHSEED=0`` in every session: removes the hash seed as a session factor);
``envpad`` (a random 0-64 KiB environment variable per session: shifts the initial stack as
Mytkowicz et al. did). ``--load`` runs one busy loop on the first core for the whole run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

ROUNDS = 8
SLICE_S = 0.1
"""Recorded with 8 rounds of (at least) 0.1 s per side per launch pair; replays may use the
first rounds only."""
CONDITIONS = {
    "default": {},
    "thp": {"THP_MEM_ALLOC_ENABLE": "1"},
    "hashseed0": {"PYTHONHASHSEED": "0"},
    "envpad": {},
}
NEVER_CLEAR = {"throughput": 1e-9, "latency_ms_p50": 1e-9, "latency_ms_p99": 1e-9}
"""Tolerances no interval fits inside: the study's calls run their planned pairs."""
BATCH = {"bert": 2}
"""Batch size per family where the inputs are not one sample."""


def machine_load() -> dict[str, Any]:
    """uptime's load averages and the number of running processes, now."""
    load1, load5, load15, running, *_ = Path("/proc/loadavg").read_text().split()
    return {"load1": float(load1), "load5": float(load5), "load15": float(load15),
            "running": running}


def launch_pair(family: str, head_index: int, seed: int, rounds: int, slice_s: float,
                pairs: int, extra: dict[str, Any]) -> dict[str, Any]:
    """One ``compare`` of the family's base against model ``head_index`` (0 = itself) with
    ``duration`` for ``pairs`` launch pairs, as a JSON-ready record of every pair it ran."""
    import family_models

    import pytest_neuronperf as npf

    spec = family_models.FAMILIES[family]
    base = getattr(family_models, spec["models"][0])
    head = getattr(family_models, spec["models"][head_index])
    before = machine_load()
    started = time.perf_counter()
    [report] = npf.compare(base, head, family_models.inputs_for(family),
                           framework=spec["framework"], batch_sizes=BATCH.get(family, 1),
                           n_models=1, workers_per_model=1,
                           duration=pairs * rounds * slice_s, paired_rounds=rounds, seed=seed,
                           verbosity=0, **extra)
    wall = time.perf_counter() - started
    paired = report.get("paired") or {}
    return {
        "family": family, "head": spec["models"][head_index], "status": report["status"],
        "error": report.get("error"), "base_status": paired.get("base_status"),
        "wall_s": wall, "load_before": before, "load_after": machine_load(),
        "interference": report.get("interference"),
        "launches": launches_of(report),
        "verdict": paired.get("verdict"), "stop": paired.get("stop"),
        "slice_s": paired.get("slice_s"), "planned_pairs": paired.get("planned_pairs"),
    }


def launches_of(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every launch pair of a paired report: its launch order and per-round figures per side
    (an engine that ran one pair per configuration: that pair)."""
    paired = report.get("paired") or {}
    if isinstance(paired.get("launches"), list):
        return paired["launches"]
    if paired.get("base_status") != "ok":
        return []
    return [{"order": "head", "rounds": paired["slice_rounds"]["head"],
             "round_order": paired.get("order"), "values": paired["slices"],
             "load_ms": {"head": report.get("load_avg_ms"),
                         "base": (paired.get("base") or {}).get("load_avg_ms")},
             "warmup_ms": {"head": report.get("warmup_avg_ms"),
                           "base": (paired.get("base") or {}).get("warmup_avg_ms")}}]


def session(args: argparse.Namespace) -> None:
    """One session: ``--launches`` A/A pairs of every family, interleaved, appended to --out."""
    families = args.families.split(",")
    session_id = f"{os.getpid()}-{time.time():.0f}"
    heads = [int(h) for h in args.heads.split(",")]
    with open(args.out, "a") as out:
        for launch in range(args.launches):
            for family in families:
                for head_index in heads:
                    try:
                        record = launch_pair(family, head_index, random.getrandbits(32),
                                             args.rounds, args.slice, args.pairs,
                                             {"tolerance": NEVER_CLEAR})
                    except Exception as exc:  # a study goes on; the line says what happened
                        record = {"family": family, "status": "error", "error": repr(exc)}
                    record.update(session=session_id, condition=args.condition,
                                  loaded=args.load, launch=launch, time=time.time(),
                                  engine=args.engine)
                    out.write(json.dumps(record) + "\n")
                    out.flush()


def start_busy_loop() -> subprocess.Popen[bytes]:
    """A busy loop pinned to the first usable core (the loaded condition)."""
    first = min(os.sched_getaffinity(0))
    return subprocess.Popen([sys.executable, "-c",
                             f"import os\nos.sched_setaffinity(0, {{{first}}})\nwhile True: pass"])


def record(args: argparse.Namespace) -> None:
    """Run ``--sessions`` sessions, each a fresh Python process with the condition's env."""
    busy = start_busy_loop() if args.load else None
    try:
        for number in range(args.sessions):
            env = dict(os.environ, **CONDITIONS[args.condition])
            if args.condition == "envpad":
                env["NEURONPERF_STUDY_PAD"] = "x" * random.randrange(0, 65536)
            command = [sys.executable, __file__, "session", "--out", args.out,
                       "--families", args.families, "--launches", str(args.launches),
                       "--rounds", str(args.rounds), "--slice", str(args.slice),
                       "--pairs", str(args.pairs),
                       "--condition", args.condition, "--heads", args.heads,
                       "--engine", args.engine] + (["--load"] if args.load else [])
            started = time.time()
            subprocess.run(command, env=env, check=False)
            print(f"session {number + 1}/{args.sessions} took {time.time() - started:.0f} s",
                  flush=True)
    finally:
        if busy is not None:
            busy.send_signal(signal.SIGKILL)
            busy.wait()


# -- analysis ---------------------------------------------------------------------------------


def round_rows(lines: list[dict[str, Any]], metric: str = "throughput",
               rounds: int | None = None) -> list[dict[str, Any]]:
    """One row per round: family, condition, session, launch pair id, round, log ratio."""
    import math

    rows = []
    for number, line in enumerate(lines):
        for pair_index, launch in enumerate(line.get("launches") or []):
            head = launch["values"]["head"][metric]
            base = launch["values"]["base"][metric]
            for r, (h, b) in enumerate(zip(head, base, strict=False)):
                if rounds is not None and r >= rounds:
                    break
                if h and b and h > 0 and b > 0 and math.isfinite(h / b):
                    rows.append({"family": line["family"], "head": line.get("head"),
                                 "condition": line.get("condition", "default"),
                                 "loaded": bool(line.get("loaded")),
                                 "session": line.get("session"), "pair": f"{number}-{pair_index}",
                                 "order": launch.get("order"), "round": r,
                                 "d": math.log(h / b)})
    return rows


def components(rows: list[dict[str, Any]]) -> dict[str, float]:
    """REML variance components (session, launch pair, round) of ``d`` (statsmodels MixedLM),
    and the plain spread of the pair means for comparison."""
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame(rows)
    pair_means = frame.groupby("pair")["d"].mean()
    out: dict[str, float] = {
        "pairs": float(frame["pair"].nunique()), "sessions": float(frame["session"].nunique()),
        "rounds_per_pair": float(frame.groupby("pair").size().mean()),
        "mean": float(frame["d"].mean()), "sd_pair_means": float(pair_means.std(ddof=1)),
    }
    try:
        out.update(mixed_model(frame))
        out["fit"] = 1.0
    except (np.linalg.LinAlgError, ValueError):  # a degenerate pool: the ANOVA estimator
        within = float(frame.groupby("pair")["d"].var(ddof=1).mean())
        per_pair = float(frame.groupby("pair").size().mean())
        out.update(var_session=float("nan"), var_round=within,
                   var_pair=max(float(pair_means.var(ddof=1)) - within / per_pair, 0.0),
                   fit=0.0)
    out.update({f"sd_{k[4:]}": float(np.sqrt(max(v, 0.0))) for k, v in list(out.items())
                if k.startswith("var_")})
    return out


def mixed_model(frame: Any) -> dict[str, float]:
    """REML variance components of ``d`` by statsmodels' MixedLM: session, pair, round (two
    levels, pair and round, with fewer than 3 sessions)."""
    import numpy as np
    import statsmodels.formula.api as smf

    out: dict[str, float] = {}
    if frame["session"].nunique() >= 3:  # three levels: session, pair within it, round
        fit = smf.mixedlm("d ~ 1", frame, groups=frame["session"], re_formula="1",
                          vc_formula={"pair": "0 + C(pair)"}).fit(reml=True,
                                                                  method=["lbfgs", "powell"])
        out.update(var_session=float(np.asarray(fit.cov_re)[0, 0]),
                   var_pair=float(fit.vcomp[0]), var_round=float(fit.scale))
    else:  # too few sessions to tell that level apart: pairs and rounds
        fit = smf.mixedlm("d ~ 1", frame, groups=frame["pair"]).fit(reml=True,
                                                                    method=["lbfgs", "powell"])
        out.update(var_session=float("nan"), var_pair=float(np.asarray(fit.cov_re)[0, 0]),
                   var_round=float(fit.scale))
    return out


def analyse(args: argparse.Namespace) -> None:
    """Print the variance components per family, condition and load."""
    lines = [json.loads(x) for x in Path(args.file).read_text().splitlines() if x.strip()]
    lines = [x for x in lines if x.get("status") == "ok" and x.get("launches")]
    if args.head is not None:
        lines = [x for x in lines if x.get("head", "").endswith(args.head) or
                 (args.head == "base" and "plus" not in x.get("head", "").lower())]
    groups: dict[tuple[str, str, bool], list[dict[str, Any]]] = {}
    for line in lines:
        key = (line["family"], line.get("condition", "default"), bool(line.get("loaded")))
        groups.setdefault(key, []).append(line)
    print(f"{'family':<11} {'condition':<10} {'load':<6} {'pairs':>5} {'sess':>4} "
          f"{'mean%':>6} {'sd_sess%':>8} {'sd_pair%':>8} {'sd_round%':>9} {'sd_pm%':>6} "
          f"{'load1':>5} {'other%':>6} {'r_opt':>5} fit")
    for (family, condition, loaded), group in sorted(groups.items()):
        rows = round_rows(group, args.metric, args.rounds)
        if len({r["pair"] for r in rows}) < 3:
            continue
        comp = components(rows)
        load1 = sum(x["load_before"]["load1"] for x in group) / len(group)
        others = [x["interference"]["other_pct"] for x in group if x.get("interference")]
        other = sum(others) / len(others) if others else float("nan")
        print(f"{family:<11} {condition:<10} {'busy' if loaded else '-':<6} "
              f"{comp['pairs']:>5.0f} {comp['sessions']:>4.0f} {100 * comp['mean']:>6.2f} "
              f"{100 * comp['sd_session']:>8.2f} {100 * comp['sd_pair']:>8.2f} "
              f"{100 * comp['sd_round']:>9.2f} {100 * comp['sd_pair_means']:>6.2f} "
              f"{load1:>5.2f} {other:>6.1f} {min(optimal_rounds(group, comp), 999):>5.0f} "
              f"{'REML' if comp['fit'] else 'ANOVA'}")


def optimal_rounds(group: list[dict[str, Any]], comp: dict[str, float]) -> float:
    """Kalibera & Jones' rounds per launch: sqrt(cost of a launch / cost of a round x
    var_round / var_launch), costs from the recorded loads, warm-ups and slices."""
    import math

    import numpy as np

    costs = []
    for line in group:
        for launch in line["launches"]:
            load = sum((launch.get("load_ms") or {}).get(s) or 0 for s in ("head", "base"))
            warm = sum((launch.get("warmup_ms") or {}).get(s) or 0 for s in ("head", "base"))
            costs.append((load + warm) / 1e3)
    launch_cost = sum(costs) / len(costs) if costs else 1.0
    round_cost = 2 * SLICE_S
    var_pair = max(comp["var_pair"] + np.nan_to_num(comp["var_session"]), 1e-12)
    return math.sqrt(launch_cost / round_cost * comp["var_round"] / var_pair)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("record", "session"):
        sub = commands.add_parser(name)
        sub.add_argument("--out", default=str(HERE / "variance-levels.jsonl"))
        sub.add_argument("--families", default="tiny_mlp,bert")
        sub.add_argument("--launches", type=int, default=5)
        sub.add_argument("--sessions", type=int, default=4)
        sub.add_argument("--rounds", type=int, default=ROUNDS)
        sub.add_argument("--pairs", type=int, default=4, help="launch pairs per call")
        sub.add_argument("--slice", type=float, default=SLICE_S)
        sub.add_argument("--condition", choices=sorted(CONDITIONS), default="default")
        sub.add_argument("--heads", default="0", help="0 = A/A, 1 = +10 %%, 2 = +5 %%")
        sub.add_argument("--engine", default="one-pair",
                         help="a label for the engine that recorded the lines")
        sub.add_argument("--load", action="store_true")
    sub = commands.add_parser("analyse")
    sub.add_argument("file")
    sub.add_argument("--metric", default="throughput")
    sub.add_argument("--rounds", type=int, default=None)
    sub.add_argument("--head", default="base", help="base (A/A), plus10, plus5")
    args = parser.parse_args()
    {"record": record, "session": session, "analyse": analyse}[args.command](args)


if __name__ == "__main__":
    main()
