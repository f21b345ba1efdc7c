"""The README quick start's MLP and two variants with a known amount of extra work per call,
for ``paired_study.py`` (top level: worker processes import them by name)."""

from __future__ import annotations

import torch

QUICK_START_MACS = 512 * 2048 + 2048 * 2048 + 2048 * 512
"""Multiply-adds per sample of the quick start's MLP (6,291,456)."""


class MLP(torch.nn.Sequential):
    """The README quick start's model."""

    def __init__(self) -> None:
        super().__init__(torch.nn.Linear(512, 2048), torch.nn.ReLU(),
                         torch.nn.Linear(2048, 2048), torch.nn.ReLU(), torch.nn.Linear(2048, 512))


def extra_width(fraction: float) -> int:
    """Outputs of an extra ``Linear(512, width)`` that adds ``fraction`` of the MLP's work."""
    return round(fraction * QUICK_START_MACS / 512)


class MLPPlus10(torch.nn.Sequential):
    """The quick start's MLP plus a final Linear with 10 % of its multiply-adds."""

    def __init__(self) -> None:
        super().__init__(*MLP(), torch.nn.Linear(512, extra_width(0.10)))


class MLPPlus5(torch.nn.Sequential):
    """The quick start's MLP plus a final Linear with 5 % of its multiply-adds."""

    def __init__(self) -> None:
        super().__init__(*MLP(), torch.nn.Linear(512, extra_width(0.05)))
