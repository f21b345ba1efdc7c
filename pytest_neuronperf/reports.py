"""The shape of a report (one per configuration), its JSON codec, and how a configuration is
written as text.

A report is a plain dict so that it round-trips through JSON, CSV and xdist unchanged;
:class:`Report` names every key for readers and type checkers (its gate, paired, interference
and server parts are typed too). NeuronPerf's keys and units come first; the plugin adds the
gate's keys. ``encode_reports`` / ``decode_reports`` are the one codec of report files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict


class Interference(TypedDict):
    """How busy the measured cores were with other work (``engine.interference``)."""

    other_pct: float
    """Share of the measured cores' time that was busy but not spent by the copies."""
    steal_pct: float
    """Share the hypervisor gave to other guests."""
    cpus: int


class LatencySketch(TypedDict):
    """The latency distribution in about 100 numbers (``engine.windows.latency_sketch``)."""

    percent: list[float]
    ms: list[float]


class CoreShareUse(TypedDict):
    """``used`` cores of the ``machine``'s (fewer under pytest-xdist), from pytest."""

    used: int
    machine: int


class GateFigure(TypedDict, total=False):
    """The numbers behind one gated metric's verdict (``gating.verdicts.gate_figures``)."""

    now: float | None
    baseline: float | None
    delta: float | None
    tolerance: float | None
    p: float | None
    interval: list[float | None]
    """95 % interval of the change, as ``delta`` is (the paired gate's ``interval`` too)."""
    verdict: str


class Rerun(TypedDict, total=False):
    """The headline figures of a second measurement (``recheck`` or ``repeat``)."""

    status: str | None
    error: str | None
    throughput_avg: float | None
    throughput_peak: float | None
    latency_ms_p50: float | None
    latency_ms_p99: float | None


class SideMetrics(TypedDict, total=False):
    """One side's whole-run figures in a paired run (NeuronPerf's keys)."""

    total_infs: int
    throughput_avg: float
    throughput_peak: float
    latency_ms_p0: float
    latency_ms_p50: float
    latency_ms_p90: float
    latency_ms_p95: float
    latency_ms_p99: float
    latency_ms_p100: float
    latency_ms_avg: float
    load_avg_ms: float
    warmup_avg_ms: float
    latency_sketch: LatencySketch
    # the generate scenario's side (``engine.token_summary.side_metrics``)
    output_tokens_per_s: float
    ttft_ms_p50: float | None
    ttft_ms_p90: float | None
    ttft_ms_p99: float | None
    tpot_ms_p50: float | None
    tpot_ms_p90: float | None
    tpot_ms_p99: float | None


class Launch(TypedDict):
    """One launch pair of a paired configuration (``engine.paired.LaunchPair.entry``)."""

    order: str
    """The side whose copies started first."""
    round_order: list[str]
    """The side that ran first in each round."""
    rounds: int
    values: dict[str, dict[str, list[float]]]
    """Side -> series (``throughput``, ``latency_ms_p50``, ``latency_ms_p99``; the generate
    scenario's ``output_tokens_per_s``, ``ttft_ms_p99``, ``tpot_ms_p99``) -> per round."""
    cpu_s: dict[str, list[float]]
    """Side -> CPU seconds its copies used per round."""
    load_ms: dict[str, float]
    warmup_ms: dict[str, float]
    interference: Interference | None
    wall_s: float


class PairedStop(TypedDict):
    """Why a paired configuration stopped adding launch pairs (``gating.paired.look``)."""

    code: str
    """``regressed``, ``clear``, ``cap`` (planned pairs ran) or ``base failed``."""
    reason: str


