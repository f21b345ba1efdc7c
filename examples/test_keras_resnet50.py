"""Keras ResNet50 (weights=None) through the TensorFlow adapter, compiled to a SavedModel."""

import pytest
from zoo.keras_models import keras_example_input, keras_resnet50


@pytest.mark.neuronperf(batch_sizes=1, n_models=[1, "max"], workers_per_model=1, duration=5,
                        compiler="saved_model")
def test_keras_resnet50(neuronperf):
    reports = neuronperf.benchmark(keras_resnet50, keras_example_input(1), framework="tensorflow")
    assert all(r["status"] == "ok" for r in reports)
    assert all(".neuronperf-cache" in r["model_filename"] for r in reports)  # the SavedModel
