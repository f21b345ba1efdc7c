"""BERT encoders with random weights built from ``transformers.BertConfig`` (no download)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

VOCAB_SIZE = 30522
SEQ_LEN = 128


def _bert_encoder(**config: Any) -> nn.Module:
    """Return a randomly initialised ``transformers.BertModel`` without a pooler."""
    # Imported here: transformers takes seconds to import and pytest collection does not need it.
    from transformers import BertConfig, BertModel

    return BertModel(BertConfig(vocab_size=VOCAB_SIZE, **config), add_pooling_layer=False)


class _BertWrapper(nn.Module):
    """Call a BertModel (in eval mode) positionally; return its last hidden state as a tensor."""

    def __init__(self, **config: Any) -> None:
        super().__init__()
        self.encoder = _bert_encoder(**config)
        self.eval()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Return the last hidden state, shape (batch, seq_len, hidden)."""
        outputs = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        return outputs.last_hidden_state


class BertBase(_BertWrapper):
    """BERT-base encoder: hidden 768, 12 layers, 12 heads, intermediate 3072, vocab 30522."""

    def __init__(self) -> None:
        super().__init__(
            hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072
        )


class BertTiny(_BertWrapper):
    """BERT-tiny encoder for fast tests: hidden 128, 2 layers, 2 heads, intermediate 512."""

    def __init__(self) -> None:
        super().__init__(
            hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512
        )


def example_inputs(
    batch_size: int = 1, seq_len: int = SEQ_LEN
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(input_ids, attention_mask)``: random int64 token ids and an int64 mask of ones."""
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, VOCAB_SIZE, (batch_size, seq_len), generator=generator)
    attention_mask = torch.ones(batch_size, seq_len, dtype=torch.int64)
    return input_ids, attention_mask
