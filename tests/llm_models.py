"""Tiny transformers causal LMs (random weights from a config: nothing is downloaded) for the
generate scenario's tests."""

from __future__ import annotations

from typing import Any

import torch
from transformers import LlamaConfig, LlamaForCausalLM


class TinyLlama(LlamaForCausalLM):
    """A 2-layer Llama with seeded random weights (nothing downloaded)."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        super().__init__(LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128,
                                     num_hidden_layers=2, num_attention_heads=4,
                                     num_key_value_heads=4, max_position_embeddings=256))


class TinyLlamaWithoutCache(TinyLlama):
    """The same model without its KV cache: every step recomputes the whole sequence."""

    def __init__(self) -> None:
        super().__init__()
        self.generation_config.use_cache = False


class TinyLlamaStopsAtEos(TinyLlama):
    """Picks its end-of-sequence token first: a plain ``generate`` would stop after one token."""

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        out = super().forward(*args, **kwargs)
        out.logits[..., self.generation_config.eos_token_id] += 1e4
        return out


class WideLlama(LlamaForCausalLM):
    """Wider (hidden size 256): recomputing a sequence costs more than a step's overhead."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        super().__init__(LlamaConfig(vocab_size=256, hidden_size=256, intermediate_size=1024,
                                     num_hidden_layers=2, num_attention_heads=4,
                                     num_key_value_heads=4, max_position_embeddings=256))


class WideLlamaWithoutCache(WideLlama):
    """The same model without its KV cache: every step recomputes the whole sequence."""

    def __init__(self) -> None:
        super().__init__()
        self.generation_config.use_cache = False
