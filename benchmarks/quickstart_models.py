"""The README quick start's model, importable by name (worker processes import it)."""

from __future__ import annotations

import torch


class MLP(torch.nn.Sequential):
    """512 -> 2048 -> 2048 -> 512 with ReLUs, as in the README quick start."""

    def __init__(self) -> None:
        super().__init__(torch.nn.Linear(512, 2048), torch.nn.ReLU(),
                         torch.nn.Linear(2048, 2048), torch.nn.ReLU(), torch.nn.Linear(2048, 512))
