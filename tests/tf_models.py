"""Top-level TensorFlow models for tests (imported by worker processes by name)."""

from __future__ import annotations

from typing import Any


def small_keras_model() -> Any:
    """A tiny Keras MLP built inside the worker."""
    import keras

    return keras.Sequential(
        [keras.Input(shape=(32,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(8)]
    )
