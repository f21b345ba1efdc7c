"""The shape of a report (one per configuration), and how a configuration is written as text.

A report is a plain dict so that it round-trips through JSON, CSV and xdist unchanged;
:class:`Report` names its keys for readers and type checkers. NeuronPerf's keys and units come
first; the plugin adds the gate's keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict


class Report(TypedDict, total=False):
    """One configuration's results (``status`` ``error``: metrics are None, ``error`` says why)."""

    # NeuronPerf's keys
    model_name: str
    model_filename: str
    device_type: str
    batch_size: int
    n_models: int
    workers_per_model: int
    pipeline_size: int
    cast_mode: str
    """``fp32`` (the default), ``fp16``, ``bf16`` or ``mixed``."""
    duration: float
    total_infs: int
    """Completed inferences x batch size."""
    throughput_avg: float
    """Samples/s, mean of the windows."""
    throughput_peak: float
    """Samples/s, the best window."""
    latency_ms_p0: float
    latency_ms_p50: float
    latency_ms_p90: float
    latency_ms_p95: float
    latency_ms_p99: float
    latency_ms_p100: float
    latency_ms_avg: float
    load_avg_ms: float
    warmup_avg_ms: float
    status: str
    error: str | None
    # the engine's
    framework: str
    cores: list[str]
    """Each copy's slice of device units, e.g. ``["0", "1"]`` or ``["0-1"]``."""
    cpu_percent_avg: float
    """Mean CPU use of the model copies during the window (100 = one logical CPU busy)."""
    memory_mb_peak: float
    """Peak resident memory of the largest copy during the window (MB)."""
    cost_per_1m_inf: float
    """With ``cost_per_hour``: the cost of a million inferences at ``throughput_avg``."""
    accuracy: float
    """With ``eval_metrics`` (or ``evaluate``): the accuracy over every copy's outputs."""
    windows: dict[str, list[float]] | None
    """Gated metric -> its per-window series (see ``engine.windows``)."""
    timers: dict[str, Any]
    latency_sketch: dict[str, list[float]]
    """``percent`` -> ``ms``: the latency at each of ~100 percentiles (the distribution's CDF)."""
    core_share: dict[str, int]
    """``used`` cores of the ``machine``'s (fewer under pytest-xdist), from pytest."""
    # the plugin's
    test: str
    verdict: str
    machine: str
    fingerprint: dict[str, Any]
    baseline: dict[str, Any]
    delta: dict[str, float]
    # the server scenario's (engine/serving.py)
    scenario: str
    """``closed``, ``server`` or ``generate``."""
    target_qps: float | str
    """Queries/s offered (one query = one batch; one sample with ``max_queue_delay_ms``)."""
    achieved_qps: float
    queue_ms_p50: float
    queue_ms_p99: float
    overloaded: bool
    backlog: int
    unserved: int
    offered_queries: int
    arrival_seed: int
    max_queue_delay_ms: float | None
    max_qps: float
    search: list[dict[str, Any]]
    # the generate scenario's (engine/token_summary.py; docs/generative.md)
    ttft_ms_p50: float
    ttft_ms_p90: float
    ttft_ms_p99: float
    """Time to first token: first token - arrival (ms)."""
    tpot_ms_p50: float
    tpot_ms_p90: float
    tpot_ms_p99: float
    """Time per output token of a request: (last - first token) / (tokens - 1) (ms)."""
    itl_ms_p50: float
    itl_ms_p99: float
    """Every gap between two token arrivals of a request (ms)."""
    e2e_ms_p50: float
    e2e_ms_p99: float
    output_tokens_per_s: float
    requests_per_s: float
    prefill_tokens_per_s: float | None
    goodput: float
    """Requests/s that met every SLO (with ``slo_ttft_ms`` / ``slo_tpot_ms``)."""
    goodput_ratio: float
    ttft_sketch: dict[str, list[float]]
    tpot_sketch: dict[str, list[float]]
    output_tokens: int | list[int]
    output_tokens_avg: float
    requests: int
    slo_ttft_ms: float | None
    slo_tpot_ms: float | None
    baseline_windows: dict[str, list[float]]
    """The baseline entry's window series (what ``windows`` was compared with)."""
    gate: dict[str, dict[str, Any]]
    """Gated metric -> the figures its verdict used (``gating.verdicts.gate_figures``)."""


CONFIG_FIELDS = (
    ("batch_size", "bs"),
    ("n_models", "n"),
    ("workers_per_model", "w"),
    ("pipeline_size", "p"),
)
"""Report key -> its short name in labels, in the order labels and keys list them."""
DEFAULT_CAST_MODE = "fp32"
"""A configuration's ``cast_mode`` when none is asked for: left out of labels and keys, so that
configurations (and baseline entries) from before casts existed keep their names."""


def _cast_suffix(config: Mapping[str, Any], separator: str, name: str) -> str:
    cast = config.get("cast_mode") or DEFAULT_CAST_MODE
    return "" if cast == DEFAULT_CAST_MODE else f"{separator}{name}{cast}"


def config_label(config: Mapping[str, Any]) -> str:
    """How people read a configuration: ``bs=1 n=2 w=1 p=1`` (keys it lacks are left out),
    plus ``cast=bf16`` for a cast other than fp32 and ``qps=100`` (and ``delay=2ms``) in the
    server scenario."""
    parts = [f"{short}={config[key]}" for key, short in CONFIG_FIELDS if key in config]
    return " ".join(parts + [f"{k}={v}" for k, v in _server_parts(config)]) + (
        _cast_suffix(config, " ", "cast="))


def _server_parts(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The server scenario's part of a configuration's text: rate and batching delay."""
    qps = config.get("target_qps")
    if qps is None:
        return []
    parts = [("qps", qps if isinstance(qps, str) else f"{float(qps):g}")]
    delay = config.get("max_queue_delay_ms")
    if delay is not None:
        parts.append(("delay", f"{float(delay):g}ms"))
    return parts


def config_key(report: Mapping[str, Any]) -> str:
    """The stable key a baseline file stores a configuration under.

    ``bs=1,n_models=2,workers=1,pipeline=1``: part of the baseline file format, never changed;
    a cast other than fp32 appends ``,cast=bf16``.
    """
    key = (
        f"bs={report['batch_size']},n_models={report['n_models']},"
        f"workers={report['workers_per_model']},pipeline={report['pipeline_size']}"
        + _cast_suffix(report, ",", "cast=")
    )
    # the server scenario (added in format 1, closed-loop keys unchanged): ``,qps=100``
    return key + "".join(f",{k}={v}" for k, v in _server_parts(report))


def config_slug(config: Mapping[str, Any]) -> str:
    """A configuration in a file name: ``bs1-n2-w1-p1``."""
    parts = [f"{short}{config[key]}" for key, short in CONFIG_FIELDS if key in config]
    return "-".join(parts + [f"{k}{v}" for k, v in _server_parts(config)]) + (
        _cast_suffix(config, "-", ""))


def parse_config_key(key: str) -> dict[str, Any]:
    """A baseline's configuration key back as report keys (``{"batch_size": 1, ...}``); parts it
    cannot read are left out."""
    names = {"bs": "batch_size", "n_models": "n_models", "workers": "workers_per_model",
             "pipeline": "pipeline_size"}
    config: dict[str, Any] = {}
    for part in key.split(","):
        name, _, value = part.partition("=")
        if name in names and value.isdigit():
            config[names[name]] = int(value)
        elif name == "cast" and value:
            config["cast_mode"] = value
        elif name == "qps" and value:
            config["target_qps"] = value if value == "max" else float(value)
    return config
