"""The configuration grid: batch size x pipeline size x n_models x workers per model x cast."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_neuronperf.reports import DEFAULT_CAST_MODE, config_label


@dataclass(frozen=True)
class RunConfig:
    """One configuration to measure."""

    batch_size: int
    n_models: int
    workers_per_model: int
    pipeline_size: int
    cast_mode: str = DEFAULT_CAST_MODE
    target_qps: float | str | None = None
    """Server scenario: queries/s offered to the configuration, or ``"max"``; None: closed."""

    def label(self) -> str:
        """How people read it, e.g. ``bs=1 n=2 w=1 p=1``."""
        return config_label(vars(self))


class NotEnoughCores(ValueError):
    """A configuration needs more cores (device units) than this process may use."""


DEFAULT_DURATION_S = 5.0
"""Seconds measured per configuration when nothing else says."""


def positive_number(name: str, value: Any, allow_zero: bool = False) -> float:
    """Validate a finite number of seconds (or units) > 0, or >= 0 with ``allow_zero``."""
    ok = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        kind = "a number >= 0" if allow_zero else "a positive number"
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    return float(value)


def as_list(value: Any) -> list[Any]:
    """A scalar becomes a one-element list; lists and tuples are copied."""
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def positive_ints(name: str, values: Iterable[Any]) -> list[int]:
    """Validate a list of positive integers (``name`` appears in the error)."""
    result = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be positive integers, got {value!r}")
        result.append(value)
    if not result:
        raise ValueError(f"{name} must not be empty")
    return list(dict.fromkeys(result))


def sizes(name: str, value: Any) -> list[int]:
    """``batch_sizes``/``pipeline_sizes``: an int or a list of positive ints; None is ``[1]``."""
    return positive_ints(name, as_list(1 if value is None else value))


def resolve_n_models(values: Sequence[Any], cores: int, pipeline_size: int) -> list[int]:
    """Turn ``"max"`` into ``cores // pipeline_size``, validate, deduplicate, keep order."""
    if not values:
        raise ValueError("n_models must not be empty")
    available = cores // pipeline_size
    if available < 1:
        raise NotEnoughCores(
            f"pipeline size {pipeline_size} needs {pipeline_size} cores, but only {cores} "
            f"are available"
        )
    resolved = []
    for value in values:
        if value == "max":
            resolved.append(available)
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"n_models must be positive integers or 'max', got {value!r}")
        if value > available:
            raise NotEnoughCores(
                f"n_models={value} with pipeline size {pipeline_size} needs "
                f"{value * pipeline_size} cores, but only {cores} are available: "
                f"use n_models='max' or fewer copies"
            )
        resolved.append(value)
    return list(dict.fromkeys(resolved))


def default_workers(pipeline_size: int) -> list[int]:
    """NeuronPerf's default threads per copy: [1, 2], or pipeline_size - 1 for pipelines."""
    return [1, 2] if pipeline_size == 1 else [max(1, pipeline_size - 1)]


def expand(
    batch_sizes: Any,
    n_models: Any,
    workers_per_model: Any,
    pipeline_sizes: Any,
    cores: int,
    cast_modes: Any = None,
) -> list[RunConfig]:
    """Every configuration to run, in a stable order."""
    casts = cast_mode_list(cast_modes)
    batches = sizes("batch_sizes", batch_sizes)
    pipelines = sizes("pipeline_sizes", pipeline_sizes)
    configs = []
    for batch_size in batches:
        for pipeline_size in pipelines:
            models = resolve_n_models(as_list(n_models), cores, pipeline_size)
            workers = (
                default_workers(pipeline_size)
                if workers_per_model is None
                else positive_ints("workers_per_model", as_list(workers_per_model))
            )
            for n in models:
                for w in workers:
                    configs += [RunConfig(batch_size, n, w, pipeline_size, c) for c in casts]
    return configs


CAST_MODES = ("fp32", "fp16", "bf16", "mixed")
"""Numeric precision of a configuration: as is, converted to half or bfloat16, or autocast."""


def cast_mode_list(value: Any) -> list[str]:
    """``cast_modes``: one of :data:`CAST_MODES` or a list of them; None is ``["fp32"]``."""
    values = as_list(DEFAULT_CAST_MODE if value is None else value)
    for cast in values:
        if cast not in CAST_MODES:
            raise ValueError(
                f"cast_modes must be among {', '.join(CAST_MODES)} (or a list of them), "
                f"got {cast!r}"
            )
    if not values:
        raise ValueError("cast_modes must not be empty")
    return list(dict.fromkeys(values))
