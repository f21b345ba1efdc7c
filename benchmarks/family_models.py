"""Model families for ``variance_levels.py`` and ``launch_study.py``: each with a base and
variants doing about +10 % and +5 % of its work per call (top level: model processes import
them).

Tuning families (the defaults were chosen looking at these): ``tiny_mlp``, ``bert``.
Held out (looked at only to confirm): ``medium_mlp``, ``conv``, ``keras``, and two families
never looked at while tuning: ``lstm`` (torch recurrent) and ``numpy`` (the ``python``
framework). The extra work is more of the model's own kind where that is exact (``tiny_mlp``
and ``numpy``: passes per call; ``keras``: a wider hidden layer), else repetitions of a small
GEMM calibrated by time to the fraction of the model's call (``calibrate``, written to
``family_calibration.json``); the effect the study measures (pooled over all its launches) is
what it reports beside each rate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

TINY_PASSES = 20
"""The tiny MLP's passes per call: +10 % work is 22 passes, +5 % 21."""
EXTRA_IN = 256
"""Width of the extra work's GEMM (a constant tensor, not the model's output)."""


# -- torch ---------------------------------------------------------------------------------------


def _torch_tiny(passes: int) -> Any:
    import torch

    class TinyMLP(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.net = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(),
                                           torch.nn.Linear(512, 256))

        def forward(self, x: Any) -> Any:
            for _ in range(passes):
                x = self.net(x)
            return x

    return TinyMLP()


def tiny_mlp() -> Any:
    """256-512-256, 20 passes per call (the issue's failing shape, made 2x deeper)."""
    return _torch_tiny(TINY_PASSES)


def tiny_mlp_plus10() -> Any:
    """22 passes: +10 % work."""
    return _torch_tiny(TINY_PASSES + 2)


def tiny_mlp_plus5() -> Any:
    """21 passes: +5 % work."""
    return _torch_tiny(TINY_PASSES + 1)


def _medium() -> Any:
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(512, 2048), torch.nn.ReLU(),
                               torch.nn.Linear(2048, 2048), torch.nn.ReLU(),
                               torch.nn.Linear(2048, 512))


def _bert() -> Any:
    import transformers

    config = transformers.BertConfig(num_hidden_layers=4, hidden_size=256,
                                     num_attention_heads=4, intermediate_size=1024,
                                     vocab_size=1000)
    model = transformers.BertModel(config)
    model.eval()
    return model


def _conv() -> Any:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    import bench_models

    return bench_models.ResNetish().eval()


