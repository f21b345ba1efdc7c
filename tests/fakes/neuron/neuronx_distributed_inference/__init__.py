"""A fake NxD Inference (``neuronx_distributed_inference``) for contract tests: models that
"compile" and "load" on the NeuronCores the process sees (logged), then generate on the CPU
through the same Hugging Face adapter a real application uses."""

from __future__ import annotations

from fake_neuron_log import record

__version__ = "0.0.0+fake"

record("import", "neuronx_distributed_inference")
