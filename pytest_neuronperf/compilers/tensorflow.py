"""TensorFlow compilers (SavedModel, XLA) and the compile-process support for TensorFlow models.
Runs only in the compile process: TensorFlow is imported inside the functions."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np

from pytest_neuronperf.compilers.torch import options
from pytest_neuronperf.frameworks.base import as_args, expand_batch, instantiate
from pytest_neuronperf.protocol.specs import ModelSource


def _is_keras_model(model: Any) -> bool:
    for base in type(model).__mro__:
        root = (base.__module__ or "").split(".", 1)[0]
        if root in ("keras", "tf_keras") and base.__name__ == "Model":
            return True
    return False


def inference_call(model: Any) -> Callable[..., Any]:
    """``model`` as a function of its positional inputs (Keras models with ``training=False``)."""
    if _is_keras_model(model):
        return lambda *args: model(*args, training=False)
    if callable(model):
        return cast(Callable[..., Any], model)
    serve = getattr(model, "serve", None)  # a loaded SavedModel without __call__
    if callable(serve):
        return cast(Callable[..., Any], serve)
    raise TypeError(f"the model is a {type(model).__name__}, which is not callable")


class SavedModelCompiler:
    """A ``tf.function`` with a fixed input signature per batch size, saved as a SavedModel.

    The SavedModel directory exposes the function as ``serve`` (and, when it returns a tensor or
    a dict of tensors, as the ``serving_default`` signature). ``compiler_args``: ``jit_compile``
    (compile the function with XLA; default False here, True for ``xla``).
    """

    name = "saved_model"
    framework = "tensorflow"
    suffix = ""
    rtol = 1e-4
    atol = 1e-5
    jit_compile = False

    def is_available(self) -> bool:
        """True when TensorFlow is installed."""
        return importlib.util.find_spec("tensorflow") is not None

    def compile(
        self,
        model: Any,
        example_args: tuple[Any, ...],
        batch_size: int,
        pipeline_size: int,
        compiler_args: Any,
        output: Path,
    ) -> None:
        """Trace ``model`` for the shapes and dtypes of ``example_args`` and save it."""
        import tensorflow as tf

        opts = options(self.name, compiler_args, {"jit_compile": self.jit_compile})
        signature = [
            tf.TensorSpec(shape=arg.shape, dtype=arg.dtype, name=f"input_{i}")
            for i, arg in enumerate(example_args)
        ]
        root = tf.Module()
        if isinstance(model, tf.__internal__.tracking.Trackable):
            root.model = model  # tracked, so its variables are saved with the function
        root.serve = tf.function(
            inference_call(model),
            input_signature=signature,
            jit_compile=bool(opts["jit_compile"]),
        )
        concrete = root.serve.get_concrete_function()
        outputs = concrete.structured_outputs
        is_tensor_dict = isinstance(outputs, dict) and all(map(tf.is_tensor, outputs.values()))
        signable = tf.is_tensor(outputs) or is_tensor_dict
        signatures = {"serving_default": concrete} if signable else None
        tf.saved_model.save(root, str(output), signatures=signatures)


class XlaCompiler(SavedModelCompiler):
    """:class:`SavedModelCompiler` with the function compiled by XLA (``jit_compile=True``)."""

    name = "xla"
    rtol = 1e-3
    atol = 1e-4
    jit_compile = True


def _repeat(value: Any, batch_size: int) -> Any:
    return np.repeat(np.asarray(value), batch_size, axis=0)


class TensorflowSupport:
    """Builds, feeds and reloads TensorFlow models in the compile process."""

    def build(self, source: ModelSource, device: str) -> Any:
        """The model to compile: the Keras model / ``tf.Module`` / function, or a SavedModel."""
        import tensorflow as tf

        tf.random.set_seed(0)
        if source.kind == "path":
            assert source.path
            return tf.saved_model.load(source.path)
        return instantiate(source)

    def example_args(self, example: Any, batch_size: int, device: str) -> tuple[Any, ...]:
        """Positional tensors for one call at ``batch_size`` (leading dimension 1 expanded)."""
        import tensorflow as tf

        def as_tensor(value: Any) -> Any:
            if isinstance(value, np.ndarray | np.generic):
                return tf.constant(value)
            return value

        return tuple(as_tensor(expand_batch(v, batch_size, _repeat)) for v in as_args(example))

    def run(self, model: Any, args: tuple[Any, ...]) -> Any:
        """One eager inference."""
        return inference_call(model)(*args)

    def load(self, path: str, compiler: str, device: str) -> Callable[..., Any]:
        """The artifact as a worker process loads it."""
        from pytest_neuronperf.frameworks.tensorflow import load_saved_model

        return load_saved_model(path)
