"""Framework adapters (imported lazily inside worker processes) and framework inference."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ADAPTERS: dict[str, str] = {
    "torch": "pytest_neuronperf.frameworks.torch:TorchAdapter",
    "tensorflow": "pytest_neuronperf.frameworks.tensorflow:TensorflowAdapter",
    "python": "pytest_neuronperf.frameworks.python:PythonAdapter",
    "endpoint": "pytest_neuronperf.frameworks.endpoint:EndpointAdapter",
}

TORCH_SUFFIXES = {".pt", ".pt2", ".pth", ".ts", ".torchscript", ".jit"}


def _module_root(obj: Any) -> str:
    return (getattr(obj, "__module__", None) or "").split(".", 1)[0]


def _from_class(model: Any) -> str | None:
    for base in getattr(model, "__mro__", ()):
        root = _module_root(base)
        if root == "torch":
            return "torch"
        if root in ("keras", "tensorflow", "tf_keras"):
            return "tensorflow"
    return None


def _from_value(value: Any) -> str | None:
    if isinstance(value, list | tuple):
        kinds = {_from_value(v) for v in value} - {None}
        return kinds.pop() if len(kinds) == 1 else None
    root = _module_root(type(value))
    if root == "torch":
        return "torch"
    if root in ("tensorflow", "keras"):
        return "tensorflow"
    return None


def _from_path(path: Path) -> str | None:
    if path.is_dir() and (path / "saved_model.pb").exists():
        return "tensorflow"
    if path.suffix in TORCH_SUFFIXES:
        return "torch"
    return None


def infer_framework(model: Any, inputs: Any) -> str | None:
    """``torch``, ``tensorflow`` or None when neither the model nor the inputs tell."""
    if isinstance(model, str | Path):
        found = _from_path(Path(model))
    else:
        found = _from_class(model if isinstance(model, type) else type(model))
    return found or _from_value(inputs)


def to_portable(inputs: Any) -> Any:
    """TensorFlow tensors become NumPy arrays so they can travel to a worker process."""
    if "tensorflow" not in sys.modules:
        return inputs
    if isinstance(inputs, tuple):
        return tuple(to_portable(v) for v in inputs)
    if isinstance(inputs, list):
        return [to_portable(v) for v in inputs]
    if _module_root(type(inputs)) == "tensorflow" and hasattr(inputs, "numpy"):
        return inputs.numpy()
    return inputs
