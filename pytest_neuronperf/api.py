"""The library's public calls, shaped like NeuronPerf: ``benchmark`` a model over a
configuration grid, ``compare`` two models paired, ``evaluate`` accuracy, ``tune`` under a p99
budget, ``compile`` a model index, and the report helpers. Everything else is below this room:
the engine plans and measures, the gate judges, the reporting modules print and write."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pytest_neuronperf.compiling.request import compile
from pytest_neuronperf.devices import DeviceBackend
from pytest_neuronperf.engine import grid, serving
from pytest_neuronperf.engine.inputs import is_dataset
from pytest_neuronperf.engine.measure import measure
from pytest_neuronperf.engine.paired import PairedRequest, check_rounds
from pytest_neuronperf.engine.progress import ProgressCallback
from pytest_neuronperf.engine.request import BenchmarkRequest
from pytest_neuronperf.engine.server_command import start_server
from pytest_neuronperf.evaluation import list_metrics
from pytest_neuronperf.frameworks.base import leading_dim
from pytest_neuronperf.gating import paired as paired_gate
from pytest_neuronperf.gating.verdicts import parse_tolerance
from pytest_neuronperf.protocol.specs import Endpoint
from pytest_neuronperf.reporting.files import get_reports, write_csv, write_json
from pytest_neuronperf.reporting.tables import print_reports
from pytest_neuronperf.reports import Report
from pytest_neuronperf.tuning import Tuning, print_tuning, tuning_of

__all__ = ["Endpoint", "benchmark", "compare", "compile", "evaluate", "get_reports",
           "list_metrics", "print_reports", "print_tuning", "start_server", "tune", "write_csv",
           "write_json"]


def benchmark(
    model: Any,
    inputs: Any,
    batch_sizes: int | Sequence[int] | None = None,
    duration: float = grid.DEFAULT_DURATION_S,
    n_models: int | str | Sequence[int | str] | None = None,
    pipeline_sizes: int | Sequence[int] | None = None,
    cast_modes: str | Sequence[str] | None = None,
    workers_per_model: int | Sequence[int] | None = None,
    env_setup_fn: Callable[[int, dict[str, Any]], None] | None = None,
    setup_fn: Callable[[int, dict[str, Any], Any], None] | None = None,
    preprocess_fn: Callable[..., Any] | None = None,
    postprocess_fn: Callable[..., Any] | None = None,
    dataset_loader_fn: Callable[[Any, int], Any] | None = None,
    verbosity: int = 1,
    multiprocess: bool = True,
    multiinterpreter: bool = False,
    return_timers: bool = False,
    stats_interval: float = 0.5,
    device_type: str = "auto",
    cost_per_hour: float | None = None,
    model_name: str | None = None,
    *,
    loop_dataset: bool = True,
    eval_metrics: str | Iterable[str] | None = None,
    eval_target_col: int = -1,
    dynamic_batch_size: bool = False,
    warmup: float | str = "auto",
    framework: str | None = None,
    timeout: float | None = None,
    cores: Sequence[int] | None = None,
    devices: dict[str, DeviceBackend] | None = None,
    adapters: dict[str, str] | None = None,
    scenario: str = "closed",
    target_qps: float | str | Sequence[float | str] | None = None,
    p99_ms: float | None = None,
    max_queue_delay_ms: float | None = None,
    seed: int = serving.DEFAULT_SEED,
    progress: ProgressCallback | None = None,
    paired: PairedRequest | None = None,
    output_tokens: int | Sequence[int] | None = None,
    slo_ttft_ms: float | None = None,
    slo_tpot_ms: float | None = None,
    ignore_eos: bool = True,
) -> list[Any]:
    """Benchmark ``model`` on every configuration; one report per configuration.

    NeuronPerf's arguments, in its order (see docs/neuronperf-api.md): ``model`` is a
    top-level class or zero-argument factory, a model instance with trained weights (saved once
    and loaded by every copy; its class must be importable), a saved artifact path, or a model
    index written by ``compile``. ``inputs`` is one array/tensor, a tuple for a multi-input
    model, a list with one of those per batch size, or a dataset (a torch ``Dataset`` or any
    iterable of samples, batched per batch size: ``child.datasets``). ``cast_modes`` (fp32,
    fp16, bf16, mixed) is a grid dimension. ``env_setup_fn(id, config)`` runs in each copy
    before the model loads, ``setup_fn(id, config, model)`` after. ``multiprocess=False`` runs
    the copies in this process for debugging (limits: ``engine.in_process``);
    ``multiinterpreter=True`` starts each copy in a fresh interpreter (spawn) instead of the
    forkserver. ``stats_interval``: seconds between each copy's CPU/memory samples (reports
    always carry ``cpu_percent_avg`` and ``memory_mb_peak``). ``cost_per_hour`` adds
    ``cost_per_1m_inf``. ``device_type="gpu"`` means ``cuda``. ``return_timers=True`` returns
    ``(config, results)`` pairs that ``get_reports`` turns into these reports.

    Ours: ``loop_dataset`` (False: each copy runs the data once and that pass is measured),
    ``eval_metrics`` (accuracy metrics on every copy's outputs; ``evaluation``),
    ``eval_target_col``, ``dynamic_batch_size`` (a model index's compiled batch *b* serves user
    batches that are multiples of *b*), ``warmup``, ``framework``, ``timeout``, ``cores`` (the
    device units to use; the plugin passes each xdist worker's slice), ``devices`` and
    ``adapters`` (custom device backends and framework adapters, ``name -> "module:attr"``).
    ``scenario="server"`` serves Poisson arrivals at ``target_qps`` (see ``engine.serving``;
    ``"max"`` searches for the highest rate whose p99 meets ``p99_ms``). ``progress`` is called
    before each configuration (at ``verbosity=1`` the library logs it instead). ``paired``
    measures every configuration against a base side (``compare`` and ``--neuronperf-against``
    use it; see ``engine.paired``).

    ``scenario="generate"`` times every token of generated outputs (docs/generative.md):
    ``model`` is a transformers causal LM (class or factory), a class or factory whose product
    returns an iterator of tokens when called as ``model(prompt, output_tokens)``, or an
    ``Endpoint`` (a served OpenAI-compatible model); ``inputs`` the prompts; ``output_tokens``
    the length of each output (exactly, unless ``ignore_eos=False``); ``slo_ttft_ms`` /
    ``slo_tpot_ms`` define a good request for ``goodput``; ``target_qps`` makes it an open loop
    of Poisson request arrivals.
    """
    return measure(BenchmarkRequest(
        model, inputs, batch_sizes, duration, n_models, pipeline_sizes, cast_modes,
        workers_per_model, env_setup_fn, setup_fn, preprocess_fn, postprocess_fn,
        dataset_loader_fn, verbosity, multiprocess, multiinterpreter, return_timers,
        stats_interval, device_type, cost_per_hour, model_name, loop_dataset=loop_dataset,
        eval_metrics=eval_metrics, eval_target_col=eval_target_col,
        dynamic_batch_size=dynamic_batch_size, warmup=warmup, framework=framework,
        timeout=timeout, cores=cores, devices=devices, adapters=adapters, scenario=scenario,
        target_qps=target_qps, p99_ms=p99_ms, max_queue_delay_ms=max_queue_delay_ms, seed=seed,
        progress=progress, paired=paired, output_tokens=output_tokens, slo_ttft_ms=slo_ttft_ms,
        slo_tpot_ms=slo_tpot_ms, ignore_eos=ignore_eos
    ))


def compare(
    base_model: Any,
    model: Any,
    inputs: Any,
    *,
    paired_rounds: int | None = None,
    seed: int | None = None,
    tolerance: Any = None,
    **kwargs: Any,
) -> list[Report]:
    """A/B-test ``model`` ("head") against ``base_model`` on every configuration, as launch
    pairs on the same cores; one report per configuration, for the head, with the base side,
    every pair, the paired deltas, their intervals, p-values and a verdict under ``paired``.

    Takes ``benchmark``'s keywords (``duration`` caps the measuring time per side;
    ``paired_rounds`` is rounds per launch pair). ``tolerance`` overrides the paired gate's
    default tolerances (``"throughput:3%"`` or a dict); an unknown metric is refused here.
    """
    if paired_rounds is not None:
        check_rounds(paired_rounds)
    tolerances = parse_tolerance(tolerance) if tolerance is not None else {}
    request = PairedRequest(base_model=base_model, rounds=paired_rounds, seed=seed,
                            stop_rules=paired_gate.stop_rules(tolerances))  # refuses a metric
    reports = benchmark(model, inputs, paired=request, **kwargs)
    for report, judgement in zip(reports, paired_gate.judge_family(reports, tolerances),
                                 strict=True):
        paired_gate.annotate(report, judgement)
    return reports


def evaluate(
    model: Any,
    dataset: Any,
    metrics: str | Iterable[str] = "accuracy",
    eval_target_col: int = -1,
    **kwargs: Any,
) -> list[Report]:
    """Run ``dataset`` once through one copy of ``model`` and report ``metrics`` on its outputs.

    ``dataset`` is a torch ``Dataset``, any iterable of ``(*inputs, target)`` samples (the
    target in column ``eval_target_col``), or a tuple of equally long arrays ``(X, Y)`` (its
    columns). Other keywords go to ``benchmark`` (e.g. ``batch_sizes``, ``cast_modes``,
    ``preprocess_fn``, ``postprocess_fn``, ``framework``).
    """
    dataset = labelled_data(dataset)
    settings: dict[str, Any] = {"n_models": 1, "workers_per_model": 1, "duration": 0,
                                "loop_dataset": False}
    settings.update(kwargs)
    return benchmark(model, dataset, eval_metrics=metrics, eval_target_col=eval_target_col,
                     **settings)


def labelled_data(dataset: Any) -> Any:
    """``evaluate``'s data as samples: a tuple of equally long arrays ``(X, Y)`` is read as
    columns; anything else that is not a dataset is refused in one sentence."""
    if isinstance(dataset, tuple) and len(dataset) >= 2:
        lengths = {leading_dim(column) for column in dataset}
        if len(lengths) == 1 and None not in lengths:
            return list(zip(*dataset, strict=True))
        raise ValueError(
            f"evaluate: dataset is a tuple of {len(dataset)} items, read as columns (inputs..., "
            f"targets), but their lengths differ ({sorted(map(str, lengths))}): pass arrays "
            f"with one row per sample each")
    if is_dataset(dataset) or isinstance(dataset, list):
        return dataset
    raise ValueError(
        f"evaluate needs labelled data, got a {type(dataset).__name__}: pass a torch Dataset, "
        f"an iterable of (*inputs, target) samples, or a tuple of equally long arrays (X, Y)")


def tune(
    model: Any,
    inputs: Any,
    p99_ms: float | None = None,
    batch_sizes: int | Sequence[int] | None = None,
    n_models: int | str | Sequence[int | str] | None = None,
    workers_per_model: int | Sequence[int] | None = None,
    scenario: str = "closed",
    target_qps: float | str | Sequence[float | str] | None = None,
    **benchmark_args: Any,
) -> Tuning:
    """Benchmark the grid and rank its configurations under ``p99_ms``.

    ``scenario="closed"`` ranks NeuronPerf's closed-loop runs by throughput among those whose
    p99 meets the budget. ``scenario="server"`` measures what a service sees: at the given
    ``target_qps`` rates, or by default ``"max"``, the highest rate each configuration sustains
    under the budget. ``scenario="generate"`` ranks by goodput under the SLOs
    (``slo_ttft_ms``, ``slo_tpot_ms``; at least one), closed loop or at ``target_qps``;
    ``p99_ms`` is optional there (end-to-end). Other arguments go to ``benchmark``.
    """
    generate = scenario == "generate"
    if p99_ms is not None or not generate:
        grid.positive_number("p99_ms", p99_ms)
    if generate and benchmark_args.get("slo_ttft_ms") is None and benchmark_args.get(
            "slo_tpot_ms") is None:
        raise ValueError("tune(..., scenario='generate') ranks by goodput, the requests that "
                         "meet the SLOs: give slo_ttft_ms= and/or slo_tpot_ms=")
    server: dict[str, Any] = {"scenario": scenario, "target_qps": target_qps}
    if scenario == "server":
        server.update(p99_ms=p99_ms, target_qps="max" if target_qps is None else target_qps)
    reports = benchmark(model, inputs, batch_sizes=batch_sizes, n_models=n_models,
                        workers_per_model=workers_per_model, **server, **benchmark_args)
    return tuning_of(reports, p99_ms)
