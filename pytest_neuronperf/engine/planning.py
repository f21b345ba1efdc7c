"""Planning a ``benchmark`` call before anything runs: the request's arguments checked once,
which model or artifact serves which configuration (a model index's entries, dynamic
batching, the paired base side) and the example each batch size runs (:func:`plan`)."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pytest_neuronperf import evaluation
from pytest_neuronperf.devices import DeviceBackend, get_backend
from pytest_neuronperf.engine import generation, grid, serving
from pytest_neuronperf.engine.grid import RunConfig
from pytest_neuronperf.engine.inputs import is_dataset, portable_dataset
from pytest_neuronperf.engine.model_ref import describe_model, portable_function
from pytest_neuronperf.engine.paired import MIN_ROUNDS, SLICE_S, PairedRequest
from pytest_neuronperf.engine.request import BenchmarkRequest
from pytest_neuronperf.frameworks import ADAPTERS, infer_framework, to_portable
from pytest_neuronperf.frameworks.base import leading_dim
from pytest_neuronperf.logs import printable
from pytest_neuronperf.model_index import read_model_index, resolve_artifact
from pytest_neuronperf.protocol.specs import Endpoint, ModelReferenceError, ModelSource
from pytest_neuronperf.reports import DEFAULT_CAST_MODE

DEVICE_ALIASES = {"gpu": "cuda"}
"""NeuronPerf's device names that are spelled otherwise here."""


FUNCTIONS = ("preprocess_fn", "postprocess_fn", "env_setup_fn", "setup_fn", "dataset_loader_fn")
"""The request's functions that travel to the model copies (by name or by value)."""


@dataclass(frozen=True)
class Plan:
    """A checked request: everything the engine needs, decided before any process starts."""

    request: BenchmarkRequest
    dataset: bool
    """``inputs`` is a dataset that each copy batches (else one example per batch size)."""
    loop_dataset: bool
    metrics: tuple[str, ...]
    """The accuracy metrics to compute (``eval_metrics``, canonical names)."""
    rates: list[float | str] | None
    """The server scenario's offered rates; None: the closed loop."""
    server: serving.ServerSettings | None
    backend: DeviceBackend
    cores: list[int]
    in_process: bool
    functions: dict[str, Any]
    """``FUNCTIONS`` as they reach a model copy (see ``portable_function``)."""
    sources: SourcePlan
    paired: PairedRequest | None
    """The paired request with its seed drawn; None: not paired."""
    base: BasePlan | None
    framework: str
    adapter: str
    """``module:attr`` of the framework's adapter."""
    inputs: Any
    """What travels to the copies: the dataset, or the portable example(s)."""
    per_batch: dict[int, Any]
    """Batch size -> its example (None for a dataset, or the generate scenario's prompts)."""
    generate: generation.GenerateSettings | None = None
    """The generate scenario's prompts, output lengths and SLOs; None: calls."""


def plan(request: BenchmarkRequest) -> Plan:
    """Check ``request`` and decide what runs where; raises ValueError (one sentence) on a bad
    argument, before any process starts."""
    r = request
    generate = generation.check_settings(r.scenario, r.model, r.inputs, r.output_tokens,
                                         r.slo_ttft_ms, r.slo_tpot_ms, r.ignore_eos)
    if generate is not None:
        refuse_with_generate(preprocess_fn=r.preprocess_fn, postprocess_fn=r.postprocess_fn,
                             dataset_loader_fn=r.dataset_loader_fn, eval_metrics=r.eval_metrics,
                             dynamic_batch_size=r.dynamic_batch_size,
                             return_timers=r.return_timers)
    # a list is one example per batch size, unless what else is asked says it is data
    dataset = generate is None and (is_dataset(r.inputs) or (isinstance(r.inputs, list) and (
        r.dataset_loader_fn is not None or bool(r.eval_metrics))))
    # NeuronPerf: duration=0 runs untimed through the data
    loop_dataset = r.loop_dataset and not (dataset and r.duration == 0)
    grid.positive_number("duration", r.duration, allow_zero=dataset and not loop_dataset)
    if not dataset:  # a generator is data (batched below); inside an example it cannot travel
        refuse_generators(r.inputs)
    check_numbers(r)
    metrics = evaluation.metric_names(r.eval_metrics)
    if metrics and not dataset:
        raise ValueError(
            "eval_metrics needs labelled data: pass inputs= a dataset of (*inputs, target) "
            "samples (a torch Dataset or any iterable), not a single example"
        )
    adapters = {**ADAPTERS, **(r.adapters or {})}
    rates = serving.check_settings(r.scenario, r.target_qps, r.p99_ms, r.max_queue_delay_ms)
    serving.check_arrivals(rates, float(r.duration))
    server = (None if rates is None
              else serving.ServerSettings(r.seed, r.max_queue_delay_ms, r.p99_ms))
    backend = get_backend(DEVICE_ALIASES.get(r.device_type, r.device_type), r.devices)
    usable = checked_cores(r.cores) if r.cores is not None else backend.cores()
    if not usable:
        raise ValueError(f"no {backend.name} cores are available to benchmark on")
    in_process = not r.multiprocess and not r.multiinterpreter
    functions = {what: portable_function(getattr(r, what), what, in_process)
                 for what in FUNCTIONS}
    sources = (plan_endpoint(r.model, r.batch_sizes, r.pipeline_sizes, r.model_name,
                             r.cast_modes) if isinstance(r.model, Endpoint) else
               plan_sources(r.model, r.batch_sizes, r.pipeline_sizes, r.model_name,
                            r.cast_modes, r.dynamic_batch_size))
    paired = base = None
    if r.paired is not None:
        check_paired(r.paired, rates, in_process, float(r.duration))
        paired = r.paired.with_seed()
        base = plan_base(paired, r.batch_sizes, r.pipeline_sizes, r.model_name)
    check_framework(r.model, r.framework)
    portable = portable_dataset(r.inputs) if dataset else to_portable(r.inputs)
    framework = r.framework or sources.framework or infer_framework(r.model, portable)
    if framework is None and generate is not None:
        framework = "python"  # a factory or a callable of tokens: any object it builds is run
    if framework is None:
        raise ValueError(
            "cannot tell the framework from this model and these inputs: pass "
            "framework='torch', 'tensorflow' or 'python'"
        )
    if framework not in adapters:
        raise ValueError(f"unknown framework {framework!r}: choose one of {', '.join(adapters)}")
    per_batch = ({size: None for size in sources.batch_sizes} if dataset or generate
                 else inputs_for_plan(portable, sources))
    return Plan(r, dataset, loop_dataset, metrics, rates, server, backend, usable, in_process,
                functions, sources, paired, base, framework, adapters[framework], portable,
                per_batch, generate)


