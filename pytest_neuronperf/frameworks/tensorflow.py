"""TensorFlow adapter: Keras / ``tf.Module`` classes and factories, SavedModel directories."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numpy as np
import tensorflow as tf

from pytest_neuronperf.devices.base import Placement
from pytest_neuronperf.frameworks.base import (
    as_args,
    expand_batch,
    instantiate,
    require_callable,
)
from pytest_neuronperf.protocol.specs import ModelSource


def _repeat(value: Any, batch_size: int) -> Any:
    return np.repeat(np.asarray(value), batch_size, axis=0)


def _as_tensor(value: Any) -> Any:
    if isinstance(value, np.ndarray | np.generic):
        return tf.constant(value)
    return value


def load_saved_model(path: str) -> Callable[..., Any]:
    """Load a SavedModel and return its callable (``serve``, ``__call__`` or serving signature)."""
    loaded = tf.saved_model.load(path)
    # A restored function only holds weak references to the variables: the callables below
    # keep ``loaded`` alive, or its variables would be deleted once this function returns.
    serve = getattr(loaded, "serve", None)
    if callable(serve):

        def call_serve(*args: Any, _root: Any = loaded) -> Any:
            return serve(*args)

        return call_serve
    if callable(loaded):
        return cast(Callable[..., Any], loaded)
    signatures = getattr(loaded, "signatures", {})
    if "serving_default" in signatures:
        signature = signatures["serving_default"]
        names = list(signature.structured_input_signature[1].keys())

        def call(*args: Any, _root: Any = loaded) -> Any:
            return signature(**dict(zip(names, args, strict=True)))

        return call
    raise TypeError(
        f"SavedModel {path} has no serve function, __call__ or serving_default signature"
    )


class TensorflowAdapter:
    """Runs Keras models and TF functions; inputs become tensors once, before measuring."""

    name = "tensorflow"

    def set_threads(self, threads: int) -> None:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass  # runtime already initialised: the environment variables still apply

    def load(self, source: ModelSource, placement: Placement) -> Callable[..., Any]:
        if source.kind == "path" and source.compiler != "keras":
            assert source.path
            return load_saved_model(source.path)
        if source.kind == "path":  # a Keras instance the parent saved (engine.instances)
            assert source.path
            model = tf.keras.models.load_model(source.path)
        else:
            model = instantiate(source)
        if isinstance(model, tf.keras.Model):
            keras_model = model

            def call(*args: Any) -> Any:
                return keras_model(*args, training=False)

            return call
        return require_callable(model, source)

    def prepare_inputs(
        self, example: Any, batch_size: int, placement: Placement
    ) -> tuple[Any, ...]:
        return tuple(_as_tensor(expand_batch(v, batch_size, _repeat)) for v in as_args(example))

    def thread_setup(self) -> None:
        pass

    def synchronizer(self, placement: Placement) -> Callable[[], None] | None:
        return None
