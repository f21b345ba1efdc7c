"""How often the demo's paired part (``examples/demo.sh``, step 2) says anything but PASS for
unchanged code: it runs that exact pytest command N times in this checkout (the working tree's
examples against HEAD) and records every run.

    .venv/bin/python benchmarks/demo_paired.py --runs 10 --record benchmarks/demo-paired-aa.jsonl
    .venv/bin/python benchmarks/demo_paired.py --replay benchmarks/demo-paired-aa.jsonl
    # another candidate of the examples (any -k expression):
    .venv/bin/python benchmarks/demo_paired.py --runs 10 -k meets_its_budget

Each record holds the run's verdicts, per configuration the paired verdict per metric, the
paired estimate and interval, and the interference meter's figures (how busy the machine was),
so a rate can be read with the load it was measured under. Run it with the model files
unchanged since HEAD (``git status examples``): it measures identical code on both sides.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEMO_K = "pre_and_post_processing"
"""The ``-k`` of the demo's paired part (``examples/demo.sh``)."""


def one_run(k: str, extra: list[str]) -> dict[str, Any]:
    """The demo's paired command once; what it judged."""
    with tempfile.TemporaryDirectory(prefix="demo-paired-") as scratch:
        out = Path(scratch) / "reports.json"
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "examples/test_serving_pipeline.py",
             "-p", "no:cacheprovider", "-q", "-k", k, "--neuronperf-against=HEAD",
             f"--neuronperf-json={out}", *extra],
            cwd=ROOT, capture_output=True, text=True, check=False)
        reports = json.loads(out.read_text())["reports"] if out.exists() else []
    return {
        "k": k, "exit": done.returncode, "seconds": round(time.perf_counter() - started, 1),
        "configurations": [{
            "label": f"bs={r.get('batch_size')} n={r.get('n_models')} "
                     f"w={r.get('workers_per_model')} p={r.get('pipeline_size')}",
            "verdict": r.get("verdict"),
            "paired": {key: (r.get("paired") or {}).get(key)
                       for key in ("verdict", "verdicts", "delta", "interval", "rounds")},
            "interference": r.get("interference"),
        } for r in reports],
    }


def summary(records: list[dict[str, Any]]) -> list[str]:
    """Verdict counts per configuration and per run, with the load they were measured under."""
    per_run = Counter("PASS" if r["exit"] == 0 and all(
        c["verdict"] == "PASS" for c in r["configurations"]) else "not all PASS" for r in records)
    lines = [f"{len(records)} runs: {dict(per_run)}; exit 0 in "
             f"{sum(r['exit'] == 0 for r in records)}"]
    verdicts = Counter(c["verdict"] for r in records for c in r["configurations"])
    lines.append(f"configuration verdicts: {dict(verdicts)}")
    busy = [c["interference"]["other_pct"] for r in records for c in r["configurations"]
            if c.get("interference")]
    if busy:
        median = sorted(busy)[len(busy) // 2]
        lines.append(f"other processes' share of the measured cores: "
                     f"{min(busy):.0f}-{max(busy):.0f}% (median {median:.0f}%)")
    for r in records:
        for c in r["configurations"]:
            if c["verdict"] != "PASS":
                delta = {m: f"{v:+.1%}" for m, v in (c["paired"]["delta"] or {}).items()}
                lines.append(f"  {c['label']}: {c['verdict']} {c['paired']['verdicts']} {delta}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("-k", default=DEMO_K, help="which examples (default: the demo's)")
    parser.add_argument("--record", type=Path, help="append every run to this JSON-lines file")
    parser.add_argument("--replay", type=Path, help="summarise recorded runs, measure nothing")
    args, extra = parser.parse_known_args()
    if args.replay:
        records = [json.loads(line) for line in args.replay.read_text().splitlines() if line]
    else:
        records = []
        for index in range(args.runs):
            record = one_run(args.k, extra)
            records.append(record)
            verdicts = [c["verdict"] for c in record["configurations"]]
            print(f"run {index + 1}/{args.runs}: exit {record['exit']}, {verdicts}, "
                  f"{record['seconds']} s", flush=True)
            if args.record:
                with open(args.record, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(record) + "\n")
    print("\n".join(summary(records)))


if __name__ == "__main__":
    main()
