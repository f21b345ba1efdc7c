"""A fake ``torch_neuronx`` for contract tests: traces on the CPU and logs what it was asked."""

from __future__ import annotations

from typing import Any

import torch
from fake_neuron_log import capture, describe, record

__version__ = "0.0.0+fake"

record("import", "torch_neuronx")
capture()


def trace(func: Any, example_inputs: Any, *_: Any, compiler_args: Any = None,
          **kwargs: Any) -> Any:
    """Log the call, then return a plain ``torch.jit.trace`` of ``func``."""
    record("trace", "torch_neuronx", args=describe(example_inputs), compiler_args=compiler_args,
           kwargs=sorted(kwargs))
    return torch.jit.trace(func, example_inputs)
