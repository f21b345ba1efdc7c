"""The alternative change-point detectors of ``history_study.py``, run in their own
environments (their pins do not fit the project's: signal-processing-algorithms wants
numpy < 2, Apache Otava numpy 2.2 and scipy < 1.17), so this file imports nothing from the
project. Reads ``{"detector": NAME, "series": [[...], ...]}`` as JSON on stdin and writes the
change-point indices of each series (first run after a change) as JSON on stdout.

    python3 -m venv /tmp/spa && /tmp/spa/bin/pip install signal-processing-algorithms
    python3 -m venv /tmp/otava && /tmp/otava/bin/pip install --no-deps apache-otava \\
        'numpy==2.2.*' 'scipy>=1.16,<1.17'
"""

from __future__ import annotations

import json
import sys
from typing import Any


def e_divisive_mongodb(series: list[float], pvalue: float) -> list[int]:
    """MongoDB's E-divisive with its permutation test (100 permutations, fixed seed)."""
    import numpy as np
    from signal_processing_algorithms.energy_statistics.energy_statistics import e_divisive

    np.random.seed(0)
    return sorted(int(i) for i in e_divisive(series, pvalue=pvalue, permutations=100))


def otava(series: list[float], pvalue: float, min_magnitude: float) -> list[int]:
    """Apache Otava's E-divisive with its t-test merge step (Hunter)."""
    from otava.analysis import compute_change_points

    points, _ = compute_change_points(list(series), max_pvalue=pvalue,
                                      min_magnitude=min_magnitude)
    return sorted(int(p.index) for p in points)


DETECTORS: dict[str, Any] = {
    "e-divisive-mongodb-p05": lambda s: e_divisive_mongodb(s, 0.05),
    "e-divisive-mongodb-p01": lambda s: e_divisive_mongodb(s, 0.01),
    "otava-p001": lambda s: otava(s, 0.001, 0.0),
    "otava-p001-m2": lambda s: otava(s, 0.001, 0.02),
}


def main() -> None:
    request = json.load(sys.stdin)
    detector = DETECTORS[request["detector"]]
    json.dump([detector(series) for series in request["series"]], sys.stdout)


if __name__ == "__main__":
    main()
