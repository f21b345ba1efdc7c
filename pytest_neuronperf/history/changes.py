"""Change points in a metric's series of runs (one test x configuration x metric x machine, in
commit order).

The detector: ruptures' penalised segmentation (PELT, the exact optimal segmentation under a
penalty, Killick et al. 2012: ruptures' ``KernelCPD`` with the linear kernel is the L2 cost of
a mean shift, computed in C) on the logarithm of the values, so that a step is a relative change
whatever the metric's scale. The penalty is ``PENALTY`` x sigma^2 x log(n), where sigma is the
run-to-run noise estimated robustly from the median absolute difference of neighbouring runs (a
step moves one difference, not the median). Every boundary PELT proposes is then tested: the
runs of its two neighbouring segments must differ by a two-sided Mann-Whitney U test at
``ALPHA`` and by at least ``MIN_MAGNITUDE``; the weakest boundary that fails is removed and its
neighbours re-tested until all pass (the merge step of Hunter / Apache Otava, with a rank test,
which one odd busy run cannot sway as it sways a t-test). A change needs ``MIN_RUNS`` runs on
each side, so a change at the end of the series is reported once that many runs show it.

The parameters, and the choice of this detector over E-divisive (MongoDB's
signal-processing-algorithms, Apache Otava), come from ``benchmarks/history_study.py``: see
docs/history.md for the figures and the commands.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PENALTY = 3.0
"""PELT's penalty per change point, in units of sigma^2 x log(n)."""
MIN_RUNS = 3
"""Fewest runs in a segment: a change is reported once this many runs show it."""
ALPHA = 0.01
"""Two-sided significance level of the Mann-Whitney U test on each change point."""
MIN_MAGNITUDE = 0.02
"""Smallest relative change reported (a change the tolerance could never gate is noise)."""
MAD_TO_SIGMA = 1.4826
"""Median absolute deviation -> standard deviation for normal noise."""


@dataclass(frozen=True)
class Change:
    """One change point: where, how large, how sure."""

    index: int
    """Position of the first run after the change."""
    before: float
    """Median of the segment before it."""
    after: float
    """Median of the segment after it (up to the next change point)."""
    p_value: float
    """Two-sided Mann-Whitney U p-value of the two segments."""
    runs_before: int
    runs_after: int

    @property
    def magnitude(self) -> float:
        """Relative change, after / before - 1."""
        return self.after / self.before - 1.0 if self.before else math.nan

    @property
    def confidence(self) -> float:
        """1 - p-value."""
        return 1.0 - self.p_value


def noise(values: np.ndarray) -> float:
    """Run-to-run noise (standard deviation) of a series, robust to steps and odd runs."""
    if values.size < 3:
        return math.nan
    differences = np.abs(np.diff(values))
    return float(MAD_TO_SIGMA * np.median(differences) / math.sqrt(2.0))


def detect(
    values: Sequence[float],
    penalty: float = PENALTY,
    min_runs: int = MIN_RUNS,
    alpha: float = ALPHA,
    min_magnitude: float = MIN_MAGNITUDE,
) -> list[Change]:
    """The change points of a series of positive values (in run order)."""
    series = np.asarray(values, dtype=float)
    if series.size < 2 * min_runs or not np.all(np.isfinite(series)) or np.any(series <= 0):
        return []
    logs = np.log(series)
    sigma = noise(logs)
    if not math.isfinite(sigma):
        return []
    sigma = max(sigma, 1e-4)  # a flat series: any real step is still a step
    import ruptures

    algorithm = ruptures.KernelCPD(kernel="linear", min_size=2, jump=1).fit(logs)
    cost = penalty * sigma**2 * math.log(series.size)
    boundaries = [int(b) for b in algorithm.predict(pen=cost) if b < series.size]
    return significant(series, boundaries, alpha, min_magnitude, min_runs)


def significant(
    series: np.ndarray, boundaries: list[int], alpha: float, min_magnitude: float,
    min_runs: int = MIN_RUNS,
) -> list[Change]:
    """The boundaries whose neighbouring segments differ, weakest removed first.

    Segments may be as short as two runs while boundaries are placed (so that a change two
    runs from the end is placed where it is, not a run early); a change with fewer than
    ``min_runs`` runs on either side is then removed as weak."""
    kept = sorted(boundaries)
    while kept:
        changes = [_change(series, kept, i) for i in range(len(kept))]
        weak = [c for c in changes
                if c.p_value >= alpha or not abs(c.magnitude) >= min_magnitude
                or min(c.runs_before, c.runs_after) < min_runs]
        if not weak:
            return changes
        worst = max(weak, key=lambda c: (c.p_value, -abs(c.magnitude)))
        kept.remove(worst.index)
    return []


def _change(series: np.ndarray, boundaries: list[int], position: int) -> Change:
    """The change at ``boundaries[position]``, between its neighbouring boundaries."""
    from scipy.stats import mannwhitneyu

    start = boundaries[position - 1] if position else 0
    at = boundaries[position]
    end = boundaries[position + 1] if position + 1 < len(boundaries) else series.size
    left, right = series[start:at], series[at:end]
    p = float(mannwhitneyu(left, right, alternative="two-sided").pvalue)
    return Change(at, float(np.median(left)), float(np.median(right)), p, left.size, right.size)
