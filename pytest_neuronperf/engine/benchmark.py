"""The library entry point shaped like NeuronPerf: ``benchmark`` a model over a config grid."""

from __future__ import annotations

import inspect
import logging
import multiprocessing
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pytest_neuronperf import evaluation
from pytest_neuronperf.devices import DeviceBackend, get_backend
from pytest_neuronperf.engine import datasets, generation, grid, serving
from pytest_neuronperf.engine.instances import ship_instance
from pytest_neuronperf.engine.model_ref import (
    ModelReferenceError,
    describe_model,
    portable_function,
)
from pytest_neuronperf.engine.paired import PairedRequest, plan_base, run_paired_configuration
from pytest_neuronperf.engine.processes import process_context
from pytest_neuronperf.engine.progress import Estimate, Progress, ProgressCallback, log_progress
from pytest_neuronperf.engine.runner import Job, base_report, error_report, run_configuration
from pytest_neuronperf.engine.specs import CopyOptions, Endpoint, ModelSource
from pytest_neuronperf.frameworks import ADAPTERS, casts, infer_framework, to_portable
from pytest_neuronperf.frameworks.base import leading_dim
from pytest_neuronperf.logs import console
from pytest_neuronperf.model_index import read_model_index, resolve_artifact
from pytest_neuronperf.reporting.tables import printable
from pytest_neuronperf.reports import DEFAULT_CAST_MODE, config_label

