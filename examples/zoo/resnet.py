"""ResNet image classifiers in plain torch: a full-size ResNet-50 and a tiny one for fast tests."""

from __future__ import annotations

import torch
from torch import nn

IMAGENET_CLASSES = 1000


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """Return a bias-free convolution followed by batch norm ("same" padding for odd kernels)."""
    conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(c_out))


class Bottleneck(nn.Module):
    """Residual unit 1x1 reduce, 3x3 (carrying the stride), 1x1 expand, with a projection skip."""

    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int = 1) -> None:
        super().__init__()
        c_out = width * self.expansion
        self.reduce = _conv_bn(c_in, width, 1)
        self.spatial = _conv_bn(width, width, 3, stride)
        self.expand = _conv_bn(width, c_out, 1)
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.skip = _conv_bn(c_in, c_out, 1, stride)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the residual unit."""
        y = self.act(self.reduce(x))
        y = self.act(self.spatial(y))
        y = self.expand(y)
        return self.act(y + self.skip(x))


class BasicBlock(nn.Module):
    """Residual unit of two 3x3 convolutions, with a projection skip when the shape changes."""

    expansion = 1

    def __init__(self, c_in: int, width: int, stride: int = 1) -> None:
        super().__init__()
        self.first = _conv_bn(c_in, width, 3, stride)
        self.second = _conv_bn(width, width, 3)
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or c_in != width:
            self.skip = _conv_bn(c_in, width, 1, stride)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the residual unit."""
        y = self.second(self.act(self.first(x)))
        return self.act(y + self.skip(x))


class ResNet(nn.Module):
    """Generic ResNet (stem, four residual stages, pooling, classifier), built in eval mode."""

    def __init__(
        self,
        block: type[Bottleneck] | type[BasicBlock],
        depths: tuple[int, int, int, int],
        widths: tuple[int, int, int, int] = (64, 128, 256, 512),
        num_classes: int = IMAGENET_CLASSES,
        stem_width: int = 64,
        imagenet_stem: bool = True,
    ) -> None:
        super().__init__()
        if imagenet_stem:
            self.stem = nn.Sequential(
                _conv_bn(3, stem_width, 7, stride=2),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
            )
        else:
            self.stem = nn.Sequential(_conv_bn(3, stem_width, 3), nn.ReLU(inplace=True))
        stages: list[nn.Module] = []
        c_in = stem_width
        for index, (depth, width) in enumerate(zip(depths, widths, strict=True)):
            units: list[nn.Module] = []
            for position in range(depth):
                stride = 2 if index > 0 and position == 0 else 1
                units.append(block(c_in, width, stride))
                c_in = width * block.expansion
            stages.append(nn.Sequential(*units))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_in, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits of shape (batch, num_classes) for images (batch, 3, H, W)."""
        x = self.stages(self.stem(x))
        return self.classifier(torch.flatten(self.pool(x), 1))


class ResNet50(ResNet):
    """ResNet-50: bottleneck stages [3, 4, 6, 3], 1000 classes, 224x224 input, random weights."""

    def __init__(self) -> None:
        super().__init__(Bottleneck, (3, 4, 6, 3))


class TinyResNet(ResNet):
    """ResNet-18-shaped toy (basic blocks [2, 2, 2, 2], narrow) for fast tests on 64x64 input."""

    def __init__(self) -> None:
        super().__init__(
            BasicBlock,
            (2, 2, 2, 2),
            widths=(16, 32, 64, 128),
            num_classes=10,
            stem_width=16,
            imagenet_stem=False,
        )


def example_input(batch_size: int = 1) -> torch.Tensor:
    """Return a random ResNet50 input of shape (batch_size, 3, 224, 224)."""
    return torch.rand(batch_size, 3, 224, 224)


def tiny_example_input(batch_size: int = 1) -> torch.Tensor:
    """Return a random TinyResNet input of shape (batch_size, 3, 64, 64)."""
    return torch.rand(batch_size, 3, 64, 64)
