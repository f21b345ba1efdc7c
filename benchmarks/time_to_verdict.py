"""Time to a verdict of ``compare()`` on identical code (A/A), with the default duration, rounds
and tolerances: one call, one JSON line on stdout (wall time, verdict, pairs, stop, intervals).

Interleave two trees (e.g. a copy of another engine's revision and this one) to compare them
under the same load; the tree is the first argument, and its tests/paired_models.py is used::

    for i in 1 2 3 4; do for t in /tmp/other-tree "$PWD"; do
        PYTHONPATH=$t .venv/bin/python benchmarks/time_to_verdict.py $t; done; done
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import numpy as np


def main() -> None:
    tree = sys.argv[1]
    sys.path.insert(0, f"{tree}/tests")
    import paired_models

    import pytest_neuronperf as npf

    start = time.perf_counter()
    [report] = npf.cpu.compare(paired_models.OneUnit, paired_models.OneUnit, np.ones((1, 96)),
                               n_models=1, workers_per_model=1, cores=[0])
    wall = time.perf_counter() - start
    paired: dict[str, Any] = dict(report.get("paired") or {})
    print(json.dumps({"tree": tree, "wall_s": round(wall, 2), "verdict": paired.get("verdict"),
                      "pairs": paired.get("pairs"), "planned": paired.get("planned_pairs"),
                      "stop": (paired.get("stop") or {}).get("code"),
                      "other_pct": (report.get("interference") or {}).get("other_pct"),
                      "delta": paired.get("delta"), "interval": paired.get("interval")}))


if __name__ == "__main__":
    main()
