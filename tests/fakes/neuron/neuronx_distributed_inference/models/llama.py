"""The fake ``NeuronLlamaForCausalLM``: built from a config, compiled and loaded (logged with
the NeuronCores it sees), its weights a CPU Llama's."""

from __future__ import annotations

from typing import Any

import torch
from fake_neuron_log import record
from transformers import LlamaConfig, LlamaForCausalLM


class NeuronLlamaForCausalLM:
    """``NeuronLlamaForCausalLM(model_path, config)``, ``compile(path)``, ``load(path)``."""

    def __init__(self, model_path: str, config: LlamaConfig) -> None:
        torch.manual_seed(0)
        self.config = config
        self.cpu_model = LlamaForCausalLM(config).eval()
        self.loaded = False
        record("init", "neuronx_distributed_inference", model_path=model_path)

    def compile(self, compiled_path: str) -> None:
        record("compile", "neuronx_distributed_inference", path=compiled_path)

    def load(self, compiled_path: str) -> None:
        import torch_neuronx  # noqa: F401 - the runtime a real load starts

        self.loaded = True
        record("load", "neuronx_distributed_inference", path=compiled_path)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if not self.loaded:
            raise RuntimeError("NeuronLlamaForCausalLM: call load() before running the model")
        return self.cpu_model(*args, **kwargs)
