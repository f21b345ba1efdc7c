"""Record real runs of one small suite on this machine, for the change-point study.

    # every run is a fresh pytest process (as a CI job is); about 15 s a run on 2 cores:
    .venv/bin/python benchmarks/history_record.py --runs 120 --duration 2 \\
        --record benchmarks/history-runs-loaded.jsonl

Each line of ``--record`` is one pytest run of ``history_suite/`` (the quick start's MLP and
its +5 % and +10 % variants, one configuration each, in one run): the time, the load average,
and per test the metrics, windows and the interference meter's share. ``history_study.py``
builds A/A series from the MLP and real steps by splicing MLP runs then MLPPlus runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEPT = ("test", "status", "error", "batch_size", "n_models", "workers_per_model",
        "pipeline_size", "throughput_avg", "latency_ms_p50", "latency_ms_p99", "windows",
        "interference")


def one_run(duration: float, scratch: Path) -> dict[str, object]:
    """One pytest run of the suite; its reports' kept keys."""
    out = scratch / "run.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])])}
    started = time.time()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(HERE / "history_suite"), "-q", "-p",
         "no:cacheprovider", f"--neuronperf-duration={duration}", f"--neuronperf-json={out}",
         f"--rootdir={HERE}"],
        capture_output=True, text=True, env=env, check=False)
    reports = json.loads(out.read_text())["reports"] if out.exists() else []
    out.unlink(missing_ok=True)
    return {"time": started, "wall_s": time.time() - started, "loadavg": os.getloadavg()[0],
            "exit": done.returncode,
            "reports": [{k: r.get(k) for k in KEPT} for r in reports]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=120)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--record", type=Path, required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="history-record-") as scratch:
        for run in range(args.runs):
            entry = {"run": run, "duration": args.duration, **one_run(args.duration, Path(scratch))}
            with open(args.record, "a") as stream:
                stream.write(json.dumps(entry) + "\n")
            shown = ", ".join(f"{str(r['test']).split('[')[-1].rstrip(']')} "
                              f"{r['throughput_avg'] or 0:.0f}/s" for r in entry["reports"])
            print(f"run {run + 1}/{args.runs} ({entry['wall_s']:.0f} s, load "
                  f"{entry['loadavg']:.1f}): {shown}", flush=True)


if __name__ == "__main__":
    main()
