"""Marker keywords and run options: parsed and validated up front, with messages that name the
test or option at fault."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pytest_neuronperf.engine import generation, grid, serving
from pytest_neuronperf.engine.paired import check_rounds
from pytest_neuronperf.gating.verdicts import parse_tolerance
from pytest_neuronperf.metrics import BUDGETS, GENERATE_BUDGETS

DEVICES = ("auto", "cpu", "cuda", "neuron", "neuronx")
COMPILERS = ("auto", "eager", "torchscript", "export", "saved_model", "xla", "neuron", "neuronx")
BUDGET_KEYWORDS = tuple(BUDGETS)
SERVER_KEYWORDS = ("scenario", "target_qps", "max_queue_delay_ms")
GENERATE_KEYWORDS = ("output_tokens", *generation.SLO_KEYWORDS)
MARKER_KEYWORDS = (
    "batch_sizes", "n_models", "workers_per_model", "pipeline_sizes", "duration", "warmup",
    "device", "compiler", "compiler_args", *BUDGET_KEYWORDS, "tolerance", "timeout",
    "cast_modes",
    *SERVER_KEYWORDS,
    *GENERATE_KEYWORDS,
    "paired_rounds",
    "profile",
)
SCENARIO_KEYWORDS = (*SERVER_KEYWORDS, *GENERATE_KEYWORDS, *GENERATE_BUDGETS)
"""Keywords checked together (``check_scenario``) whenever one of them is given."""


class SettingsError(ValueError):
    """A marker keyword or override has a bad name or value."""


@dataclass(frozen=True)
class PerfSettings:
    """What one perf test asked for, after defaults."""

    batch_sizes: list[int] | None = None
    """None: ``[1]`` for a model, every compiled batch size for a model index."""
    n_models: list[int | str] = field(default_factory=lambda: [1, "max"])
    workers_per_model: list[int] | None = None
    pipeline_sizes: list[int] | None = None
    """None: ``[1]`` for a model, every compiled pipeline size for a model index."""
    duration: float = grid.DEFAULT_DURATION_S
    warmup: float | str = "auto"
    device: str = "auto"
    compiler: str = "auto"
    compiler_args: Any = None
    budgets: dict[str, float] = field(default_factory=dict)
    tolerance: dict[str, float] = field(default_factory=dict)
    """Per-metric overrides of the run's default tolerances."""
    timeout: float | None = None
    cast_modes: list[str] | None = None
    """None: fp32 for a model, every compiled cast for a model index."""
    scenario: str = "closed"
    target_qps: list[float | str] | None = None
    """Server scenario: the rates to sweep (``"max"``: search under ``p99_ms``)."""
    max_queue_delay_ms: float | None = None
    output_tokens: int | list[int] | None = None
    """Generate scenario: tokens per output (one number, or one per prompt)."""
    slo_ttft_ms: float | None = None
    slo_tpot_ms: float | None = None

    def scenario_arguments(self) -> dict[str, Any]:
        """``benchmark``'s arguments for the scenario (empty for the closed loop)."""
        if self.scenario == "closed":
            return {}
        if self.scenario == "generate":
            return {"scenario": self.scenario, "target_qps": self.target_qps,
                    "output_tokens": self.output_tokens, "slo_ttft_ms": self.slo_ttft_ms,
                    "slo_tpot_ms": self.slo_tpot_ms}
        return {"scenario": self.scenario, "target_qps": self.target_qps,
                "p99_ms": self.budgets.get("p99_ms"),
                "max_queue_delay_ms": self.max_queue_delay_ms}
    paired_rounds: int | None = None
    """Rounds of a paired run (``compare``, ``--neuronperf-against``); None: from duration."""
    profile: bool | None = None
    """Profile every configuration after its measurement (True), never (False), or as the run's
    ``--neuronperf-profile`` says (None)."""


def output_tokens(value: Any) -> int | list[int]:
    """``output_tokens``: a positive count, or a list of them (one per prompt)."""
    counts = grid.positive_ints("output_tokens", grid.as_list(value))
    return counts[0] if not isinstance(value, list | tuple) else [int(v) for v in value]


