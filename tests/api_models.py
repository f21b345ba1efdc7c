"""Top-level models, datasets and hooks for tests/test_api.py (model processes import them)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

THRESHOLD = 1.005
"""Where :class:`Threshold` splits its two classes: bf16 (spacing 2**-7 near 1) cannot."""


class Threshold(torch.nn.Module):
    """Logits ``[x, THRESHOLD]``: class 0 when x > 1.005. Exact in fp32, lossy once cast."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(1, 2)
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor([[1.0], [0.0]]))
            self.linear.bias.copy_(torch.tensor([0.0, THRESHOLD]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


def threshold_data(n: int = 64) -> torch.utils.data.TensorDataset:
    """(x, label) samples around the threshold, labelled the way fp32 :class:`Threshold` sees."""
    x = torch.linspace(1.0, 1.01, n).reshape(n, 1)
    labels = (x[:, 0] <= THRESHOLD).long()
    return torch.utils.data.TensorDataset(x, labels)


class Marked(torch.nn.Module):
    """Fails unless its ``mark`` buffer was set to 7 (by a test, on an instance)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mark", torch.zeros(()))
        self.linear = torch.nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if float(self.mark) != 7.0:
            raise RuntimeError(f"mark is {float(self.mark)}: the trained instance did not travel")
        return self.linear(x)


class Small(torch.nn.Module):
    """A small linear model on 4 features."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class WherePid(torch.nn.Module):
    """Records the pid of the process it runs in (``PID_DIR``)."""

    def __init__(self) -> None:
        super().__init__()
        Path(os.environ["PID_DIR"], f"{os.getpid()}.pid").write_text(str(os.getpid()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 1


def record_env_setup(copy_id: int, config: dict[str, Any]) -> None:
    """``env_setup_fn``: writes what it received; sets a variable the model can see."""
    os.environ["API_ENV_SET"] = "yes"
    Path(os.environ["PID_DIR"], f"env-{copy_id}.json").write_text(
        json.dumps({"id": copy_id, "config": config, "torch_loaded_model": False}))


def record_setup(copy_id: int, config: dict[str, Any], model: Any) -> None:
    """``setup_fn``: writes what it received, after the model loaded."""
    Path(os.environ["PID_DIR"], f"setup-{copy_id}.json").write_text(json.dumps({
        "id": copy_id, "cast_mode": config["cast_mode"], "model": type(model).__name__,
        "env_seen": os.environ.get("API_ENV_SET")}))


def pairs_loader(dataset: Any, batch_size: int) -> Any:
    """``dataset_loader_fn``: batches of ``batch_size`` built by hand (the inputs only)."""
    samples = [dataset[i][0] for i in range(len(dataset))]
    for start in range(0, len(samples) - batch_size + 1, batch_size):
        yield torch.stack(samples[start:start + batch_size])


class ReportsPrecision(torch.nn.Module):
    """On its first call, writes to ``$PID_DIR/precision-<cast>.json`` the dtypes it computes in:
    its weight's, its input's, and the autocast state of its input's device (``label_cast``
    names the cast)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 4)
        self.reported = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.reported:
            self.reported = True
            device = x.device.type
            seen = {"weight": str(self.linear.weight.dtype), "input": str(x.dtype),
                    "autocast": torch.is_autocast_enabled(device),
                    "autocast_dtype": str(torch.get_autocast_dtype(device))}
            name = f"precision-{os.environ['CAST_UNDER_TEST']}.json"
            Path(os.environ["PID_DIR"], name).write_text(json.dumps(seen))
        return self.linear(x)


def label_cast(copy_id: int, config: dict[str, Any], model: Any) -> None:
    """``setup_fn``: tells :class:`ReportsPrecision` which cast its copy runs."""
    os.environ["CAST_UNDER_TEST"] = config["cast_mode"]


class OnlyBatchTwo(torch.nn.Module):
    """A linear model that runs batches of exactly 2 (``reshape(2, 4)``, a constant once traced):
    a larger batch reaches it only if it is split."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.reshape(2, 4))
