"""Tiny models for tests/test_compile.py, at module top level so compile and model processes
can import them by name. TensorFlow is imported only inside the Keras factory."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

FEATURES = 16
PID_FILE_ENV = "NEURONPERF_TEST_PID_FILE"


class TinyMLP(nn.Module):
    """16 -> 32 -> 4."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(FEATURES, 32), nn.ReLU(), nn.Linear(32, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TinyConvNet(nn.Module):
    """Conv-BN-ReLU, pooled: its optimize_for_inference graph does not reload after saving."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 4, 3, bias=False),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class NoBatchOfThree(TinyMLP):
    """Refuses batch size 3 (to show one failing configuration does not stop the others)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == 3:
            raise ValueError("this model does not support batch size 3")
        return self.net(x)


class NoisyMLP(TinyMLP):
    """Adds fresh noise on every call, so a traced artifact never matches the eager model."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) + torch.rand(x.shape[0], 4)


class CrashesAtBatchTwo(TinyMLP):
    """Kills its own process at batch size 2 (a compiler crash, as seen from outside)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return self.net(x)


def hang_in_a_named_place() -> None:
    """Hangs: a compile timeout's error must show this frame."""
    time.sleep(3600)


class HangsAtBatchTwo(TinyMLP):
    """Writes its pid to ``$NEURONPERF_TEST_PID_FILE`` and hangs when called with batch size 2."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == 2:
            Path(os.environ[PID_FILE_ENV]).write_text(str(os.getpid()))
            hang_in_a_named_place()
        return self.net(x)


def keras_mlp() -> Any:
    """A small Keras model: 8 -> 16 -> 4."""
    import keras

    return keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(4)]
    )