class Paired(TypedDict, total=False):
    """A paired report's ``paired`` part: the schedule, the base side, and the paired gate's
    verdict (``engine.paired`` writes the measurement, ``gating.paired`` the judgement)."""

    revision: str | None
    """The base revision as given and its commit (``--neuronperf-against``)."""
    rounds: int
    seed: int
    slice_s: float
    base_status: str
    """``ok``, ``error``, ``absent`` (no model at the revision) or ``not measured``."""
    base_error: str
    base_model: str
    base: SideMetrics
    launches: list[Launch]
    """Every launch pair whose both sides measured, in the order they ran."""
    pairs: int
    planned_pairs: int
    """Pairs that fit ``duration`` per side (the cap of the sequential rule)."""
    stop: PairedStop
    wall_s: float
    """Seconds the launch pairs took, loads included."""
    # the paired gate's
    verdict: str
    note: str
    figures: dict[str, dict[str, float | None]]
    """Side (``head``, ``base``) -> metric -> the figure the tables show for it (the side's
    median slice, hiccups left out as ``gating.verdicts.window_median`` leaves them out)."""
    verdicts: dict[str, str]
    """Metric -> its paired verdict."""
    delta: dict[str, float]
    interval: dict[str, list[float]]
    p: dict[str, float]
    p_adjusted: dict[str, float]
    tolerance: dict[str, float]


class SearchTrial(TypedDict):
    """One trial of a ``target_qps="max"`` search."""

    stage: str
    qps: float
    duration: float
    latency_ms_p99: float | None
    overloaded: bool | None
    meets: bool
    status: str | None


class ServerPart(TypedDict, total=False):
    """The server scenario's keys (``engine.serving``)."""

    scenario: str
    """``closed``, ``server`` or ``generate``."""
    target_qps: float | str
    """Queries/s offered (one query = one batch; one sample with ``max_queue_delay_ms``)."""
    achieved_qps: float
    offered_queries: int
    queue_ms_p50: float
    queue_ms_p99: float
    overloaded: bool
    backlog: int
    unserved: int
    arrival_seed: int
    max_queue_delay_ms: float | None
    max_qps: float
    search: list[SearchTrial]
    capacity_qps: float
    timers: dict[str, list[list[float | None]]]
    """``return_timers``: per query ms after the common start (``arrival``, ``start``, ``end``)."""


class GeneratePart(TypedDict, total=False):
    """The generate scenario's keys (``engine.token_summary``; docs/generative.md)."""

    ttft_ms_p50: float | None
    ttft_ms_p90: float | None
    ttft_ms_p99: float | None
    """Time to first token: first token - arrival (ms)."""
    tpot_ms_p50: float | None
    tpot_ms_p90: float | None
    tpot_ms_p99: float | None
    """Time per output token of a request: (last - first token) / (tokens - 1) (ms)."""
    itl_ms_p50: float | None
    itl_ms_p99: float | None
    """Every gap between two token arrivals of a request (ms)."""
    e2e_ms_p50: float | None
    e2e_ms_p99: float | None
    output_tokens_per_s: float
    requests_per_s: float
    prefill_tokens_per_s: float | None
    goodput: float
    """Requests/s that met every SLO (with ``slo_ttft_ms`` / ``slo_tpot_ms``)."""
    goodput_ratio: float
    ttft_sketch: LatencySketch
    tpot_sketch: LatencySketch
    output_tokens: int | list[int]
    """As asked: one count, or one per prompt."""
    output_tokens_avg: float
    requests: int
    slo_ttft_ms: float | None
    slo_tpot_ms: float | None


class GatePart(TypedDict, total=False):
    """What the plugin adds: where it was measured, and the baseline gate's judgement."""

    test: str
    machine: str
    fingerprint: dict[str, Any]
    host: str
    host_id: str
    worker: str
    verdict: str
    gate: dict[str, GateFigure]
    """Gated metric -> the figures its verdict used."""
    baseline: dict[str, Any]
    delta: dict[str, float]
    baseline_windows: dict[str, list[float]]
    """The baseline entry's window series (what ``windows`` was compared with)."""
    recheck: Rerun
    repeat: Rerun
    core_share: CoreShareUse
    history: dict[str, Any]
    """With ``--neuronperf-history-gate``: its verdict, the runs judged and the change points
    that made it (``history.gate.HistoryJudgement.report_field``), or why it did not judge."""


