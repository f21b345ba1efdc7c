"""Top-level TensorFlow models for tests (imported by worker processes by name)."""

from __future__ import annotations

from typing import Any


def small_keras_model() -> Any:
    """A tiny Keras MLP built inside the worker."""
    import keras

    return keras.Sequential(
        [keras.Input(shape=(32,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(8)]
    )


class KerasMLP:
    """Stands for a user's Keras model class: made a keras.Model subclass on first use, so that
    importing this module does not import TensorFlow."""


def keras_model_class() -> Any:
    """A top-level Keras Model subclass (built lazily: see KerasMLP)."""
    import keras

    class Mlp(keras.Model):  # noqa: D401 - a test model
        def __init__(self) -> None:
            super().__init__()
            self.dense = keras.layers.Dense(4)

        def call(self, x: Any) -> Any:
            return self.dense(x)

    Mlp.__module__ = __name__
    Mlp.__qualname__ = "KerasMLP"
    return Mlp
