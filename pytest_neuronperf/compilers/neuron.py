"""Neuron compilers: trace a torch model for NeuronCores and save it as TorchScript.

``neuron`` uses ``torch_neuron.trace`` (Inf1; a pipeline size above one becomes
``--neuroncore-pipeline-cores``); ``neuronx`` uses ``torch_neuronx.trace`` (Inf2/Trn1). The
runtime module is imported only when compiling, inside the compile process.
"""

from __future__ import annotations

import importlib
import importlib.util
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PIPELINE_FLAG = "--neuroncore-pipeline-cores"


def as_arg_list(compiler_args: Any) -> list[str]:
    """Compiler arguments as a list of strings: a string is split as a shell would."""
    if compiler_args is None:
        return []
    if isinstance(compiler_args, str):
        return shlex.split(compiler_args)
    if isinstance(compiler_args, Sequence):
        return [str(arg) for arg in compiler_args]
    raise TypeError(
        f"compiler_args must be a string or a list of strings, got {type(compiler_args).__name__}"
    )


def pipeline_flag_value(args: list[str]) -> str | None:
    """The value already given for ``--neuroncore-pipeline-cores`` in ``args``, if any."""
    for position, arg in enumerate(args):
        if arg == PIPELINE_FLAG and position + 1 < len(args):
            return args[position + 1]
        if arg.startswith(PIPELINE_FLAG + "="):
            return arg.split("=", 1)[1]
    return None


def trace_example(example_args: tuple[Any, ...]) -> Any:
    """The example the Neuron tracers take: the tensor itself, or a tuple for several inputs."""
    return example_args[0] if len(example_args) == 1 else tuple(example_args)


class NeuronTraceCompiler:
    """Shared logic: import the runtime, trace with compiler arguments, ``torch.jit.save``."""

    name = "neuron"
    framework = "torch"
    suffix = ".pt"
    runtime_module = "torch_neuron"

    def is_available(self) -> bool:
        try:
            return importlib.util.find_spec(self.runtime_module) is not None
        except (ImportError, ValueError):
            return False

    def compiler_args_for(self, compiler_args: Any, pipeline_size: int) -> list[str]:
        """The argument list passed to ``trace`` for this pipeline size."""
        return as_arg_list(compiler_args)

    def compile(
        self,
        model: Any,
        example_args: tuple[Any, ...],
        batch_size: int,
        pipeline_size: int,
        compiler_args: Any,
        output: Path,
    ) -> None:
        import torch

        args = self.compiler_args_for(compiler_args, pipeline_size)
        runtime: Any = importlib.import_module(self.runtime_module)
        if isinstance(model, torch.nn.Module):
            model = model.eval()
        with torch.no_grad():
            traced = runtime.trace(model, trace_example(example_args), compiler_args=args)
        torch.jit.save(traced, str(output))


class NeuronCompiler(NeuronTraceCompiler):
    """``torch_neuron.trace`` for Inf1; pipeline sizes above one span several NeuronCores."""

    name = "neuron"
    runtime_module = "torch_neuron"

    def compiler_args_for(self, compiler_args: Any, pipeline_size: int) -> list[str]:
        args = as_arg_list(compiler_args)
        given = pipeline_flag_value(args)
        if given is not None:
            if given != str(pipeline_size):
                raise ValueError(
                    f"compiler_args set {PIPELINE_FLAG} {given}, but this configuration has "
                    f"pipeline size {pipeline_size}: leave the flag out, pipeline_sizes adds it"
                )
            return args
        if pipeline_size > 1:
            args += [PIPELINE_FLAG, str(pipeline_size)]
        return args


class NeuronxCompiler(NeuronTraceCompiler):
    """``torch_neuronx.trace`` for Inf2 / Trn1: one NeuronCore per traced model."""

    name = "neuronx"
    runtime_module = "torch_neuronx"

    def compiler_args_for(self, compiler_args: Any, pipeline_size: int) -> list[str]:
        if pipeline_size > 1:
            raise ValueError(
                f"torch_neuronx.trace compiles a model for one NeuronCore, so pipeline size "
                f"{pipeline_size} cannot be compiled: use pipeline_sizes=1 (spread copies with "
                f"n_models instead), or shard the model with neuronx-distributed"
            )
        return as_arg_list(compiler_args)
