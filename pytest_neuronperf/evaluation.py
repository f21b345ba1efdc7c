"""Accuracy metrics on a model's outputs (``evaluate``, ``list_metrics`` and ``eval_metrics=``).

Each model copy keeps one :class:`EvalMetric` per requested metric and updates it with every
measured call's (post-processed) outputs and the batch's targets; the copy sends the metric's
plain-data *state* to the parent, which merges the states of every copy into one value per
metric (a report key of the metric's name, e.g. ``accuracy``). So a cast or compiled model is
measured on exactly the outputs it produced while being timed.

Outputs are read as NumPy: a tuple's first element, a dict's ``logits`` (or first value).
Classification metrics take the class as the arg-max over the last axis when the output has one
more dimension than the target, ``output > 0.5`` for a same-shaped float output, else the output
itself. One-hot targets (shaped like the output, one 1 per sample) are class indices: target
and output are both read by arg-max, so accuracy is per sample, not per element.
``precision``, ``recall``, ``specificity`` and ``f1`` are for class 1 when every label is 0 or
1, and macro-averaged over the classes seen otherwise.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def to_array(value: Any) -> np.ndarray:
    """A framework tensor (torch, TensorFlow), array or nested output as a NumPy array."""
    if isinstance(value, Mapping):
        value = value["logits"] if "logits" in value else next(iter(value.values()))
    elif isinstance(value, list | tuple) and value and not np.isscalar(value[0]):
        value = value[0]
    if hasattr(value, "detach"):  # torch: widen bf16/fp16, which NumPy cannot hold
        value = value.detach().cpu()
        if value.is_floating_point():
            value = value.float()
        return np.asarray(value.numpy())
    if hasattr(value, "numpy"):
        return np.asarray(value.numpy())
    return np.asarray(value)


def predicted_classes(output: Any, target: np.ndarray) -> np.ndarray:
    """Class labels from a model's output (see the module docstring)."""
    out = to_array(output)
    if out.ndim == target.ndim + 1:
        return np.asarray(out.argmax(axis=-1))
    if out.dtype.kind == "f":
        return (out > 0.5).astype(np.int64)
    return out


def one_hot(target: np.ndarray, output: np.ndarray) -> bool:
    """True for one-hot class targets: shaped like the output, more than one class, every
    value 0 or 1 and exactly one 1 per sample (then both are read by arg-max)."""
    return bool(target.ndim >= 2 and target.shape == output.shape and target.shape[-1] > 1
                and np.isin(target, (0, 1)).all() and (target.sum(axis=-1) == 1).all())


class EvalMetric:
    """A metric's running state in one copy: ``update`` per call, ``state`` to the parent."""

    name = ""
    description = ""

    def update(self, output: Any, target: Any) -> None:
        """Account for one batch."""
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """JSON-ready state; the parent merges the states of every copy with ``aggregate``."""
        raise NotImplementedError

    @staticmethod
    def aggregate(states: Sequence[Mapping[str, Any]]) -> float:
        """One value from the states of every copy."""
        raise NotImplementedError


class Confusion(EvalMetric):
    """Counts of (target, predicted) class pairs; the classification metrics derive from it."""

    def __init__(self) -> None:
        self.counts: dict[tuple[int, int], int] = {}

    def update(self, output: Any, target: Any) -> None:
        labels, out = to_array(target), to_array(output)
        if one_hot(labels, out):  # per sample, by class index: not per element
            labels, out = labels.argmax(axis=-1), out.argmax(axis=-1)
        truth = labels.astype(np.int64).reshape(-1)
        guess = predicted_classes(out, labels).astype(np.int64).reshape(-1)
        if truth.shape != guess.shape:
            raise ValueError(
                f"{self.name}: {guess.size} predictions for {truth.size} targets; check "
                f"eval_target_col and postprocess_fn"
            )
        pairs, counts = np.unique(np.stack([truth, guess], axis=1), axis=0, return_counts=True)
        for (t, p), n in zip(pairs.tolist(), counts.tolist(), strict=True):
            self.counts[(t, p)] = self.counts.get((t, p), 0) + n

    def state(self) -> dict[str, Any]:
        return {"pairs": [[t, p, n] for (t, p), n in sorted(self.counts.items())]}

    @staticmethod
    def merged(states: Sequence[Mapping[str, Any]]) -> dict[tuple[int, int], int]:
        """The confusion counts of every copy added up."""
        total: dict[tuple[int, int], int] = {}
        for state in states:
            for t, p, n in state["pairs"]:
                total[(t, p)] = total.get((t, p), 0) + n
        return total

    @staticmethod
    def per_class(counts: Mapping[tuple[int, int], int]) -> list[tuple[int, int, int, int]]:
        """(TP, FP, FN, TN) for class 1 of a binary task, else for every class seen."""
        classes = sorted({c for pair in counts for c in pair})
        chosen = [1] if set(classes) <= {0, 1} else classes
        total = sum(counts.values())
        result = []
        for c in chosen:
            tp = counts.get((c, c), 0)
            fp = sum(n for (t, p), n in counts.items() if p == c and t != c)
            fn = sum(n for (t, p), n in counts.items() if t == c and p != c)
            result.append((tp, fp, fn, total - tp - fp - fn))
        return result


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


