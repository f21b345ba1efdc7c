"""Small top-level torch models for the Neuron contract tests (importable with the fakes)."""

from __future__ import annotations

import torch


class TinyNet(torch.nn.Module):
    """One linear layer and a ReLU: 8 features in, 4 out."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.linear(x))


class PairNet(torch.nn.Module):
    """Two inputs of 8 features, summed after a shared linear layer."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(8, 4)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.linear(a) + self.linear(b)
