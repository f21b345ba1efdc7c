"""Measure a ``benchmark`` request: plan it once, stage one job per planned source, then measure
every configuration in turn (closed loop, server scenario, ``max`` search or paired)."""

from __future__ import annotations

import multiprocessing
import shutil
import tempfile
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

from pytest_neuronperf.engine import grid, serving
from pytest_neuronperf.engine.grid import RunConfig
from pytest_neuronperf.engine.instances import ship_instance
from pytest_neuronperf.engine.max_qps import measure_max_qps
from pytest_neuronperf.engine.paired import run_paired_configuration
from pytest_neuronperf.engine.planning import Plan, PlannedSource, not_paired, plan
from pytest_neuronperf.engine.processes import process_context
from pytest_neuronperf.engine.progress import ErrorLog, Estimate, Progress, log_progress
from pytest_neuronperf.engine.request import BenchmarkRequest
from pytest_neuronperf.engine.runner import Job, base_report, error_report, run_configuration
from pytest_neuronperf.frameworks import casts
from pytest_neuronperf.logs import console
from pytest_neuronperf.protocol.specs import CopyOptions

StagedJob = tuple[Job, PlannedSource, RunConfig]
"""One configuration to measure, with the job (what every copy runs) and its planned source."""


def measure(request: BenchmarkRequest) -> list[Any]:
    """One report per configuration of ``request`` (or ``(config, results)`` pairs with
    ``return_timers``); a bad argument raises before any process starts."""
    return run_plan(plan(request))


def run_plan(planned: Plan) -> list[Any]:
    """Measure every configuration of a plan; model faults become ``status: error`` reports."""
    request = planned.request
    context = (multiprocessing.get_context("spawn") if request.multiinterpreter
               else process_context(planned.framework,
                                    generative=planned.generate is not None))
    log_dir = Path(tempfile.mkdtemp(prefix="neuronperf-logs-"))
    with console(request.verbosity):
        try:
            return measure_jobs(planned, context, stage_jobs(planned, log_dir))
        finally:
            shutil.rmtree(log_dir, ignore_errors=True)


def stage_jobs(planned: Plan, log_dir: Path) -> list[StagedJob]:
    """A job per planned source (a model instance saved for the copies first), and the grid
    of configurations it serves."""
    request = planned.request
    staged: list[StagedJob] = []
    for source_plan in planned.sources.sources:
        source = ship_instance(request.model, source_plan.source, planned.framework,
                               log_dir / "model")
        if source_plan.load_casts:
            casts.check_casts(planned.framework, source.kind, source.compiler,
                              source_plan.cast_modes, planned.backend.name)
        job = job_for(planned, source_plan, source, log_dir)
        configs = grid.expand(source_plan.batch_sizes,
                              request.n_models if request.n_models is not None else [1, "max"],
                              request.workers_per_model, source_plan.pipeline_sizes,
                              len(planned.cores), source_plan.cast_modes)
        staged += [(job, source_plan, config)
                   for config in serving.with_rates(planned.rates, configs)]
    return staged


def job_for(planned: Plan, source_plan: PlannedSource, source: Any, log_dir: Path) -> Job:
    """What every copy of one planned source runs."""
    request, functions = planned.request, planned.functions
    return Job(
        model=source,
        framework=planned.framework,
        adapter=planned.adapter,
        device=planned.backend,
        cores=planned.cores,
        duration=float(request.duration),
        warmup=request.warmup,
        timeout=request.timeout,
        log_dir=log_dir,
        preprocess_fn=functions["preprocess_fn"],
        postprocess_fn=functions["postprocess_fn"],
        return_timers=request.return_timers,
        options=CopyOptions(
            env_setup_fn=functions["env_setup_fn"], setup_fn=functions["setup_fn"],
            dataset=planned.inputs if planned.dataset else None,
            dataset_loader_fn=functions["dataset_loader_fn"], loop_dataset=planned.loop_dataset,
            eval_metrics=planned.metrics, eval_target_col=request.eval_target_col,
            stats_interval=float(request.stats_interval), split_batch=source_plan.split_batch,
            cast_stage="load" if source_plan.load_casts else source_plan.cast_stage,
        ),
        cost_per_hour=request.cost_per_hour,
        in_process=planned.in_process,
        server=planned.server,
        generate=planned.generate,
    )


def measure_jobs(planned: Plan, context: BaseContext, staged: list[StagedJob]) -> list[Any]:
    """Each staged configuration in turn, announced with the time left; its outcome logged."""
    request = planned.request
    announce = request.progress or log_progress
    estimate = Estimate(len(staged), float(request.duration))
    errors = ErrorLog()
    reports: list[Any] = []
    for position, (job, source_plan, config) in enumerate(staged, 1):
        if source_plan.failure is not None:  # its compile failed: nothing to measure
            report: Any = error_report(job, config, source_plan.failure)
        else:
            announce(Progress(source_plan.source.name, position, len(staged), config.label(),
                              estimate.start(position)))
            report = measure_configuration(planned, context, job, config, len(staged))
            estimate.finish()
        # an error has no timers; a server-scenario report carries its own (per query)
        if request.return_timers and isinstance(report, dict) and report["status"] != "ok":
            report = (base_report(job, config), {"status": "error", "error": report["error"]})
        errors.outcome(report[1] if isinstance(report, tuple) else report)
        reports.append(report)
    errors.close()
    return reports


def measure_configuration(planned: Plan, context: BaseContext, job: Job,
                          config: RunConfig, configurations: int = 1) -> Any:
    """One configuration (of ``configurations``): paired against its base, a ``max`` rate
    search, or one run."""
    inputs = planned.per_batch[config.batch_size]
    if planned.paired is not None and config.target_qps is None:
        assert planned.base is not None
        base_source, base_failure = planned.base.source_for(config)
        return run_paired_configuration(context, job, base_source, config, inputs,
                                        planned.paired, base_failure, configurations)
    if config.target_qps == "max":
        report = measure_max_qps(context, job, config, inputs)
    else:
        report = run_configuration(context, job, config, inputs)
    if planned.paired is not None:  # the server scenario under --neuronperf-against
        report = not_paired(report, planned.paired)
    return report