def _macro(states: Sequence[Mapping[str, Any]],
           score: Callable[[int, int, int, int], float]) -> float:
    values = [score(*c) for c in Confusion.per_class(Confusion.merged(states))]
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


class Accuracy(Confusion):
    name, description = "accuracy", "(TP + TN) / all: the share of correct predictions"

    @staticmethod
    def aggregate(states: Sequence[Mapping[str, Any]]) -> float:
        counts = Confusion.merged(states)
        correct = sum(n for (t, p), n in counts.items() if t == p)
        return _ratio(correct, sum(counts.values()))


class Precision(Confusion):
    name, description = "precision", "TP / (TP + FP) (positive predictive value)"

    @staticmethod
    def aggregate(states: Sequence[Mapping[str, Any]]) -> float:
        return _macro(states, lambda tp, fp, fn, tn: _ratio(tp, tp + fp))


class Recall(Confusion):
    name, description = "recall", "TP / (TP + FN) (true positive rate, sensitivity)"

    @staticmethod
    def aggregate(states: Sequence[Mapping[str, Any]]) -> float:
        return _macro(states, lambda tp, fp, fn, tn: _ratio(tp, tp + fn))


class Specificity(Confusion):
    name, description = "specificity", "TN / (TN + FP) (true negative rate)"

    @staticmethod
    def aggregate(states: Sequence[Mapping[str, Any]]) -> float:
        return _macro(states, lambda tp, fp, fn, tn: _ratio(tn, tn + fp))


class F1(Confusion):
    name, description = "f1", "2TP / (2TP + FP + FN)"

    @staticmethod
    def aggregate(states: Sequence[Mapping[str, Any]]) -> float:
        return _macro(states, lambda tp, fp, fn, tn: _ratio(2 * tp, 2 * tp + fp + fn))


class TopK(EvalMetric):
    """The target is among the ``k`` highest-scoring classes."""

    description = "the target is among the k highest scores"

    def __init__(self, k: int = 5, name: str = "topk") -> None:
        self.k, self.name = k, name
        self.hits = 0
        self.total = 0

    def update(self, output: Any, target: Any) -> None:
        scores = to_array(output)
        truth = to_array(target).astype(np.int64).reshape(-1)
        if scores.ndim != 2 or scores.shape[0] != truth.size:
            raise ValueError(
                f"{self.name} needs (batch, classes) scores and one target per row; got scores "
                f"of shape {scores.shape} for {truth.size} targets"
            )
        k = min(self.k, scores.shape[1])
        best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        self.hits += int((best == truth[:, None]).any(axis=1).sum())
        self.total += truth.size

    def state(self) -> dict[str, Any]:
        return {"hits": self.hits, "total": self.total}

    @staticmethod
    def aggregate(states: Sequence[Mapping[str, Any]]) -> float:
        return _ratio(sum(s["hits"] for s in states), sum(s["total"] for s in states))


