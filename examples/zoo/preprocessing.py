"""Torch pre- and post-processing for the image models (``preprocess_fn`` / ``postprocess_fn``)."""

from __future__ import annotations

import torch

# Per-channel ImageNet statistics on the 0-255 pixel scale (RGB order).
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
TOP_K = 5


def preprocess_fn(images: torch.Tensor) -> torch.Tensor:
    """Normalise 0-255 float images (batch, 3, H, W) per channel with the ImageNet mean and std."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std


def postprocess_fn(logits: torch.Tensor) -> torch.Tensor:
    """Return the indices of the top-5 classes per sample, best first, shape (batch, 5)."""
    k = min(TOP_K, logits.shape[-1])
    return torch.topk(logits, k, dim=-1).indices


def argmax_fn(logits: torch.Tensor) -> torch.Tensor:
    """Return the index of the best class per sample, shape (batch,)."""
    return torch.argmax(logits, dim=-1)


def raw_image_input(batch_size: int = 1, size: int = 224) -> torch.Tensor:
    """Return random uint8-valued float images (batch_size, 3, size, size) for ``preprocess_fn``."""
    return torch.randint(0, 256, (batch_size, 3, size, size)).to(torch.float32)
