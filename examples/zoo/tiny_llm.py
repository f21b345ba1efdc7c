"""A tiny Llama-shaped causal LM with random weights (built from a config: nothing is
downloaded), and the same model with its KV cache turned off, for the generate scenario."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

VOCAB_SIZE = 1024
PROMPT_LENGTH = 16


def tiny_llama_config() -> LlamaConfig:
    """2 layers, hidden size 128, 4 heads: milliseconds per token on one CPU core."""
    return LlamaConfig(vocab_size=VOCAB_SIZE, hidden_size=128, intermediate_size=256,
                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                       max_position_embeddings=512)


class TinyLlama(LlamaForCausalLM):
    """Seeded random weights, so every copy (and every run) is the same model."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        super().__init__(tiny_llama_config())


class TinyLlamaWithoutCache(TinyLlama):
    """The same model generating without its KV cache: each new token recomputes the whole
    sequence, so the time per output token grows with the output's length."""

    def __init__(self) -> None:
        super().__init__()
        self.generation_config.use_cache = False


def prompts(count: int = 4, length: int = PROMPT_LENGTH) -> list[list[int]]:
    """``count`` prompts of ``length`` token ids (fixed: the same requests every run)."""
    generator = torch.Generator().manual_seed(1)
    return torch.randint(3, VOCAB_SIZE, (count, length), generator=generator).tolist()
