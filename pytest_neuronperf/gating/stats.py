"""Pure functions that compare two runs' window series for the gate. No I/O, no clocks."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

HICCUP_MADS = 5.0
"""A window worse than its run's median by this many robust SDs (scaled MAD) is a hiccup..."""
HICCUP_FLOOR = 0.05
"""...and by at least this fraction of the median (quantised or very steady windows)."""
HICCUP_MAX_FRACTION = 0.25
"""At most this share of a run's windows (the worst ones) is left out as hiccups."""
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20240917
"""Fixed seed: the same two series always give the same interval."""


def finite_values(values: Sequence[float | None]) -> np.ndarray:
    """The finite values of a window series as floats; None, NaN and inf count as missing."""
    array = np.array([math.nan if v is None else v for v in values], dtype=np.float64)
    return array[np.isfinite(array)]


def drop_hiccups(values: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """``values`` without its hiccup windows: the few far worse than the run's median."""
    if values.size < 4:
        return values
    from scipy.stats import median_abs_deviation

    median = float(np.median(values))
    spread = float(median_abs_deviation(values, scale="normal"))
    worse = (median - values) if higher_is_better else (values - median)
    limit = max(HICCUP_MADS * spread, HICCUP_FLOOR * abs(median))
    hiccups = np.flatnonzero(worse > limit)
    allowed = int(values.size * HICCUP_MAX_FRACTION)
    if hiccups.size > allowed:
        hiccups = hiccups[np.argsort(worse[hiccups])[::-1][:allowed]]
    return np.delete(values, hiccups)


def median_ratio(baseline: np.ndarray, current: np.ndarray) -> float:
    """median(current) / median(baseline); NaN when either is empty or the baseline is 0."""
    if baseline.size == 0 or current.size == 0:
        return math.nan
    base = float(np.median(baseline))
    if base == 0.0:
        return math.nan
    return float(np.median(current)) / base


def bootstrap_ratio_ci(
    baseline: np.ndarray,
    current: np.ndarray,
    confidence: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile bootstrap interval of median(current) / median(baseline), deterministic.

    ``scipy.stats.bootstrap`` resamples each run on its own (unpaired). Resamples whose baseline
    median is 0 have no ratio and are left out.
    """
    if baseline.size == 0 or current.size == 0:
        return (math.nan, math.nan)
    from scipy.stats import bootstrap

    with np.errstate(divide="ignore", invalid="ignore"):  # ratios over a 0 median, left out
        result = bootstrap(
            (_resamplable(current), _resamplable(baseline)),
            _ratio_of_medians,
            n_resamples=resamples,
            confidence_level=confidence,
            method="percentile",
            vectorized=True,
            rng=np.random.default_rng(seed),
        )
    low, high = result.confidence_interval
    if math.isfinite(low) and math.isfinite(high):
        return (float(low), float(high))
    ratios = result.bootstrap_distribution
    ratios = ratios[np.isfinite(ratios)]
    if ratios.size == 0:
        return (math.nan, math.nan)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(ratios, [tail, 100.0 - tail])
    return (float(low), float(high))


def _resamplable(values: np.ndarray) -> np.ndarray:
    """``values`` with at least two entries (scipy needs two; a lone value, doubled, resamples
    to itself exactly as before)."""
    return np.repeat(values, 2) if values.size == 1 else values


def _ratio_of_medians(current: np.ndarray, baseline: np.ndarray, axis: int = -1) -> np.ndarray:
    """The statistic: median(current) / median(baseline) along ``axis`` (resamples)."""
    return np.asarray(np.median(current, axis=axis) / np.median(baseline, axis=axis))


def mann_whitney_p(current: np.ndarray, baseline: np.ndarray, alternative: str) -> float:
    """One-sided Mann-Whitney U p-value that ``current`` is less/greater than ``baseline``."""
    if alternative not in ("less", "greater"):
        raise ValueError(f"alternative must be 'less' or 'greater', not {alternative!r}")
    if baseline.size == 0 or current.size == 0:
        return math.nan
    if np.all(current == current[0]) and np.all(baseline == current[0]):
        return 1.0
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(current, baseline, alternative=alternative).pvalue)