def check_numbers(request: BenchmarkRequest) -> None:
    """Warm-up, timeout, sampling interval and cost are positive numbers (or unset)."""
    if request.warmup != "auto":
        grid.positive_number("warmup (or 'auto')", request.warmup, allow_zero=True)
    if request.timeout is not None:
        grid.positive_number("timeout", request.timeout)
    grid.positive_number("stats_interval", request.stats_interval)
    if request.cost_per_hour is not None:
        grid.positive_number("cost_per_hour", request.cost_per_hour, allow_zero=True)


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


# -- which base artifact serves which configuration ------------------------------------------


@dataclass(frozen=True)
class BasePlan:
    """The base side's sources by (batch size, pipeline size), like the head's plan."""

    sources: dict[tuple[int, int], PlannedSource]
    """(batch size, pipeline size) -> its planned source."""
    single: PlannedSource | None = None
    """The one source of a class, factory or artifact (serves every configuration)."""

    def source_for(self, config: RunConfig) -> tuple[ModelSource | None, str | None]:
        """(the base source for ``config``, why there is none)."""
        planned = self.single or self.sources.get((config.batch_size, config.pipeline_size))
        if planned is None:
            if not self.sources:
                return None, None  # absent at the revision: the request says why
            return None, (f"the base model index has no configuration with batch size "
                          f"{config.batch_size} and pipeline size {config.pipeline_size}")
        if planned.failure is not None:
            return None, f"base side: {planned.failure}"
        return planned.source, None


def plan_base(request: PairedRequest, batch_sizes: Any, pipeline_sizes: Any,
              model_name: str | None) -> BasePlan:
    """Plan the base side's sources before anything runs (a bad base model is refused here)."""
    if request.absent is not None:
        return BasePlan({})
    model = request.base_model
    plan = plan_sources(model, batch_sizes, pipeline_sizes, model_name)
    is_index = isinstance(model, str | Path) and read_model_index(Path(model)) is not None
    if not is_index:
        return BasePlan({}, plan.sources[0])
    return BasePlan({(p.batch_sizes[0], p.pipeline_sizes[0]): p for p in plan.sources})


SERVER_NOT_PAIRED = ("scenario='server' is measured on the head alone: paired mode compares "
                     "closed-loop runs (each side's slices are closed-loop calls)")


def check_paired(paired: PairedRequest, rates: list[float | str] | None, in_process: bool,
                 duration: float) -> None:
    """Refuse, before anything starts, what a paired run cannot measure: ``compare()`` of the
    server scenario (``--neuronperf-against`` measures those configurations on the head alone),
    copies in this process (both sides would share one import of the model), and more rounds
    per launch pair than ``duration`` holds (one pair's slices of at least ``SLICE_S``)."""
    if rates is not None and paired.revision is None:
        shown = rates[0] if len(rates) == 1 else rates
        raise ValueError(
            f"compare() measures closed-loop runs only: scenario='server' (target_qps="
            f"{shown!r}) cannot be paired; compare the two models in the closed loop, or "
            f"benchmark each one's server scenario on its own")
    if in_process:
        raise ValueError(
            "paired runs need model processes: multiprocess=False would run both sides in this "
            "process, where they share one import of the model; leave multiprocess at True")
    most = max(MIN_ROUNDS, int(duration / SLICE_S * (1 + 1e-9)))
    if paired.rounds is not None and paired.rounds > most:
        raise ValueError(
            f"paired_rounds={paired.rounds} is too many for duration={duration:g} s per side: "
            f"one launch pair's {paired.rounds} slices of at least {SLICE_S:g} s would take "
            f"{paired.rounds * SLICE_S:g} s; use at most {most} rounds per pair or a longer "
            f"duration")


def not_paired(report: Any, paired: PairedRequest) -> Any:
    """A server-scenario report of a run against a revision: measured on the head alone (its
    own engine: a rate sweep or the ``max`` search), with the reason it has no comparison."""
    if isinstance(report, dict):
        report["paired"] = {"revision": paired.revision, "base_status": "unpaired",
                            "base_error": SERVER_NOT_PAIRED}
    return report
