"""``cast_modes``: run a configuration in fp32, fp16, bf16 or ``mixed`` precision.

- torch: ``fp16``/``bf16`` convert the module's parameters and the floating inputs at load;
  ``mixed`` keeps the weights and runs each call under ``torch.autocast`` (bfloat16 on CPU,
  float16 on CUDA), which casts the inputs of matmuls and convolutions only.
- TensorFlow/Keras: the global Keras mixed-precision policy is set in the copy before the model
  is built (``float16``, ``bfloat16``, ``mixed_bfloat16`` on CPU / ``mixed_float16`` on GPU);
  a SavedModel's precision is fixed when it is saved, so casting one is refused.
- Neuron artifacts: the precision is chosen at compile time with the compiler's cast options
  (:func:`neuron_cast_args`), never at load.

The parent checks a request with :func:`check_casts` before any process starts; the copy calls
:func:`before_load`, :func:`cast_model` and :func:`cast_inputs`. Framework imports are lazy.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

FP32 = "fp32"
NEURON_FAST_MATH = {
    "fp32": ["--fast-math", "none"],
    "fp16": ["--fast-math", "fp32-cast-all-fp16"],
    "bf16": ["--fast-math", "fp32-cast-all"],
    "mixed": ["--fast-math", "fp32-cast-matmult"],
}
"""``neuron-cc`` (Inf1) cast options per cast mode."""
NEURONX_AUTO_CAST = {
    "fp32": ["--auto-cast", "none"],
    "fp16": ["--auto-cast", "all", "--auto-cast-type", "fp16"],
    "bf16": ["--auto-cast", "all", "--auto-cast-type", "bf16"],
    "mixed": ["--auto-cast", "matmult", "--auto-cast-type", "bf16"],
}
"""``neuronx-cc`` (Inf2/Trn1) cast options per cast mode."""
NEURON_PERFORMANCE_LEVELS = {
    0: ["--fast-math", "none"],
    1: ["--fast-math", "fp32-cast-matmult", "no-fast-relayout"],
    2: ["--fast-math", "fp32-cast-matmult"],
    3: ["--fast-math", "all"],
}
"""NeuronPerf's ``performance_levels`` (0 = max accuracy ... 3 = max performance) on neuron-cc."""
CAST_TOLERANCES = {"fp32": None, "fp16": (1e-2, 1e-2), "bf16": (5e-2, 5e-2), "mixed": (5e-2, 5e-2)}
"""(rtol, atol) for compile-time output verification of a cast model (None: the compiler's)."""


class CastRefused(ValueError):
    """This model cannot be run in the requested precision."""


def check_casts(framework: str, source_kind: str, compiler: str | None, casts: Sequence[str],
                device: str) -> None:
    """Refuse, before any process starts, a cast the framework or artifact cannot do at load."""
    wanted = [c for c in casts if c != FP32]
    if not wanted:
        return
    if device in ("neuron", "neuronx"):
        raise CastRefused(
            f"cast_modes {wanted} on {device}: Neuron artifacts get their precision when they are "
            f"compiled; compile with cast_modes={list(casts)} (neuron-cc --fast-math / "
            f"neuronx-cc --auto-cast) and benchmark the model index"
        )
    if framework == "python":
        raise CastRefused(
            f"cast_modes {wanted}: the python framework has no notion of precision; convert the "
            f"model yourself, or use framework='torch' or 'tensorflow'"
        )
    if framework == "tensorflow" and source_kind == "path" and compiler != "keras":
        raise CastRefused(
            f"cast_modes {wanted}: a SavedModel's precision is fixed when it is saved; benchmark "
            f"the Keras model class (the copy sets the Keras mixed-precision policy) instead"
        )


def before_load(framework: str, cast: str, device: str) -> None:
    """In the copy, before the model is built: the Keras precision policy for TensorFlow."""
    if framework != "tensorflow" or cast == FP32:
        return
    import keras

    gpu = device == "cuda"
    policy = {"fp16": "float16", "bf16": "bfloat16",
              "mixed": "mixed_float16" if gpu else "mixed_bfloat16"}[cast]
    keras.mixed_precision.set_global_policy(policy)


def torch_dtype(cast: str) -> Any:
    """The torch dtype of a converting cast (None for fp32 and mixed)."""
    import torch

    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(cast)


def cast_model(framework: str, model: Callable[..., Any], cast: str,
               device: str) -> Callable[..., Any]:
    """In the copy, after load: the model converted (fp16/bf16) or wrapped in autocast (mixed)."""
    if framework != "torch" or cast == FP32:
        return model
    import torch

    dtype = torch_dtype(cast)
    if dtype is not None:
        to = getattr(model, "to", None)
        if not callable(to):
            raise CastRefused(
                f"cast_mode {cast!r}: the loaded model ({type(model).__name__}) cannot be "
                f"converted with .to(dtype); pass an nn.Module or a TorchScript module"
            )
        with torch.inference_mode():  # the adapter loaded it in inference mode too
            converted: Callable[..., Any] = to(dtype)
            return converted
    autocast_device = "cuda" if device.startswith("cuda") else "cpu"
    autocast_dtype = torch.float16 if autocast_device == "cuda" else torch.bfloat16
    inner = model

    def autocast_call(*args: Any) -> Any:
        with torch.autocast(device_type=autocast_device, dtype=autocast_dtype):
            return inner(*args)

    return autocast_call


def cast_inputs(framework: str, args: tuple[Any, ...], cast: str) -> tuple[Any, ...]:
    """Floating torch inputs converted to the cast's dtype (others, and other casts, as is)."""
    if framework != "torch" or cast in (FP32, "mixed"):
        return args
    torch = sys.modules["torch"]
    dtype = torch_dtype(cast)
    return tuple(
        a.to(dtype) if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args
    )


def neuron_cast_args(compiler: str, cast: str | None, performance_level: int | None) -> list[str]:
    """The Neuron compiler's cast options for a cast mode or a NeuronPerf performance level."""
    if compiler == "neuronx":
        if performance_level is not None:
            raise CastRefused(
                "performance_levels are neuron-cc (Inf1) options; for neuronx use cast_modes "
                "(neuronx-cc --auto-cast)"
            )
        return list(NEURONX_AUTO_CAST[cast or FP32]) if cast else []
    if performance_level is not None:
        return list(NEURON_PERFORMANCE_LEVELS[performance_level])
    return list(NEURON_FAST_MATH[cast]) if cast else []
