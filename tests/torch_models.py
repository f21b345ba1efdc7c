"""Top-level torch models for tests (imported by worker processes by name)."""

from __future__ import annotations

import torch


class TinyMLP(torch.nn.Module):
    """A small compute-bound MLP."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TwoInputs(torch.nn.Module):
    """Adds two tensors after a linear layer."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(16, 16)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.linear(a) + b


class ThreadProbe(torch.nn.Module):
    """Fails unless torch's intra-op pool has EXPECTED_THREADS threads and grad is off."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import os

        assert torch.get_num_threads() == int(os.environ["EXPECTED_THREADS"])
        assert not torch.is_grad_enabled()
        return x + 1
