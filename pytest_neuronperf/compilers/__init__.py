"""Compilers: turn a model into one artifact per (batch size, pipeline size)."""

from __future__ import annotations

COMPILERS: dict[str, str] = {
    "torchscript": "pytest_neuronperf.compilers.torch:TorchScriptCompiler",
    "export": "pytest_neuronperf.compilers.torch:ExportCompiler",
    "saved_model": "pytest_neuronperf.compilers.tensorflow:SavedModelCompiler",
    "xla": "pytest_neuronperf.compilers.tensorflow:XlaCompiler",
    "neuron": "pytest_neuronperf.compilers.neuron:NeuronCompiler",
    "neuronx": "pytest_neuronperf.compilers.neuron:NeuronxCompiler",
}
"""Built-in compilers by name, as ``module:attribute`` (imported only in the compile process)."""