class ErrorMean(EvalMetric):
    """Mean of |output - target| (``mae``) or its square (``mse``)."""

    def __init__(self, name: str, power: int, description: str) -> None:
        self.name, self.power, self.description = name, power, description
        self.total = 0.0
        self.count = 0

    def update(self, output: Any, target: Any) -> None:
        out, truth = to_array(output).astype(np.float64), to_array(target).astype(np.float64)
        diff = np.abs(out.reshape(truth.shape) - truth) ** self.power
        self.total += float(diff.sum())
        self.count += int(diff.size)

    def state(self) -> dict[str, Any]:
        return {"total": self.total, "count": self.count}

    @staticmethod
    def aggregate(states: Sequence[Mapping[str, Any]]) -> float:
        return _ratio(sum(s["total"] for s in states), sum(s["count"] for s in states))


@dataclass(frozen=True)
class MetricInfo:
    """A registered metric: its canonical name, a factory and a one-line description."""

    name: str
    factory: Callable[[], EvalMetric]
    description: str
    aliases: tuple[str, ...] = ()


REGISTRY: tuple[MetricInfo, ...] = (
    MetricInfo("accuracy", Accuracy, Accuracy.description),
    MetricInfo("precision", Precision, Precision.description, ("positivepredictivevalue",)),
    MetricInfo("recall", Recall, Recall.description,
               ("truepositiverate", "sensitivity", "hitrate", "tpr")),
    MetricInfo("specificity", Specificity, Specificity.description,
               ("truenegativerate", "selectivity", "tnr")),
    MetricInfo("f1", F1, F1.description, ("f1score", "f")),
    MetricInfo("topk", lambda: TopK(5, "topk"), "top-5 accuracy (topN for other N: top1, top3)"),
    MetricInfo("mae", lambda: ErrorMean("mae", 1, ""), "mean |output - target|",
               ("meanabsoluteerror",)),
    MetricInfo("mse", lambda: ErrorMean("mse", 2, ""), "mean (output - target)^2",
               ("meansquarederror",)),
)
"""Every built-in metric, in the order ``list_metrics`` shows them."""
TOP_N = re.compile(r"top(\d+)")


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def canonical_name(name: str) -> str:
    """The registered name ``name`` refers to (case and punctuation ignored), or a refusal."""
    if not isinstance(name, str):
        raise ValueError(f"eval metric names are strings, got {name!r}")
    key = _key(name)
    for info in REGISTRY:
        if key == info.name or key in info.aliases:
            return info.name
    match = TOP_N.fullmatch(key)
    if match and int(match.group(1)) >= 1:
        return key
    known = ", ".join(info.name for info in REGISTRY)
    raise ValueError(f"unknown eval metric {name!r}; known: {known}, topN (e.g. top1, top3)")


def metric_names(metrics: str | Iterable[str] | None) -> tuple[str, ...]:
    """``eval_metrics``/``metrics`` as canonical names (a string is one metric)."""
    if metrics is None:
        return ()
    values = [metrics] if isinstance(metrics, str) else list(metrics)
    return tuple(dict.fromkeys(canonical_name(m) for m in values))


def create(name: str) -> EvalMetric:
    """A fresh metric for a canonical name."""
    for info in REGISTRY:
        if info.name == name:
            return info.factory()
    match = TOP_N.fullmatch(name)
    assert match, name
    return TopK(int(match.group(1)), name)


def aggregate(name: str, states: Sequence[Mapping[str, Any]]) -> float:
    """Merge the states every copy sent for metric ``name``."""
    return float(type(create(name)).aggregate(states))


class MetricList(list[tuple[str, str]]):
    """``list_metrics()``: (name, description) pairs that show as a table at the prompt."""

    def __repr__(self) -> str:
        width = max(len(name) for name, _ in self) + 2
        return "\n".join([f"{'Name':<{width}}Description",
                          *(f"{name:<{width}}{text}" for name, text in self)])


def list_metrics() -> MetricList:
    """The accuracy metrics ``evaluate`` and ``eval_metrics=`` accept."""
    return MetricList((info.name, info.description) for info in REGISTRY)


class Evaluator:
    """One copy's metrics; thread-safe updates from the driver threads."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget everything seen (after warm-up)."""
        self._metrics = [create(name) for name in self.names]

    def update(self, output: Any, target: Any) -> None:
        """Account for one call's outputs."""
        with self._lock:
            for metric in self._metrics:
                metric.update(output, target)

    def states(self) -> dict[str, dict[str, Any]]:
        """Metric name -> its state."""
        with self._lock:
            return {name: m.state() for name, m in zip(self.names, self._metrics, strict=True)}