class Report(ServerPart, GeneratePart, GatePart, total=False):
    """One configuration's results (``status`` ``error``: metrics are None, ``error`` says
    why). Every key any room writes is here; a new key is added here first."""

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
    total_infs: int | None
    """Completed inferences x batch size."""
    throughput_avg: float | None
    """Samples/s, mean of the windows."""
    throughput_peak: float | None
    """Samples/s, the best window."""
    latency_ms_p0: float | None
    latency_ms_p50: float | None
    latency_ms_p90: float | None
    latency_ms_p95: float | None
    latency_ms_p99: float | None
    latency_ms_p100: float | None
    latency_ms_avg: float | None
    load_avg_ms: float | None
    warmup_avg_ms: float | None
    status: str
    error: str | None
    # the engine's
    framework: str
    cores: list[str]
    """Each copy's slice of device units, e.g. ``["0", "1"]`` or ``["0-1"]``."""
    cpu_percent_avg: float | None
    """Mean CPU use of the model copies during the window (100 = one logical CPU busy)."""
    memory_mb_peak: float | None
    """Peak resident memory of the largest copy during the window (MB)."""
    cpu_percent_per_copy: list[float | None]
    memory_mb_peak_per_copy: list[float | None]
    cost_per_1m_inf: float | None
    """With ``cost_per_hour``: the cost of a million inferences at ``throughput_avg``."""
    windows: dict[str, list[float]] | None
    """Gated metric -> its per-window series (see ``engine.windows``)."""
    launch_windows: list[int]
    """How many of ``windows`` each launch gave, in order (paired runs and saved baselines)."""
    latency_sketch: LatencySketch
    interference: Interference | None
    paired: Paired
    profile: dict[str, Any]
    """The configuration's profile after its measurement and what got slower
    (``pytest_neuronperf.profiling``: ``status``, ``head``, ``base``, ``changes``, ``traces``)."""
    # accuracy metrics (``eval_metrics``; ``topN`` for other N is written as such)
    accuracy: float
    precision: float
    recall: float
    specificity: float
    f1: float
    topk: float
    mae: float
    mse: float


REPORT_FORMAT = "pytest-neuronperf-reports"
REPORT_VERSION = 1
"""Version of report files (``write_json``). History:

1. ``{"format": "pytest-neuronperf-reports", "version": 1, "reports": [...]}``, strict JSON (NaN
   and inf written as null). Readers also take a bare JSON list of reports. From pytest, an
   optional ``"run"`` object beside the reports (commit, branch, dirty, time, packages:
   ``history.runinfo``), added without a new version since readers ignore it.

Reports gain keys without a new version (readers ignore keys they do not know); a version is
added when a key changes its meaning or a reader of the previous version would misread it.
So the baseline gate's ``gate[metric]["ci"]`` (a ratio) became ``interval`` (a change, as the
paired gate's) within version 1: a reader of either finds no key of the other, none misreads."""


def json_safe(value: Any) -> Any:
    """Plain JSON values: NaN/inf become None, NumPy scalars and arrays plain numbers/lists."""
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def encode_reports(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The JSON document of a report file (see ``REPORT_VERSION``)."""
    return {"format": REPORT_FORMAT, "version": REPORT_VERSION, "reports": json_safe(reports)}


def decode_reports(document: Any, where: str) -> list[Report]:
    """The reports of a report file's parsed JSON (any version so far, or a bare list), or a
    ValueError naming ``where`` (the file)."""
    if isinstance(document, list):
        if not all(isinstance(report, dict) for report in document):
            raise ValueError(f"{where} is a JSON list, but not of report objects")
        return document
    if not isinstance(document, dict) or document.get("format") != REPORT_FORMAT:
        raise ValueError(f"{where} is not a pytest-neuronperf report file")
    version = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"{where} has report format version {version!r}, not a number")
    if version > REPORT_VERSION:
        raise ValueError(
            f"{where} was written by a newer pytest-neuronperf (report format version "
            f"{version}); upgrade to read it"
        )
    reports = document.get("reports")
    if not isinstance(reports, list):
        raise ValueError(f"{where} has no \"reports\" list")
    return reports


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
