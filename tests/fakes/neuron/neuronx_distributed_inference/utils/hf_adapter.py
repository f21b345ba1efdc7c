"""The fake ``HuggingFaceGenerationAdapter``: a transformers model whose ``generate`` (with its
streamer) runs the Neuron model; every ``generate`` is logged with the NeuronCores it ran on."""

from __future__ import annotations

from typing import Any

from fake_neuron_log import record
from transformers import LlamaForCausalLM


class HuggingFaceGenerationAdapter(LlamaForCausalLM):
    """``HuggingFaceGenerationAdapter(neuron_model).generate(input_ids, ...)``."""

    def __init__(self, neuron_model: Any) -> None:
        super().__init__(neuron_model.config)
        self.neuron_model = neuron_model

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.neuron_model.forward(*args, **kwargs)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        record("generate", "neuronx_distributed_inference",
               streamer=type(kwargs.get("streamer")).__name__,
               max_new_tokens=kwargs.get("max_new_tokens"),
               min_new_tokens=kwargs.get("min_new_tokens"))
        return super().generate(*args, **kwargs)