def _lstm() -> Any:
    import torch

    class LSTMTagger(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.lstm = torch.nn.LSTM(64, 128, num_layers=2, batch_first=True)
            self.head = torch.nn.Linear(128, 16)

        def forward(self, x: Any) -> Any:
            return self.head(self.lstm(x)[0])

    return LSTMTagger()


TORCH_INPUTS: dict[str, Any] = {
    "medium_mlp": ("float", (1, 512)),
    "bert": ("ids", (2, 32)),
    "conv": ("float", (1, 3, 64, 64)),
    "lstm": ("float", (1, 32, 64)),
}
TORCH_BUILDERS = {"medium_mlp": _medium, "bert": _bert, "conv": _conv, "lstm": _lstm}
def torch_inputs(family: str) -> Any:
    """The inputs a family is measured with."""
    import torch

    kind, shape = TORCH_INPUTS[family]
    generator = torch.Generator().manual_seed(0)
    if kind == "ids":
        return torch.randint(0, 1000, shape, generator=generator)
    return torch.rand(shape, generator=generator)


EXTRA_ROWS = 64
"""Rows of the extra work's GEMM (64 x 256 @ 256 x 256: compute-bound, cache-resident)."""
CALIBRATION = Path(__file__).with_name("family_calibration.json")
"""GEMM repetitions per call that add 10 % / 5 % of each family's time (``calibrate``)."""


def extra_reps(family: str, fraction: float) -> int:
    """Repetitions of the extra GEMM that add ``fraction`` of ``family``'s time per call."""
    table = json.loads(CALIBRATION.read_text())
    return max(1, round(fraction * table[family]["model_s"] / table[family]["gemm_s"]))


def _with_extra(family: str, fraction: float) -> Any:
    """The family's model plus ``fraction`` of its time in an extra GEMM per call."""
    import torch

    model = TORCH_BUILDERS[family]()
    reps = extra_reps(family, fraction)

    class Plus(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(1)
            self.model = model
            self.register_buffer("probe", torch.rand(EXTRA_ROWS, EXTRA_IN))
            self.register_buffer("weight", torch.rand(EXTRA_IN, EXTRA_IN) / EXTRA_IN)

        def forward(self, x: Any) -> Any:
            out = self.model(x)
            y = self.probe
            for _ in range(reps):
                y = torch.mm(y, self.weight)
            return out

    return Plus().eval()


def calibrate(families: list[str], repeats: int = 7) -> dict[str, dict[str, float]]:
    """Time each family's model and the extra GEMM in this process, one thread, interleaved
    (best of ``repeats`` blocks), for ``extra_reps``."""
    import time

    import torch

    torch.set_num_threads(1)
    probe = torch.rand(EXTRA_ROWS, EXTRA_IN)
    weight = torch.rand(EXTRA_IN, EXTRA_IN) / EXTRA_IN
    table = json.loads(CALIBRATION.read_text()) if CALIBRATION.exists() else {}
    for family in families:
        model, x = TORCH_BUILDERS[family](), torch_inputs(family)
        model_s, gemm_s = [], []
        with torch.no_grad():
            for _ in range(repeats):
                started = time.perf_counter()
                for _ in range(5):
                    model(x)
                model_s.append((time.perf_counter() - started) / 5)
                started = time.perf_counter()
                for _ in range(50):
                    torch.mm(probe, weight)
                gemm_s.append((time.perf_counter() - started) / 50)
        table[family] = {"model_s": min(model_s), "gemm_s": min(gemm_s)}
    CALIBRATION.write_text(json.dumps(table, indent=1) + "\n")
    return table


def medium_mlp() -> Any:
    """The README quick start's MLP, 512-2048-2048-512."""
    return _medium()


def medium_mlp_plus10() -> Any:
    return _with_extra("medium_mlp", 0.10)


def medium_mlp_plus5() -> Any:
    return _with_extra("medium_mlp", 0.05)


def bert() -> Any:
    """A transformers BertModel from a config (4 layers, hidden 256, random weights)."""
    return _bert()


def bert_plus10() -> Any:
    return _with_extra("bert", 0.10)


def bert_plus5() -> Any:
    return _with_extra("bert", 0.05)


def conv() -> Any:
    """The repository's small ResNet (benchmarks/bench_models.py), 3x64x64."""
    return _conv()


def conv_plus10() -> Any:
    return _with_extra("conv", 0.10)


def conv_plus5() -> Any:
    return _with_extra("conv", 0.05)


def lstm() -> Any:
    """A 2-layer LSTM tagger, 32 steps (never looked at while tuning)."""
    return _lstm()


def lstm_plus10() -> Any:
    return _with_extra("lstm", 0.10)


def lstm_plus5() -> Any:
    return _with_extra("lstm", 0.05)


# -- Keras ---------------------------------------------------------------------------------------

KERAS_WIDTHS = (256, 1024, 1024, 256)
KERAS_MACS = sum(a * b for a, b in zip(KERAS_WIDTHS, KERAS_WIDTHS[1:], strict=False))


def _keras(fraction: float) -> Any:
    """The Keras MLP with its second hidden layer widened by ``fraction`` of its multiply-adds
    (the same layers, so Keras' per-layer overhead does not grow: an extra layer cost +35 %)."""
    import keras

    widths = list(KERAS_WIDTHS)
    widths[2] += round(fraction * KERAS_MACS / (widths[1] + widths[3]))
    inputs = keras.Input(shape=(widths[0],))
    x = inputs
    for width in widths[1:]:
        x = keras.layers.Dense(width, activation="relu")(x)
    return keras.Model(inputs, x)


def keras_mlp() -> Any:
    """A Keras MLP 256-1024-1024-256 (functional)."""
    return _keras(0.0)


def keras_mlp_plus10() -> Any:
    return _keras(0.10)


def keras_mlp_plus5() -> Any:
    return _keras(0.05)


# -- numpy (framework "python") ------------------------------------------------------------------

NUMPY_MATRIX = np.random.default_rng(0).standard_normal((128, 128)) / 12.0
NUMPY_PASSES = 20


def _numpy_passes(x: np.ndarray, passes: int) -> np.ndarray:
    for _ in range(passes):
        x = np.tanh(x @ NUMPY_MATRIX)
    return x


class NumpyChain:
    """20 passes of tanh(x @ W) on 128 features (never looked at while tuning)."""

    passes = NUMPY_PASSES

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return _numpy_passes(x, self.passes)


class NumpyChainPlus10(NumpyChain):
    passes = NUMPY_PASSES + 2


class NumpyChainPlus5(NumpyChain):
    passes = NUMPY_PASSES + 1


# -- the table -----------------------------------------------------------------------------------

FAMILIES: dict[str, dict[str, Any]] = {
    "tiny_mlp": {"framework": "torch", "models": ("tiny_mlp", "tiny_mlp_plus10", "tiny_mlp_plus5"),
                 "role": "tuning"},
    "bert": {"framework": "torch", "models": ("bert", "bert_plus10", "bert_plus5"),
             "role": "tuning"},
    "medium_mlp": {"framework": "torch",
                   "models": ("medium_mlp", "medium_mlp_plus10", "medium_mlp_plus5"),
                   "role": "held out"},
    "conv": {"framework": "torch", "models": ("conv", "conv_plus10", "conv_plus5"),
             "role": "held out"},
    "keras": {"framework": "tensorflow",
              "models": ("keras_mlp", "keras_mlp_plus10", "keras_mlp_plus5"),
              "role": "held out"},
    "lstm": {"framework": "torch", "models": ("lstm", "lstm_plus10", "lstm_plus5"),
             "role": "unseen"},
    "numpy": {"framework": "python",
              "models": ("NumpyChain", "NumpyChainPlus10", "NumpyChainPlus5"),
              "role": "unseen"},
}
"""Family -> framework, (base, +10 %, +5 %) names in this module, and its role in the study."""


def inputs_for(family: str) -> Any:
    """The inputs a family is measured with (batch 1; BERT 2 sequences of 32 tokens)."""
    if family == "tiny_mlp":
        import torch

        return torch.rand(1, 256, generator=torch.Generator().manual_seed(0))
    if family == "keras":
        return np.random.default_rng(0).random((1, KERAS_WIDTHS[0]), dtype=np.float32)
    if family == "numpy":
        return np.random.default_rng(0).random((1, 128))
    return torch_inputs(family)