log = logging.getLogger("pytest_neuronperf")


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

    NeuronPerf's arguments, in its order (see README "NeuronPerf's API"): ``model`` is a
    top-level class or zero-argument factory, a model instance with trained weights (saved once
    and loaded by every copy; its class must be importable), a saved artifact path, or a model
    index written by ``compile``. ``inputs`` is one array/tensor, a tuple for a multi-input
    model, a list with one of those per batch size, or a dataset (a torch ``Dataset`` or any
    iterable of samples, batched per batch size: ``engine.datasets``). ``cast_modes`` (fp32,
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

    ``scenario="generate"`` times every token of generated outputs (``engine.generation``):
    ``model`` is a transformers causal LM (class or factory), a callable that returns an iterator
    of tokens, or an ``Endpoint`` (a served OpenAI-compatible model); ``inputs`` the prompts;
    ``output_tokens`` the length of each output (exactly, unless ``ignore_eos=False``);
    ``slo_ttft_ms`` / ``slo_tpot_ms`` define a good request for ``goodput``; ``target_qps``
    makes it an open loop of Poisson arrivals.
    """
    generate = generation.check_settings(scenario, model, inputs, output_tokens, slo_ttft_ms,
                                         slo_tpot_ms, ignore_eos)
    if generate is not None:
        refuse_with_generate(preprocess_fn=preprocess_fn, postprocess_fn=postprocess_fn,
                             dataset_loader_fn=dataset_loader_fn, eval_metrics=eval_metrics,
                             dynamic_batch_size=dynamic_batch_size, return_timers=return_timers)
    # a list is one example per batch size, unless what else is asked says it is data
    dataset = generate is None and (datasets.is_dataset(inputs) or (isinstance(inputs, list) and (
        dataset_loader_fn is not None or bool(eval_metrics))))
    if dataset and duration == 0:  # NeuronPerf: duration=0 runs untimed through the data
        loop_dataset = False
    single_pass = dataset and not loop_dataset
    grid.positive_number("duration", duration, allow_zero=single_pass)
    if not dataset:  # a generator is data (batched below); inside an example it cannot travel
        refuse_generators(inputs)
    if warmup != "auto":
        grid.positive_number("warmup (or 'auto')", warmup, allow_zero=True)
    if timeout is not None:
        grid.positive_number("timeout", timeout)
    grid.positive_number("stats_interval", stats_interval)
    if cost_per_hour is not None:
        grid.positive_number("cost_per_hour", cost_per_hour, allow_zero=True)
    metrics = evaluation.metric_names(eval_metrics)
    if metrics and not dataset:
        raise ValueError(
            "eval_metrics needs labelled data: pass inputs= a dataset of (*inputs, target) "
            "samples (a torch Dataset or any iterable), not a single example"
        )
    adapters = {**ADAPTERS, **(adapters or {})}
    rates = serving.check_settings(scenario, target_qps, p99_ms, max_queue_delay_ms)
    server = None if rates is None else serving.ServerSettings(seed, max_queue_delay_ms, p99_ms)
    backend = get_backend(DEVICE_ALIASES.get(device_type, device_type), devices)
    usable = checked_cores(cores) if cores is not None else backend.cores()
    if not usable:
        raise ValueError(f"no {backend.name} cores are available to benchmark on")
    in_process = not multiprocess and not multiinterpreter
    functions = {
        what: portable_function(fn, what, in_process)
        for fn, what in ((preprocess_fn, "preprocess_fn"), (postprocess_fn, "postprocess_fn"),
                         (env_setup_fn, "env_setup_fn"), (setup_fn, "setup_fn"),
                         (dataset_loader_fn, "dataset_loader_fn"))
    }

    plans = (plan_endpoint(model, batch_sizes, pipeline_sizes, model_name, cast_modes)
             if isinstance(model, Endpoint) else
             plan_sources(model, batch_sizes, pipeline_sizes, model_name, cast_modes,
                          dynamic_batch_size))
    if paired is not None:
        paired = paired.with_seed()
        base_plan = plan_base(paired, batch_sizes, pipeline_sizes, model_name)
    check_framework(model, framework)
    portable = datasets.portable_dataset(inputs) if dataset else to_portable(inputs)
    framework = framework or plans.framework or infer_framework(model, portable)
    if framework is None and generate is not None:
        framework = "python"  # a factory or a callable of tokens: any object it builds is run
    if framework is None:
        raise ValueError(
            "cannot tell the framework from this model and these inputs: pass "
            "framework='torch', 'tensorflow' or 'python'"
        )
    if framework not in adapters:
        raise ValueError(f"unknown framework {framework!r}: choose one of {', '.join(adapters)}")
    per_batch = ({size: None for size in plans.batch_sizes} if dataset or generate
                 else inputs_for_plan(portable, plans))
    context = (multiprocessing.get_context("spawn") if multiinterpreter
               else process_context(framework, generative=generate is not None))
    log_dir = Path(tempfile.mkdtemp(prefix="neuronperf-logs-"))
    reports: list[Any] = []
    announce = progress or log_progress
    with console(verbosity):
        try:
            planned_jobs = []
            for planned in plans.sources:
                source = ship_instance(model, planned.source, framework, log_dir / "model")
                if planned.load_casts:
                    casts.check_casts(framework, source.kind, source.compiler, planned.cast_modes,
                                      backend.name)
                job = Job(
                    model=source,
                    framework=framework,
                    adapter=adapters[framework],
                    device=backend,
                    cores=usable,
                    duration=float(duration),
                    warmup=warmup,
                    timeout=timeout,
                    log_dir=log_dir,
                    preprocess_fn=functions["preprocess_fn"],
                    postprocess_fn=functions["postprocess_fn"],
                    return_timers=return_timers,
                    options=CopyOptions(
                        env_setup_fn=functions["env_setup_fn"], setup_fn=functions["setup_fn"],
                        dataset=portable if dataset else None,
                        dataset_loader_fn=functions["dataset_loader_fn"], loop_dataset=loop_dataset,
                        eval_metrics=metrics, eval_target_col=eval_target_col,
                        stats_interval=float(stats_interval), split_batch=planned.split_batch,
                        cast_stage="load" if planned.load_casts else planned.cast_stage,
                    ),
                    cost_per_hour=cost_per_hour,
                    in_process=in_process,
                    server=server,
                    generate=generate,
                )
                planned_jobs += [(job, planned, config) for config in serving.with_rates(
                    rates, grid.expand(planned.batch_sizes,
                                       n_models if n_models is not None else [1, "max"],
                                       workers_per_model, planned.pipeline_sizes, len(usable),
                                       planned.cast_modes))]
            estimate = Estimate(len(planned_jobs), float(duration))
            errors = ErrorLog()
            for position, (job, planned, config) in enumerate(planned_jobs, 1):
                if planned.failure is not None:  # its compile failed: nothing to measure
                    report: Any = error_report(job, config, planned.failure)
                else:
                    announce(Progress(planned.source.name, position, len(planned_jobs),
                                      config.label(), estimate.start(position)))
                    if paired is not None:
                        base_source, base_failure = base_plan.source_for(config)
                        report = run_paired_configuration(
                            context, job, base_source, config, per_batch[config.batch_size],
                            paired, base_failure)
                    elif config.target_qps == "max":
                        from pytest_neuronperf.engine.max_qps import measure_max_qps

                        report = measure_max_qps(context, job, config, per_batch[config.batch_size])
                    else:
                        report = run_configuration(context, job, config,
                                                   per_batch[config.batch_size])
                    estimate.finish()
                # an error has no timers; a server-scenario report carries its own (per query)
                if return_timers and isinstance(report, dict) and report["status"] != "ok":
                    report = (base_report(job, config),
                              {"status": "error", "error": report["error"]})
                errors.outcome(report[1] if isinstance(report, tuple) else report)
                reports.append(report)
            errors.close()
        finally:
            shutil.rmtree(log_dir, ignore_errors=True)
    return reports


def refuse_with_generate(**arguments: Any) -> None:
    """Arguments of the call loop that the generate scenario has no use for: said at once."""
    for name, value in arguments.items():
        if value:
            raise ValueError(f"{name} does not apply to scenario='generate' (a request is a "
                             f"prompt and its token stream): leave it out")


def plan_endpoint(endpoint: Endpoint, batch_sizes: Any, pipeline_sizes: Any,
                  model_name: str | None, cast_modes: Any) -> SourcePlan:
    """A served model: one source, measured by client copies (``framework="endpoint"``)."""
    sizes = grid.sizes("batch_sizes", batch_sizes)
    if sizes != [1]:
        raise ValueError("an Endpoint batches requests on the server: use batch_sizes=1 and "
                         "workers_per_model (concurrent requests per copy) or target_qps")
    if cast_modes not in (None, DEFAULT_CAST_MODE, [DEFAULT_CAST_MODE]):
        raise ValueError("cast_modes does not apply to an Endpoint: the server sets precision")
    source = PlannedSource(generation.endpoint_source(endpoint, model_name), sizes,
                           grid.sizes("pipeline_sizes", pipeline_sizes), load_casts=False,
                           cast_stage="none")
    return SourcePlan([source], sizes, "endpoint")


DEVICE_ALIASES = {"gpu": "cuda"}
"""NeuronPerf's device names that are spelled otherwise here."""


def check_framework(model: Any, framework: str | None) -> None:
    """An explicit torch/tensorflow ``framework`` must not contradict what the model is."""
    if framework not in ("torch", "tensorflow") or isinstance(model, str | Path):
        return
    actual = infer_framework(model, None)
    if actual is not None and actual != framework:
        raise ValueError(
            f"{getattr(model, '__qualname__', model)!r} is a {actual} model but "
            f"framework={framework!r}: pass framework={actual!r} or leave it out"
        )


def checked_cores(cores: Sequence[int]) -> list[int]:
    """``cores=`` as given: distinct device units (a repeated one would be shared by copies)."""
    values = list(cores)
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"cores must be device unit numbers (ints >= 0), got {value!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"cores lists a unit twice ({values}); copies would share it")
    return values


class ErrorLog:
    """One line per configuration's outcome; an error that repeats is said once, with a count
    at the end, instead of once per configuration."""

    def __init__(self) -> None:
        self._repeats: dict[str, int] = {}

    def outcome(self, report: dict[str, Any]) -> None:
        """Log one configuration's outcome (nothing yet for return_timers' raw results)."""
        if "throughput_avg" not in report and report.get("status") == "ok":
            return
        if report["status"] == "ok":
            log.info("  throughput %.1f/s, p50 %.3f ms, p99 %.3f ms", report["throughput_avg"],
                     report["latency_ms_p50"], report["latency_ms_p99"])
            return
        first = (report.get("error") or "no reason given").strip().splitlines()
        line = printable(first[-1] if first else "no reason given")  # a traceback's last line
        if line in self._repeats:
            self._repeats[line] += 1
            return
        self._repeats[line] = 1
        log.warning("error in %s: %s", config_label(report), line)

    def close(self) -> None:
        """Say how often each repeated error happened."""
        for line, count in self._repeats.items():
            if count > 1:
                log.warning("the same error in %d more configuration(s): %s", count - 1, line)


@dataclass(frozen=True)
class PlannedSource:
    """One model or artifact, the sizes it serves, and why it cannot run if its compile failed."""

    source: ModelSource
    batch_sizes: list[int]
    pipeline_sizes: list[int]
    failure: str | None = None
    cast_modes: list[str] = field(default_factory=lambda: [DEFAULT_CAST_MODE])
    load_casts: bool = True
    """True: each copy casts at load; False: the artifact was compiled in its cast."""
    cast_stage: str = "load"
    """``load`` (cast model and inputs in the copy), ``inputs`` (a cast artifact: only its
    inputs) or ``none`` (Neuron artifacts cast inside)."""
    split_batch: int | None = None
    """Dynamic batching: the compiled batch size each user batch is split into."""


@dataclass(frozen=True)
class SourcePlan:
    """Which artifact serves which (batch size, pipeline size)."""

    sources: list[PlannedSource]
    batch_sizes: list[int]
    framework: str | None
    index_batch_sizes: list[int] = field(default_factory=list)
    """Every batch size of a model index, in order, filtered or not: NeuronPerf's inputs list
    has one example per compiled input (``input_idx``), even for sizes a filter leaves out."""


def inputs_for_plan(inputs: Any, plans: SourcePlan) -> dict[int, Any]:
    """The example of each batch size to run; a list may match every size of the index."""
    if (isinstance(inputs, list) and plans.index_batch_sizes
            and len(inputs) == len(plans.index_batch_sizes) != len(plans.batch_sizes)
            and set(plans.batch_sizes) <= set(plans.index_batch_sizes)):
        every = inputs_per_batch(inputs, plans.index_batch_sizes)
        return {size: every[size] for size in plans.batch_sizes}
    return inputs_per_batch(inputs, plans.batch_sizes)


def plan_sources(
    model: Any,
    batch_sizes: int | Sequence[int] | None,
    pipeline_sizes: int | Sequence[int] | None,
    model_name: str | None,
    cast_modes: Any = None,
    dynamic_batch_size: bool = False,
) -> SourcePlan:
    """One source for a class or artifact; one per finished configuration of a model index."""
    index = read_model_index(Path(model)) if isinstance(model, str | Path) else None
    if index is None:
        if dynamic_batch_size:
            raise ValueError(
                "dynamic_batch_size=True splits user batches to fit a compiled batch size, which "
                "only a model index records: pass the index compile wrote (a class or eager "
                "model takes any batch size as it is)"
            )
        sizes = grid.sizes("batch_sizes", batch_sizes)
        pipelines = grid.sizes("pipeline_sizes", pipeline_sizes)
        source = PlannedSource(describe_model(model, model_name), sizes, pipelines,
                               cast_modes=grid.cast_mode_list(cast_modes))
        return SourcePlan([source], sizes, None)
    return plan_index(Path(model), index, batch_sizes, pipeline_sizes, model_name, cast_modes,
                      dynamic_batch_size)


def plan_index(
    path: Path,
    index: dict[str, Any],
    batch_sizes: int | Sequence[int] | None,
    pipeline_sizes: int | Sequence[int] | None,
    model_name: str | None,
    cast_modes: Any = None,
    dynamic_batch_size: bool = False,
) -> SourcePlan:
    """Sources for the configurations of an index, filtered by the given sizes and casts.

    A configuration whose compile failed stays in the plan with its reason, so that it gives
    ``status: error`` reports instead of silently dropping out. With ``dynamic_batch_size``,
    ``batch_sizes`` are the user's batches: each is served by the largest compiled batch size
    that divides it.
    """
    if dynamic_batch_size and batch_sizes is None:
        raise ValueError("dynamic_batch_size=True needs batch_sizes= the user batch sizes to run")
    user_sizes = grid.sizes("batch_sizes", batch_sizes) if dynamic_batch_size else None
    want_sizes = None if dynamic_batch_size else filter_of("batch_sizes", batch_sizes)
    want_pipes = filter_of("pipeline_sizes", pipeline_sizes)
    want_casts = None if cast_modes is None else set(grid.cast_mode_list(cast_modes))
    name = model_name or index.get("model_name") or path.stem
    planned = []
    for position, entry in enumerate(index["model_configs"]):
        batch_size, pipeline_size, artifact = index_entry(path, position, entry)
        cast = entry.get("cast_mode") or DEFAULT_CAST_MODE
        if want_sizes is not None and batch_size not in want_sizes:
            continue
        if want_pipes is not None and pipeline_size not in want_pipes:
            continue
        if want_casts is not None and cast not in want_casts:
            continue
        failure = None
        if entry.get("status") != "ok":
            failure = printable(  # the index's text is shown at a terminal: no escapes
                f"compile failed ({entry.get('compiler')}, model index {str(path)!r}): "
                f"{entry.get('error') or 'no reason recorded'}")
        source = ModelSource(
            kind="path", name=name, filename=str(artifact or path), path=str(artifact or path),
            compiler=entry.get("compiler"),
        )
        stage = ("inputs" if cast in ("fp16", "bf16")
                 and entry.get("compiler") not in ("neuron", "neuronx") else "none")
        served = [batch_size] if user_sizes is None else [
            u for u in user_sizes if u % batch_size == 0]
        if served:
            planned.append(PlannedSource(
                source, served, [pipeline_size], failure, [cast], load_casts=False,
                cast_stage=stage, split_batch=batch_size if user_sizes is not None else None))
    if user_sizes is not None:
        planned = largest_divisors(path, planned, user_sizes)
    if not planned:
        found = sorted({(e.get("batch_size"), e.get("pipeline_size"))
                        for e in index["model_configs"] if isinstance(e, dict)})
        raise ModelReferenceError(
            f"model index {str(path)!r} has no configuration matching "
            f"batch_sizes={batch_sizes!r} pipeline_sizes={pipeline_sizes!r} "
            f"cast_modes={cast_modes!r}; it has (batch size, pipeline size) {found or 'none'}"
        )
    sizes = list(dict.fromkeys(b for p in planned for b in p.batch_sizes))
    every: list[int] = list(dict.fromkeys(
        e["batch_size"] for e in index["model_configs"]
        if isinstance(e, dict) and isinstance(e.get("batch_size"), int)))
    return SourcePlan(planned, sizes, index.get("framework"), every)


def largest_divisors(path: Path, planned: list[PlannedSource],
                     user_sizes: list[int]) -> list[PlannedSource]:
    """Dynamic batching: each user batch (per pipeline size and cast) goes to the largest
    compiled batch size that divides it; a user batch nothing divides is refused."""
    best: dict[tuple[int, int, str], PlannedSource] = {}
    for plan in planned:
        for size in plan.batch_sizes:
            key = (size, plan.pipeline_sizes[0], plan.cast_modes[0])
            if key not in best or (plan.split_batch or 0) > (best[key].split_batch or 0):
                best[key] = plan
    missing = [u for u in user_sizes if not any(k[0] == u for k in best)]
    if missing:
        compiled = sorted({p.split_batch for p in planned if p.split_batch})
        raise ModelReferenceError(
            f"dynamic batching: batch sizes {missing} are not multiples of any batch size "
            f"compiled in model index {str(path)!r} ({compiled or 'none'})"
        )
    result = []
    for plan in planned:
        mine = [k[0] for k, chosen in best.items() if chosen is plan]
        if mine:
            result.append(replace(plan, batch_sizes=mine))
    return result


def filter_of(name: str, values: int | Sequence[int] | None) -> set[int] | None:
    """The sizes a filter over an index keeps (None keeps all)."""
    if values is None:
        return None
    return set(grid.sizes(name, values))


def index_entry(path: Path, position: int, entry: Any) -> tuple[int, int, Path | None]:
    """(batch size, pipeline size, artifact path) of one index entry, or a clear refusal."""
    where = f"model index {str(path)!r}, model_configs[{position}]"
    if not isinstance(entry, dict):
        raise ModelReferenceError(f"{where} is not an object: compile the model again")
    sizes = []
    for key in ("batch_size", "pipeline_size"):
        value = entry.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ModelReferenceError(
                f"{where} has {key}={value!r}; expected a positive integer: compile again")
        sizes.append(value)
    filename = entry.get("filename")
    if entry.get("status") == "ok" and not isinstance(filename, str):
        raise ModelReferenceError(f"{where} is ok but names no artifact file: compile again")
    artifact = resolve_artifact(path, filename) if isinstance(filename, str) else None
    return sizes[0], sizes[1], artifact


def refuse_generators(inputs: Any) -> None:
    """A generator cannot be sent to a model process (it does not pickle): say so at once."""
    values = inputs if isinstance(inputs, tuple | list) else ()
    where = [("inputs", inputs), *((f"inputs[{i}]", v) for i, v in enumerate(values))]
    for name, value in where:
        if inspect.isgenerator(value) or inspect.isasyncgen(value):
            raise ValueError(
                f"{name} is a generator, which cannot be sent to a model process: pass an array "
                f"or tensor, a tuple of them for a multi-input model, or a list with one per "
                f"batch size (list(...) of the generator, if it yields those)")


def inputs_per_batch(inputs: Any, batch_sizes: list[int]) -> dict[int, Any]:
    """The example for each batch size; checks that leading dimensions are 1 or the batch size."""
    if isinstance(inputs, list):
        if len(inputs) != len(batch_sizes):
            raise ValueError(
                f"inputs is a list of {len(inputs)} examples but there are {len(batch_sizes)} "
                f"batch sizes {batch_sizes}: pass one example per batch size, a single example "
                f"with leading dimension 1, or a tuple for a multi-input model"
            )
        chosen = dict(zip(batch_sizes, inputs, strict=True))
    else:
        chosen = {size: inputs for size in batch_sizes}
    for size, example in chosen.items():
        values = example if isinstance(example, tuple) else (example,)
        for position, value in enumerate(values):
            dim = leading_dim(value)
            if dim is not None and dim not in (1, size):
                raise ValueError(
                    f"input {position} has leading dimension {dim}, which is neither 1 (expanded "
                    f"to each batch size) nor the batch size {size}"
                )
    return chosen
