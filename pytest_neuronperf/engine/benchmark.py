"""The library entry point shaped like NeuronPerf: ``benchmark`` a model over a config grid."""

from __future__ import annotations

import inspect
import logging
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_neuronperf.devices import DeviceBackend, get_backend
from pytest_neuronperf.engine import grid
from pytest_neuronperf.engine.model_ref import (
    ModelReferenceError,
    describe_model,
    importable_name,
)
from pytest_neuronperf.engine.processes import process_context
from pytest_neuronperf.engine.runner import Job, error_report, run_configuration
from pytest_neuronperf.engine.specs import ModelSource
from pytest_neuronperf.frameworks import ADAPTERS, infer_framework, to_portable
from pytest_neuronperf.frameworks.base import leading_dim
from pytest_neuronperf.model_index import read_model_index
from pytest_neuronperf.reporting.tables import printable

log = logging.getLogger("pytest_neuronperf")

VERBOSITY_LEVELS = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}


def benchmark(
    model: Any,
    inputs: Any,
    batch_sizes: int | Sequence[int] | None = None,
    n_models: int | str | Sequence[int | str] | None = None,
    workers_per_model: int | Sequence[int] | None = None,
    pipeline_sizes: int | Sequence[int] | None = None,
    duration: float = grid.DEFAULT_DURATION_S,
    warmup: float | str = "auto",
    preprocess_fn: Callable[..., Any] | None = None,
    postprocess_fn: Callable[..., Any] | None = None,
    return_timers: bool = False,
    verbosity: int = 1,
    device_type: str = "auto",
    framework: str | None = None,
    timeout: float | None = None,
    cores: Sequence[int] | None = None,
    model_name: str | None = None,
    devices: dict[str, DeviceBackend] | None = None,
    adapters: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Benchmark ``model`` on every configuration; one report per configuration.

    ``model`` is a top-level class or zero-argument factory, a saved artifact path, or a model
    index written by ``compile``. ``inputs`` is one array/tensor, a tuple for a multi-input model,
    or a list with one of those per batch size. ``cores`` restricts the device units used (the
    pytest plugin passes each xdist worker's slice). ``devices`` and ``adapters`` add custom
    device backends and framework adapters (``name -> "module:attribute"``).
    """
    log.setLevel(VERBOSITY_LEVELS.get(verbosity, logging.DEBUG))
    refuse_generators(inputs)
    grid.positive_number("duration", duration)
    if warmup != "auto":
        grid.positive_number("warmup (or 'auto')", warmup, allow_zero=True)
    if timeout is not None:
        grid.positive_number("timeout", timeout)
    adapters = {**ADAPTERS, **(adapters or {})}
    backend = get_backend(device_type, devices)
    usable = checked_cores(cores) if cores is not None else backend.cores()
    if not usable:
        raise ValueError(f"no {backend.name} cores are available to benchmark on")
    for fn, what in ((preprocess_fn, "preprocess_fn"), (postprocess_fn, "postprocess_fn")):
        if fn is not None:
            importable_name(fn, what)

    plans = plan_sources(model, batch_sizes, pipeline_sizes, model_name)
    check_framework(model, framework)
    framework = framework or plans.framework or infer_framework(model, inputs)
    if framework is None:
        raise ValueError(
            "cannot tell the framework from this model and these inputs: pass "
            "framework='torch', 'tensorflow' or 'python'"
        )
    if framework not in adapters:
        raise ValueError(f"unknown framework {framework!r}: choose one of {', '.join(adapters)}")

    per_batch = inputs_per_batch(to_portable(inputs), plans.batch_sizes)
    context = process_context(framework)
    log_dir = Path(tempfile.mkdtemp(prefix="neuronperf-logs-"))
    reports: list[dict[str, Any]] = []
    try:
        for planned in plans.sources:
            job = Job(
                model=planned.source,
                framework=framework,
                adapter=adapters[framework],
                device=backend,
                cores=usable,
                duration=float(duration),
                warmup=warmup,
                timeout=timeout,
                log_dir=log_dir,
                preprocess_fn=preprocess_fn,
                postprocess_fn=postprocess_fn,
                return_timers=return_timers,
            )
            for config in grid.expand(planned.batch_sizes,
                                      n_models if n_models is not None else [1, "max"],
                                      workers_per_model, planned.pipeline_sizes, len(usable)):
                if planned.failure is not None:  # its compile failed: nothing to measure
                    report = error_report(job, config, planned.failure)
                else:
                    log.info("benchmarking %s: %s", planned.source.name, config.label())
                    report = run_configuration(context, job, config,
                                               per_batch[config.batch_size])
                log_outcome(report)
                reports.append(report)
    finally:
        shutil.rmtree(log_dir, ignore_errors=True)
    return reports


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


def log_outcome(report: dict[str, Any]) -> None:
    """One progress line per configuration."""
    if report["status"] == "ok":
        log.info("  throughput %.1f/s, p50 %.3f ms, p99 %.3f ms", report["throughput_avg"],
                 report["latency_ms_p50"], report["latency_ms_p99"])
    else:
        log.warning("  error: %s", report["error"].splitlines()[0])


@dataclass(frozen=True)
class PlannedSource:
    """One model or artifact, the sizes it serves, and why it cannot run if its compile failed."""

    source: ModelSource
    batch_sizes: list[int]
    pipeline_sizes: list[int]
    failure: str | None = None


@dataclass(frozen=True)
class SourcePlan:
    """Which artifact serves which (batch size, pipeline size)."""

    sources: list[PlannedSource]
    batch_sizes: list[int]
    framework: str | None


def plan_sources(
    model: Any,
    batch_sizes: int | Sequence[int] | None,
    pipeline_sizes: int | Sequence[int] | None,
    model_name: str | None,
) -> SourcePlan:
    """One source for a class or artifact; one per finished configuration of a model index."""
    index = read_model_index(Path(model)) if isinstance(model, str | Path) else None
    if index is None:
        sizes = grid.sizes("batch_sizes", batch_sizes)
        pipelines = grid.sizes("pipeline_sizes", pipeline_sizes)
        return SourcePlan([PlannedSource(describe_model(model, model_name), sizes, pipelines)],
                          sizes, None)
    return plan_index(Path(model), index, batch_sizes, pipeline_sizes, model_name)


def plan_index(
    path: Path,
    index: dict[str, Any],
    batch_sizes: int | Sequence[int] | None,
    pipeline_sizes: int | Sequence[int] | None,
    model_name: str | None,
) -> SourcePlan:
    """Sources for the configurations of an index, filtered by the given sizes.

    A configuration whose compile failed stays in the plan with its reason, so that it gives
    ``status: error`` reports instead of silently dropping out.
    """
    want_sizes = filter_of("batch_sizes", batch_sizes)
    want_pipes = filter_of("pipeline_sizes", pipeline_sizes)
    name = model_name or index.get("model_name") or path.stem
    planned = []
    for position, entry in enumerate(index["model_configs"]):
        batch_size, pipeline_size, artifact = index_entry(path, position, entry)
        if want_sizes is not None and batch_size not in want_sizes:
            continue
        if want_pipes is not None and pipeline_size not in want_pipes:
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
        planned.append(PlannedSource(source, [batch_size], [pipeline_size], failure))
    if not planned:
        found = sorted({(e.get("batch_size"), e.get("pipeline_size"))
                        for e in index["model_configs"] if isinstance(e, dict)})
        raise ModelReferenceError(
            f"model index {str(path)!r} has no configuration matching "
            f"batch_sizes={batch_sizes!r} pipeline_sizes={pipeline_sizes!r}; it has "
            f"(batch size, pipeline size) {found or 'none'}"
        )
    sizes = list(dict.fromkeys(b for p in planned for b in p.batch_sizes))
    return SourcePlan(planned, sizes, index.get("framework"))


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
    artifact = None
    if isinstance(filename, str):
        artifact = Path(filename)
        if not artifact.is_absolute():
            artifact = path.parent / artifact
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
