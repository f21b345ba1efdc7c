"""PyTorch compilers (TorchScript, ``torch.export`` + AOTInductor) and the compile-process support
for torch models. Runs only in the compile process: torch is imported inside the functions."""

from __future__ import annotations

import copy
import importlib.util
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pytest_neuronperf.frameworks.base import as_args, expand_batch, instantiate
from pytest_neuronperf.protocol.specs import ModelSource


def options(compiler: str, compiler_args: Any, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``compiler_args`` (a dict or None) merged over ``defaults``; unknown keys are an error."""
    if compiler_args is None:
        return dict(defaults)
    if not isinstance(compiler_args, Mapping):
        raise TypeError(
            f"compiler_args for {compiler!r} must be a dict with keys from "
            f"{sorted(defaults)}, got {type(compiler_args).__name__}"
        )
    unknown = sorted(set(compiler_args) - set(defaults))
    if unknown:
        raise ValueError(
            f"unknown compiler_args for {compiler!r}: {', '.join(unknown)} "
            f"(known: {', '.join(sorted(defaults))})"
        )
    return {**defaults, **compiler_args}


def cast_for_compile(model: Any, cast: str) -> Any:
    """``compiler_args={"cast": ...}`` (``compile(cast_modes=...)``): the model wrapped so that
    it computes in fp16/bf16 (weights converted) or under autocast (``mixed``), while its
    artifact still takes and returns float32, so workers feed it the usual inputs."""
    if cast == "fp32":
        return model

    import torch

    if cast not in ("fp16", "bf16", "mixed"):
        raise ValueError(f"compiler_args cast must be fp32, fp16, bf16 or mixed, got {cast!r}")
    if not isinstance(model, torch.nn.Module) or isinstance(model, torch.jit.ScriptModule):
        raise TypeError(f"cast {cast!r} needs an nn.Module to convert, not {type(model).__name__}")
    return CastWrapper(copy.deepcopy(model), cast)


def _make_cast_wrapper() -> type:
    import torch

    class _CastWrapper(torch.nn.Module):
        def __init__(self, inner: Any, cast: str) -> None:
            super().__init__()
            self.mixed = cast == "mixed"
            self.dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(cast, torch.float32)
            self.inner = inner if self.mixed else inner.to(self.dtype)

        def forward(self, *args: Any) -> Any:
            if self.mixed:
                with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
                    return _to_float(self.inner(*args))
            cast_args = [a.to(self.dtype) if torch.is_tensor(a) and a.is_floating_point() else a
                         for a in args]
            return _to_float(self.inner(*cast_args))

    return _CastWrapper


def _to_float(outputs: Any) -> Any:
    import torch

    if torch.is_tensor(outputs):
        return outputs.float() if outputs.is_floating_point() else outputs
    if isinstance(outputs, tuple | list):
        return type(outputs)(_to_float(o) for o in outputs)
    if isinstance(outputs, dict):
        return {k: _to_float(v) for k, v in outputs.items()}
    return outputs


def CastWrapper(inner: Any, cast: str) -> Any:  # noqa: N802 - builds a module lazily (torch)
    """An ``nn.Module`` running ``inner`` in ``cast`` with float32 inputs and outputs."""
    return _make_cast_wrapper()(inner, cast)


def torch_installed() -> bool:
    """True when torch can be imported in this process."""
    return importlib.util.find_spec("torch") is not None


class TorchScriptCompiler:
    """``torch.jit.trace``, then freeze and optimise for inference, saved as a ``.pt`` file.

    ``compiler_args``: ``strict`` (trace strictly, default False: dict/list outputs allowed),
    ``freeze`` (inline parameters as constants, default True), ``optimize`` (run
    ``torch.jit.optimize_for_inference`` after freezing, default True). Some optimised graphs
    (MKLDNN-prepacked convolutions) cannot be loaded back after ``torch.jit.save``; the frozen
    module is saved instead then, with a warning on the compile process's stderr.
    """

    name = "torchscript"
    framework = "torch"
    suffix = ".pt"
    rtol = 1e-4
    atol = 1e-5
    DEFAULTS: Mapping[str, Any] = {"strict": False, "freeze": True, "optimize": True,
                                   "cast": "fp32"}

    def is_available(self) -> bool:
        """TorchScript ships with torch."""
        return torch_installed()

    def compile(
        self,
        model: Any,
        example_args: tuple[Any, ...],
        batch_size: int,
        pipeline_size: int,
        compiler_args: Any,
        output: Path,
    ) -> None:
        """Trace ``model`` on ``example_args`` and save the optimised TorchScript module."""
        import torch

        opts = options(self.name, compiler_args, self.DEFAULTS)
        model = cast_for_compile(model, str(opts["cast"]))
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is "deprecated"
            if isinstance(model, torch.jit.ScriptModule):
                scripted: Any = model
            else:
                scripted = torch.jit.trace(
                    model, example_args, strict=bool(opts["strict"]), check_trace=False
                )
            if isinstance(scripted, torch.jit.ScriptModule) and opts["freeze"]:
                if opts["optimize"]:
                    # optimize_for_inference rewrites its argument in place: give it its own copy
                    own_copy = torch.jit.freeze(scripted.eval())
                    if saves_and_loads(torch.jit.optimize_for_inference(own_copy), output):
                        return
                    warnings.warn(
                        "the optimize_for_inference graph does not load back after "
                        "torch.jit.save; saving the frozen module instead",
                        RuntimeWarning,
                        stacklevel=1,
                    )
                scripted = torch.jit.freeze(scripted.eval())
            torch.jit.save(scripted, str(output))


def saves_and_loads(module: Any, output: Path) -> bool:
    """Save ``module`` to ``output``; True if ``torch.jit.load`` can read it back."""
    import torch

    torch.jit.save(module, str(output))
    try:
        torch.jit.load(str(output), map_location="cpu")
    except RuntimeError:
        return False
    return True


class ExportCompiler:
    """``torch.export.export``, then an AOTInductor package (native code) saved as ``.pt2``.

    ``compiler_args``: ``strict`` (``torch.export`` strict mode, default False),
    ``inductor_configs`` (dict passed to ``aoti_compile_and_package``, e.g.
    ``{"aot_inductor.compile_wrapper_opt_level": "O0"}``), ``aoti`` (default True; False saves
    the plain ExportedProgram with ``torch.export.save``, which needs no C++ compiler).
    """

    name = "export"
    framework = "torch"
    suffix = ".pt2"
    rtol = 1e-3
    atol = 1e-4
    DEFAULTS: Mapping[str, Any] = {"strict": False, "inductor_configs": None, "aoti": True,
                                   "cast": "fp32"}

    def is_available(self) -> bool:
        """AOTInductor ships with torch (compiling with it also needs a C++ compiler)."""
        return torch_installed()

    def compile(
        self,
        model: Any,
        example_args: tuple[Any, ...],
        batch_size: int,
        pipeline_size: int,
        compiler_args: Any,
        output: Path,
    ) -> None:
        """Export ``model`` for ``example_args`` and package it with AOTInductor."""
        import torch
        import torch._inductor

        opts = options(self.name, compiler_args, self.DEFAULTS)
        if isinstance(model, torch.jit.ScriptModule) or not isinstance(model, torch.nn.Module):
            raise TypeError(
                f"torch.export needs a torch.nn.Module, not a {type(model).__name__}: pass the "
                f"module class (or a factory returning one), not a TorchScript file"
            )
        model = cast_for_compile(model, str(opts["cast"]))
        with torch.no_grad():
            program = torch.export.export(model, tuple(example_args), strict=bool(opts["strict"]))
            if not opts["aoti"]:
                torch.export.save(program, str(output))
                return
            torch._inductor.aoti_compile_and_package(
                program, package_path=str(output), inductor_configs=opts["inductor_configs"]
            )


def _to_tensor(value: Any, device: str) -> Any:
    import torch

    if isinstance(value, np.ndarray | np.generic):
        value = torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, torch.Tensor):
        return value.to(device)
    return value


def _repeat(value: Any, batch_size: int) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value.repeat(batch_size, *([1] * (value.dim() - 1))).contiguous()
    return np.repeat(value, batch_size, axis=0)


class TorchSupport:
    """Builds, feeds and reloads torch models in the compile process."""

    def build(self, source: ModelSource, device: str) -> Any:
        """The model to compile, in eval mode on ``device`` (weights seeded for repeatability)."""
        import torch

        from pytest_neuronperf.frameworks.torch import load_artifact

        torch.manual_seed(0)
        if source.kind == "path":
            assert source.path
            return load_artifact(source.path, source.compiler, device)
        model = instantiate(source)
        if isinstance(model, torch.nn.Module):
            model = model.eval().to(device)
        return model

    def example_args(self, example: Any, batch_size: int, device: str) -> tuple[Any, ...]:
        """Positional tensors for one call at ``batch_size`` (leading dimension 1 expanded)."""
        return tuple(
            _to_tensor(expand_batch(_to_tensor(v, device), batch_size, _repeat), device)
            for v in as_args(example)
        )

    def run(self, model: Any, args: tuple[Any, ...]) -> Any:
        """One inference without autograd."""
        import torch

        with torch.no_grad():
            return model(*args)

    def load(self, path: str, compiler: str, device: str) -> Callable[..., Any]:
        """The artifact as a worker process loads it."""
        from pytest_neuronperf.frameworks.torch import load_artifact

        return load_artifact(path, compiler, device)
