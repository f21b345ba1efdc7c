"""The library entry point shaped like NeuronPerf: ``benchmark`` a model over a config grid."""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pytest_neuronperf import configs as grid
from pytest_neuronperf.devices import DeviceBackend, get_backend
from pytest_neuronperf.engine.processes import process_context
from pytest_neuronperf.engine.runner import Job, run_configuration
from pytest_neuronperf.frameworks import ADAPTERS, infer_framework, to_portable
from pytest_neuronperf.frameworks.base import leading_dim
from pytest_neuronperf.model_index import read_model_index
from pytest_neuronperf.model_ref import (
    ModelReferenceError,
    describe_model,
    importable_name,
)
from pytest_neuronperf.spec import ModelSource

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
    grid.positive_number("duration", duration)
    if warmup != "auto":
        grid.positive_number("warmup (or 'auto')", warmup, allow_zero=True)
    if timeout is not None:
        grid.positive_number("timeout", timeout)
    adapters = {**ADAPTERS, **(adapters or {})}
    backend = get_backend(device_type, devices)
    usable = list(cores) if cores is not None else backend.cores()
    if not usable:
        raise ValueError(f"no {backend.name} cores are available to benchmark on")
    for fn, what in ((preprocess_fn, "preprocess_fn"), (postprocess_fn, "postprocess_fn")):
        if fn is not None:
            importable_name(fn, what)

    plans = plan_sources(model, batch_sizes, pipeline_sizes, model_name)
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
        for source, source_batch_sizes, source_pipelines in plans.sources:
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
                preprocess_fn=preprocess_fn,
                postprocess_fn=postprocess_fn,
                return_timers=return_timers,
            )
            for config in grid.expand(source_batch_sizes,
                                      n_models if n_models is not None else [1, "max"],
                                      workers_per_model, source_pipelines, len(usable)):
                log.info("benchmarking %s: %s", source.name, config.label())
                report = run_configuration(context, job, config, per_batch[config.batch_size])
                log_outcome(report)
                reports.append(report)
    finally:
        shutil.rmtree(log_dir, ignore_errors=True)
    return reports


def log_outcome(report: dict[str, Any]) -> None:
    """One progress line per configuration."""
    if report["status"] == "ok":
        log.info("  throughput %.1f/s, p50 %.3f ms, p99 %.3f ms", report["throughput_avg"],
                 report["latency_ms_p50"], report["latency_ms_p99"])
    else:
        log.warning("  error: %s", report["error"].splitlines()[0])


class SourcePlan:
    """Which artifact serves which (batch size, pipeline size)."""

    def __init__(
        self,
        sources: list[tuple[ModelSource, list[int], list[int]]],
        batch_sizes: list[int],
        framework: str | None,
    ) -> None:
        self.sources = sources
        self.batch_sizes = batch_sizes
        self.framework = framework


def plan_sources(
    model: Any,
    batch_sizes: int | Sequence[int] | None,
    pipeline_sizes: int | Sequence[int] | None,
    model_name: str | None,
) -> SourcePlan:
    """One source for a class or artifact; one per finished configuration of a model index."""
    index = read_model_index(Path(model)) if isinstance(model, str | Path) else None
    if index is None:
        sizes = grid.positive_ints("batch_sizes", grid.as_list(batch_sizes or 1))
        pipelines = grid.positive_ints("pipeline_sizes", grid.as_list(pipeline_sizes or 1))
        return SourcePlan([(describe_model(model, model_name), sizes, pipelines)], sizes, None)
    return plan_index(Path(model), index, batch_sizes, pipeline_sizes, model_name)


def plan_index(
    path: Path,
    index: dict[str, Any],
    batch_sizes: int | Sequence[int] | None,
    pipeline_sizes: int | Sequence[int] | None,
    model_name: str | None,
) -> SourcePlan:
    """Sources for the finished configurations of an index, filtered by the given sizes."""
    want_sizes = set(grid.as_list(batch_sizes)) if batch_sizes is not None else None
    want_pipes = set(grid.as_list(pipeline_sizes)) if pipeline_sizes is not None else None
    sources = []
    for entry in index.get("model_configs", []):
        if entry.get("status") != "ok":
            continue
        if want_sizes is not None and entry["batch_size"] not in want_sizes:
            continue
        if want_pipes is not None and entry["pipeline_size"] not in want_pipes:
            continue
        artifact = Path(entry["filename"])
        if not artifact.is_absolute():
            artifact = path.parent / artifact
        name = model_name or index.get("model_name") or path.stem
        source = ModelSource(
            kind="path", name=name, filename=str(artifact), path=str(artifact),
            compiler=entry.get("compiler"),
        )
        sources.append((source, [entry["batch_size"]], [entry["pipeline_size"]]))
    if not sources:
        raise ModelReferenceError(
            f"model index {str(path)!r} has no finished configuration matching "
            f"batch_sizes={batch_sizes!r} pipeline_sizes={pipeline_sizes!r}"
        )
    sizes = list(dict.fromkeys(b for _, bs, _ in sources for b in bs))
    return SourcePlan(sources, sizes, index.get("framework"))


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
