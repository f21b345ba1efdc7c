"""Small top-level torch models for the Neuron contract tests (importable with the fakes)."""

from __future__ import annotations

import torch


class TinyNet(torch.nn.Module):
    """One linear layer and a ReLU: 8 features in, 4 out."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.linear(x))


class PairNet(torch.nn.Module):
    """Two inputs of 8 features, summed after a shared linear layer."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(8, 4)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.linear(a) + self.linear(b)


def tiny_nxd_llama() -> object:
    """A tiny Llama as an NxD Inference application builds it: model, compile, load, and the
    Hugging Face adapter whose ``generate`` the generate scenario streams."""
    from neuronx_distributed_inference.models.llama import NeuronLlamaForCausalLM
    from neuronx_distributed_inference.utils.hf_adapter import HuggingFaceGenerationAdapter
    from transformers import LlamaConfig

    config = LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=128)
    model = NeuronLlamaForCausalLM("/models/tiny-llama", config)
    model.compile("/models/tiny-llama-neuron")
    model.load("/models/tiny-llama-neuron")
    return HuggingFaceGenerationAdapter(model)
