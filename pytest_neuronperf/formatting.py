"""How a figure is written as text: the one rounding rule every table, headline and file uses.

The terminal summary, a failing test's headline and evidence table, the paired section, the
Markdown step summary and the HTML report all write numbers through these functions, so one
figure reads the same everywhere:

- a metric value has 4 significant digits, and from 1,000 up it is a whole number with thousands
  separators (``24,199``, ``720.8``, ``4.221``, ``0.02660``);
- a relative change is a signed percentage with one decimal (``-6.6%``), an interval two of them
  (``-8.9%..-3.8%``);
- a missing value (None, NaN, infinity, not a number) is ``-``.
"""

from __future__ import annotations

import math
from typing import Any

from pytest_neuronperf.metrics import worse_sign

MISSING = "-"


def finite(value: Any) -> float | None:
    """``value`` as a float when it is a finite number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def number(value: Any) -> str:
    """A metric value: 4 significant digits, whole numbers with separators from 1,000 up."""
    figure = finite(value)
    if figure is None:
        return MISSING
    if abs(figure) >= 999.95:
        return f"{figure:,.0f}"
    return f"{figure:#.4g}"


def percent(value: Any) -> str:
    """A relative change (0.066 is ``+6.6%``)."""
    figure = finite(value)
    return MISSING if figure is None else f"{figure:+.1%}"


def interval(low: Any, high: Any) -> str:
    """An interval of relative changes, ``-8.9%..-3.8%``."""
    if finite(low) is None or finite(high) is None:
        return MISSING
    return f"{percent(low)}..{percent(high)}"


def p_value(value: Any) -> str:
    """A p-value in two significant digits."""
    figure = finite(value)
    return MISSING if figure is None else f"{figure:.2g}"


def tolerance(metric: str, fraction: Any) -> str:
    """A tolerance with the sign of a worse change (``-12%`` for throughput), or ``off``."""
    figure = finite(fraction)
    if figure is None:
        return "off"
    return f"{worse_sign(metric)}{figure * 100:.3g}%"
