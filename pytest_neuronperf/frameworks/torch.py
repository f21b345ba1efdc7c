"""PyTorch adapter: module classes and factories, TorchScript files, exported ``.pt2`` programs."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pytest_neuronperf.devices.base import Placement
from pytest_neuronperf.frameworks.base import (
    as_args,
    expand_batch,
    instantiate,
    require_callable,
)
from pytest_neuronperf.protocol.specs import ModelSource


def _repeat(value: Any, batch_size: int) -> Any:
    if isinstance(value, torch.Tensor):
        return value.repeat(batch_size, *([1] * (value.dim() - 1))).contiguous()

    return np.repeat(value, batch_size, axis=0)


def _to_device(value: Any, device: str) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    return value


def load_artifact(path: str, compiler: str | None, device: str) -> Callable[..., Any]:
    """Load a saved torch model: TorchScript, an AOTInductor package or an ExportedProgram."""
    suffix = Path(path).suffix
    if compiler == "torch.save":  # a module instance the parent saved (engine.instances)
        module = torch.load(path, map_location=device, weights_only=False)
        return module.eval() if isinstance(module, torch.nn.Module) else module
    if suffix == ".pt2" or compiler == "export":
        return load_pt2(path, device)
    if device.startswith("cuda") or device == "cpu":
        scripted: Callable[..., Any] = torch.jit.load(path, map_location=device)
        return scripted
    loaded: Callable[..., Any] = torch.jit.load(path)
    return loaded


def load_pt2(path: str, device: str) -> Callable[..., Any]:
    """Load a ``.pt2``: an AOTInductor package if it is one, else a ``torch.export`` program."""
    with zipfile.ZipFile(path) as archive:
        is_aoti = any("aotinductor" in name for name in archive.namelist())
    if is_aoti:
        from torch._inductor import aoti_load_package

        return aoti_load_package(path)
    return torch.export.load(path).module().to(device)


class TorchAdapter:
    """Runs torch models in inference mode on the placement's device."""

    name = "torch"

    def set_threads(self, threads: int) -> None:
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass  # already fixed once an inter-op pool exists; harmless

    def load(self, source: ModelSource, placement: Placement) -> Callable[..., Any]:
        with torch.inference_mode():
            if source.kind == "path":
                assert source.path
                model = load_artifact(source.path, source.compiler, placement.torch_device)
            else:
                model = instantiate(source)
                if isinstance(model, torch.nn.Module):
                    model = model.eval().to(placement.torch_device)
        return require_callable(model, source)

    def prepare_inputs(
        self, example: Any, batch_size: int, placement: Placement
    ) -> tuple[Any, ...]:
        return tuple(
            _to_device(expand_batch(v, batch_size, _repeat), placement.torch_device)
            for v in as_args(example)
        )

    def thread_setup(self) -> None:
        torch.set_grad_enabled(False)

    def synchronizer(self, placement: Placement) -> Callable[[], None] | None:
        if placement.synchronize == "cuda":
            return lambda: torch.cuda.current_stream().synchronize()
        return None
