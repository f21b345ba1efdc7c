"""Top-level models for the engine figures (worker processes import them by name)."""

from __future__ import annotations

from typing import Any

import torch


class NoopModel:
    """Returns its input: all that is measured is the harness."""

    def __call__(self, x: Any) -> Any:
        return x


class ComputeMLP(torch.nn.Module):
    """A compute-bound MLP (about 3 MFLOP per sample)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(512, 1024), torch.nn.ReLU(),
            torch.nn.Linear(1024, 1024), torch.nn.ReLU(),
            torch.nn.Linear(1024, 512),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SmallConv(torch.nn.Module):
    """A small torch model for the fixed-cost figure."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(), torch.nn.Linear(8, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ScalableMLP(torch.nn.Module):
    """An MLP whose work per call is set by $MLP_REPEATS (4 by default; 5 is 25 % slower)."""

    def __init__(self) -> None:
        super().__init__()
        import os

        torch.manual_seed(0)
        self.repeats = int(os.environ.get("MLP_REPEATS", "4"))
        self.layer = torch.nn.Linear(512, 512)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.repeats):
            x = torch.relu(self.layer(x))
        return x
