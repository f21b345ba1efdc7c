"""Keras models with random weights; keras is imported inside the factories, never torch."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import keras

SMALL_CNN_SIZE = 64
SMALL_CNN_CLASSES = 10


def keras_resnet50() -> keras.Model:
    """Return Keras' ResNet50 with random weights (``weights=None``: nothing is downloaded)."""
    import keras

    return keras.applications.ResNet50(weights=None)


def keras_small_cnn() -> keras.Model:
    """Return a small convolutional classifier on 64x64 RGB images for fast tests."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(shape=(SMALL_CNN_SIZE, SMALL_CNN_SIZE, 3)),
            layers.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
            layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
            layers.Conv2D(64, 3, strides=2, padding="same", activation="relu"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(SMALL_CNN_CLASSES),
        ],
        name="small_cnn",
    )


def keras_example_input(batch_size: int = 1) -> np.ndarray:
    """Return a random float32 NHWC batch (batch_size, 224, 224, 3) for ``keras_resnet50``."""
    return np.random.default_rng(0).random((batch_size, 224, 224, 3), dtype=np.float32)


def keras_small_example_input(batch_size: int = 1) -> np.ndarray:
    """Return a random float32 NHWC batch (batch_size, 64, 64, 3) for ``keras_small_cnn``."""
    shape = (batch_size, SMALL_CNN_SIZE, SMALL_CNN_SIZE, 3)
    return np.random.default_rng(0).random(shape, dtype=np.float32)