def check_scenario(settings: PerfSettings) -> None:
    """The scenario's keywords together: the server scenario's rates, and the generate
    scenario's output lengths, SLOs and budgets (which no other scenario has)."""
    budget = settings.budgets.get("p99_ms") if settings.scenario == "server" else None
    serving.check_settings(settings.scenario, settings.target_qps, budget,
                           settings.max_queue_delay_ms)
    generation.check_slos(settings.scenario, settings.slo_ttft_ms, settings.slo_tpot_ms)
    generate = settings.scenario == "generate"
    if settings.output_tokens is not None and not generate:
        raise SettingsError("output_tokens is the length of each generated output: add "
                            "scenario='generate' or leave output_tokens out")
    for name in GENERATE_BUDGETS:
        if name in settings.budgets and not generate:
            raise SettingsError(f"{name} is a budget of the generate scenario (token "
                                f"timings): add scenario='generate' or leave {name} out")
    if "min_goodput" in settings.budgets and settings.slo_ttft_ms is None and (
            settings.slo_tpot_ms is None):
        raise SettingsError("min_goodput counts the requests that meet the SLOs: set "
                            "slo_ttft_ms= and/or slo_tpot_ms= too")


def _n_models(value: Any) -> list[int | str]:
    values = grid.as_list(value)
    for v in values:
        if v != "max" and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise SettingsError(f"n_models must be positive integers or 'max', got {v!r}")
    if not values:
        raise SettingsError("n_models must not be empty")
    return values


def _choice(name: str, value: Any, choices: tuple[str, ...], extra: tuple[str, ...]) -> str:
    if value not in (*choices, *extra):
        raise SettingsError(f"{name} must be one of {', '.join((*choices, *extra))}, got {value!r}")
    return str(value)


def apply_keywords(
    base: PerfSettings,
    keywords: Mapping[str, Any],
    extra_devices: tuple[str, ...] = (),
) -> PerfSettings:
    """``base`` with marker keywords (or fixture overrides) applied; raises SettingsError."""
    unknown = [k for k in keywords if k not in MARKER_KEYWORDS]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, MARKER_KEYWORDS, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise SettingsError(
            f"unknown keyword {', '.join(hints)}; known: {', '.join(MARKER_KEYWORDS)}"
        )
    changes: dict[str, Any] = {}
    budgets = dict(base.budgets)
    try:
        for key, value in keywords.items():
            if key == "batch_sizes":
                changes[key] = grid.positive_ints("batch_sizes", grid.as_list(value))
            elif key == "pipeline_sizes":
                changes[key] = grid.positive_ints("pipeline_sizes", grid.as_list(value))
            elif key == "workers_per_model":
                changes[key] = (None if value is None else
                                grid.positive_ints("workers_per_model", grid.as_list(value)))
            elif key == "n_models":
                changes[key] = _n_models(value)
            elif key == "duration":
                changes[key] = grid.positive_number("duration", value)
            elif key == "warmup":
                changes[key] = "auto" if value == "auto" else grid.positive_number(
                    "warmup", value, allow_zero=True)
            elif key == "device":
                changes[key] = _choice("device", value, DEVICES, extra_devices)
            elif key == "compiler":
                changes[key] = _choice("compiler", value, COMPILERS, ())
            elif key == "compiler_args":
                changes[key] = value
            elif key in BUDGET_KEYWORDS:
                if value is None:
                    budgets.pop(key, None)
                else:
                    budgets[key] = grid.positive_number(key, value)
            elif key == "tolerance":
                changes[key] = {**base.tolerance, **parse_tolerance(value)}
            elif key == "cast_modes":
                changes[key] = None if value is None else grid.cast_mode_list(value)
            elif key == "timeout":
                changes[key] = None if value is None else grid.positive_number("timeout", value)
            elif key == "scenario":
                changes[key] = _choice("scenario", value, serving.SCENARIOS, ())
            elif key == "target_qps":
                changes[key] = None if value is None else serving.target_rates(value)
            elif key == "max_queue_delay_ms":
                changes[key] = None if value is None else grid.positive_number(
                    key, value, allow_zero=True)
            elif key == "output_tokens":
                changes[key] = None if value is None else output_tokens(value)
            elif key in generation.SLO_KEYWORDS:
                changes[key] = None if value is None else generation.positive(key, value)
            elif key == "profile":
                if value is not None and not isinstance(value, bool):
                    raise SettingsError(f"profile must be True, False or None, got {value!r}")
                changes[key] = value
            elif key == "paired_rounds":
                changes[key] = None if value is None else check_rounds(value)
        settings = replace(base, budgets=budgets, **changes)
        if any(key in SCENARIO_KEYWORDS for key in keywords):
            check_scenario(settings)
    except SettingsError:
        raise
    except ValueError as exc:  # from the shared validators
        raise SettingsError(str(exc)) from exc
    return settings
