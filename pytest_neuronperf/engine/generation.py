"""The generate scenario's settings on the parent side: prompts, output lengths, SLOs and the
served endpoint, checked together before any process starts (``benchmark`` calls
:func:`check_settings`). The copies' side is ``child.token_driver``; the report's figures are
``engine.token_summary``'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pytest_neuronperf.engine.token_summary import Slos
from pytest_neuronperf.protocol.specs import Endpoint, GenerateSpec, ModelSource

SCENARIO = "generate"
SLO_KEYWORDS = ("slo_ttft_ms", "slo_tpot_ms")
PROMPTS_HINT = ("pass prompts as token ids (a list of ints, or a 1-D tensor), several as a list "
                "of them or a 2-D tensor (one row each), or strings for an endpoint")


@dataclass(frozen=True)
class GenerateSettings:
    """What a ``benchmark`` call asked of the generate scenario (the same for all its
    configurations)."""

    prompts: tuple[Any, ...]
    output_tokens: tuple[int, ...]
    ignore_eos: bool = True
    endpoint: Endpoint | None = None
    slos: Slos = Slos()

    def spec(self) -> GenerateSpec:
        """What each copy's token driver gets."""
        return GenerateSpec(self.prompts, self.output_tokens, self.ignore_eos, self.endpoint)


def check_slos(scenario: str, slo_ttft_ms: Any, slo_tpot_ms: Any) -> Slos:
    """The SLOs as given (each a positive number of ms); they need the generate scenario."""
    values = {"slo_ttft_ms": slo_ttft_ms, "slo_tpot_ms": slo_tpot_ms}
    for name, value in values.items():
        if value is None:
            continue
        if scenario != SCENARIO:
            raise ValueError(f"{name} defines a good request of the generate scenario (for "
                             f"goodput): add scenario='generate' or leave {name} out")
        positive(name, value)
    return Slos(None if slo_ttft_ms is None else float(slo_ttft_ms),
                None if slo_tpot_ms is None else float(slo_tpot_ms))


def check_settings(scenario: str, model: Any, inputs: Any, output_tokens: Any,
                   slo_ttft_ms: Any = None, slo_tpot_ms: Any = None, ignore_eos: bool = True
                   ) -> GenerateSettings | None:
    """The generate scenario's settings (None for another scenario, which must not get them)."""
    slos = check_slos(scenario, slo_ttft_ms, slo_tpot_ms)
    endpoint = model if isinstance(model, Endpoint) else None
    if scenario != SCENARIO:
        if output_tokens is not None:
            raise ValueError("output_tokens is the length of each generated output: add "
                             "scenario='generate' or leave output_tokens out")
        if endpoint is not None:
            raise ValueError(f"an Endpoint ({endpoint.url}) is measured token by token: add "
                             f"scenario='generate'")
        return None
    if not isinstance(ignore_eos, bool):
        raise ValueError(f"ignore_eos must be True or False, got {ignore_eos!r}")
    if endpoint is not None and not isinstance(endpoint.url, str):
        raise ValueError(f"Endpoint url must be a string like 'http://127.0.0.1:8000/v1', "
                         f"got {endpoint.url!r}")
    prompts = prompts_of(inputs)
    return GenerateSettings(prompts, output_lengths(output_tokens, len(prompts)), ignore_eos,
                            endpoint, slos)


def positive(name: str, value: Any) -> float:
    """A finite number > 0, or a refusal naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
            value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def output_lengths(value: Any, prompts: int) -> tuple[int, ...]:
    """``output_tokens``: one count for every prompt, or a list with one per prompt."""
    if value is None:
        raise ValueError("scenario='generate' needs output_tokens=: how many tokens each "
                         "request generates (a number, or a list with one per prompt)")
    values = list(value) if isinstance(value, list | tuple) else [value] * prompts
    if len(values) != prompts:
        raise ValueError(f"output_tokens lists {len(values)} lengths for {prompts} prompts: "
                         f"give one per prompt, or a single number for all")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"output_tokens must be positive integers, got {v!r}")
    return tuple(values)


def prompts_of(inputs: Any) -> tuple[Any, ...]:
    """The prompts as plain data: tuples of token ids, or strings (for an endpoint)."""
    if isinstance(inputs, str):
        return (checked_text(inputs),)
    shape = getattr(inputs, "shape", None)
    if shape is not None and hasattr(inputs, "tolist"):  # a tensor or an array
        rows = inputs.tolist()
        if len(shape) == 1:
            return (token_ids(rows, 0),)
        if len(shape) == 2:
            return tuple(token_ids(row, i) for i, row in enumerate(rows))
        raise ValueError(f"prompts as a tensor have 1 or 2 dimensions, got shape "
                         f"{tuple(shape)}: {PROMPTS_HINT}")
    if not isinstance(inputs, list | tuple) or not inputs:
        raise ValueError(f"scenario='generate' takes prompts, got {type(inputs).__name__}"
                         f"{' (empty)' if isinstance(inputs, list | tuple) else ''}: "
                         f"{PROMPTS_HINT}")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in inputs):
        return (token_ids(inputs, 0),)
    return tuple(one_prompt(item, i) for i, item in enumerate(inputs))


def one_prompt(item: Any, position: int) -> Any:
    """One prompt of a list: text, token ids, or a tensor row (``(1, n)`` or ``(n,)``)."""
    if isinstance(item, str):
        return checked_text(item)
    if hasattr(item, "tolist") and getattr(item, "shape", None) is not None:
        values = item.tolist()
        if len(item.shape) == 2 and item.shape[0] == 1:
            values = values[0]
        elif len(item.shape) != 1:
            raise ValueError(f"prompt {position} is a tensor of shape {tuple(item.shape)}: "
                             f"{PROMPTS_HINT}")
        return token_ids(values, position)
    if isinstance(item, list | tuple):
        return token_ids(item, position)
    raise ValueError(f"prompt {position} is a {type(item).__name__}: {PROMPTS_HINT}")


def token_ids(values: Any, position: int) -> tuple[int, ...]:
    """A prompt of token ids: non-empty, integers >= 0."""
    ids = list(values)
    if not ids:
        raise ValueError(f"prompt {position} is empty: a request needs at least one token")
    for v in ids:
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"prompt {position} has {v!r}, not a token id (an integer >= 0): "
                             f"{PROMPTS_HINT}")
    return tuple(ids)


def checked_text(text: str) -> str:
    """A text prompt: not empty."""
    if not text:
        raise ValueError("a prompt is an empty string: a request needs some text")
    return text


def endpoint_source(endpoint: Endpoint, model_name: str | None) -> ModelSource:
    """How reports name a served model: its name (or ``endpoint``) and URL."""
    return ModelSource(kind="endpoint", name=model_name or endpoint.model or "endpoint",
                       filename=endpoint.url, path=endpoint.url)
