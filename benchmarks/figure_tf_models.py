"""A TensorFlow model for the engine figures (no torch import: a TF copy loads only TF)."""

from __future__ import annotations

from typing import Any


def small_keras_mlp() -> Any:
    """A tiny Keras MLP, built inside the model process (fixed-cost figure)."""
    import keras

    return keras.Sequential(
        [keras.Input(shape=(32,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(8)]
    )
