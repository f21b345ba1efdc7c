"""Measure one configuration: start its copies, barrier, common window, collect, report."""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any, cast

import numpy as np

from pytest_neuronperf.devices.base import DeviceBackend, format_cores
from pytest_neuronperf.engine import interference, serving, token_summary
from pytest_neuronperf.engine.generation import GenerateSettings
from pytest_neuronperf.engine.grid import RunConfig
from pytest_neuronperf.engine.in_process import InProcessCopy
from pytest_neuronperf.engine.processes import ModelProcess
from pytest_neuronperf.engine.summary import NothingMeasured, resources, summarize
from pytest_neuronperf.engine.summary import error_report as summary_error
from pytest_neuronperf.engine.supervise import Deadline, ProcessLost, next_messages
from pytest_neuronperf.protocol import messages
from pytest_neuronperf.protocol.specs import CopyOptions, ImportRoot, ModelSource, WorkerSpec
from pytest_neuronperf.reports import Report, config_slug

log = logging.getLogger("pytest_neuronperf")

START_MARGIN_S = 0.025
"""Time between sending ``go`` and the common start, so every copy is waiting when it comes
(the copies already wait at the barrier: this covers one pipe message and a wake-up)."""
LOAD_TIMEOUT_FLOOR_S = 300.0


class ConfigurationFailed(Exception):
    """A copy raised, crashed, hung or sent garbage; the configuration reports ``error``."""


@dataclass(frozen=True)
class Job:
    """What is the same for every configuration of one ``benchmark`` call."""

    model: ModelSource
    framework: str
    adapter: str
    device: DeviceBackend
    cores: list[int]
    duration: float
    warmup: float | str
    timeout: float | None
    log_dir: Path
    preprocess_fn: Callable[..., Any] | None = None
    postprocess_fn: Callable[..., Any] | None = None
    return_timers: bool = False
    options: CopyOptions = field(default_factory=CopyOptions)
    """NeuronPerf's per-copy options; ``cast_mode`` and ``config`` are set per configuration."""
    cost_per_hour: float | None = None
    in_process: bool = False
    """``multiprocess=False``: copies run as threads of the caller's process (debugging)."""
    server: serving.ServerSettings | None = None
    """The server scenario's settings; None: the closed loop."""
    imports: ImportRoot | None = None
    """Where copies import the user's code from (a paired run's base tree); None: as usual."""
    side: str = ""
    """``base`` or ``head`` in a paired run (names log files and error messages)."""
    generate: GenerateSettings | None = None
    """The generate scenario's settings; None: calls, not token streams."""

    def timeout_for(self) -> float:
        """Seconds a configuration may take in all: generous unless the caller set it."""
        if self.timeout is not None:
            return self.timeout
        return LOAD_TIMEOUT_FLOOR_S + 3 * self.duration


def base_report(job: Job, config: RunConfig) -> Report:
    """The identifying keys every report carries, whatever its status."""
    report: Report = {
        "model_name": job.model.name,
        "model_filename": job.model.filename,
        "framework": job.framework,
        "device_type": job.device.name,
        "batch_size": config.batch_size,
        "n_models": config.n_models,
        "workers_per_model": config.workers_per_model,
        "pipeline_size": config.pipeline_size,
        "cast_mode": config.cast_mode,
        "duration": job.duration,
        "scenario": scenario_of(job, config),
    }
    if config.target_qps is not None:
        report["target_qps"] = config.target_qps
    return report


def scenario_of(job: Job, config: RunConfig) -> str:
    """``generate`` (token streams), ``server`` (an open loop of calls) or ``closed``."""
    if job.generate is not None:
        return "generate"
    return "closed" if config.target_qps is None else "server"


def error_report(job: Job, config: RunConfig, reason: str) -> Report:
    """A report for a configuration that could not be measured: metrics are null."""
    return summary_error(base_report(job, config), reason)


def copy_options(job: Job, config: RunConfig) -> CopyOptions:
    """The per-copy options of one configuration (its cast, and the config its hooks see)."""
    settings = {**base_report(job, config), "multiprocess": not job.in_process}
    return replace(job.options, cast_mode=config.cast_mode, config=settings)


def single_pass(job: Job) -> bool:
    """``loop_dataset=False``: each copy runs the data once; the pass is the window."""
    return job.options.dataset is not None and not job.options.loop_dataset


def run_configuration(
    context: BaseContext, job: Job, config: RunConfig, inputs: Any
) -> Report:
    """Measure one configuration; never raises for a model's fault (status ``error``)."""
    procs: list[Any] = []
    try:
        start_copies(context, job, config, inputs, procs)
        report: Report = measure(job, config, procs)
        return report
    except (ConfigurationFailed, NothingMeasured) as failure:
        return error_report(job, config, str(failure))
    except Exception:  # a bug of ours must not hide the other configurations
        return error_report(job, config, "internal error:\n" + traceback.format_exc())
    finally:
        for proc in procs:
            proc.kill()


def start_copies(
    context: BaseContext, job: Job, config: RunConfig, inputs: Any, procs: list[Any],
    extra_env: dict[str, str] | None = None,
) -> None:
    """Start one copy per placement of ``config``, appending each to ``procs`` (so that the
    caller kills those started even when a later one fails). ``extra_env`` is set in every copy
    on top of its placement's (a profile run's device capture)."""
    try:
        placements = job.device.placements(job.cores, config.n_models, config.pipeline_size)
    except ValueError as exc:
        raise ConfigurationFailed(f"cannot place {config.label()}: {exc}") from exc
    if extra_env:
        placements = [replace(p, env={**p.env, **extra_env}) for p in placements]
    for placement in placements:
        side = f"-{job.side}" if job.side else ""
        spec = WorkerSpec(
            model=job.model,
            framework=job.framework,
            adapter=job.adapter,
            inputs=inputs,
            batch_size=config.batch_size,
            workers=config.workers_per_model,
            warmup=job.warmup,  # type: ignore[arg-type]
            placement=placement,
            log_path=str(job.log_dir / f"{config_slug(vars(config))}{side}"
                                       f"-copy{placement.copy_index}.log"),
            preprocess_fn=None if job.imports else job.preprocess_fn,
            postprocess_fn=None if job.imports else job.postprocess_fn,
            max_warmup_s=max(5.0, min(60.0, 2 * job.duration)),
            environ=dict(os.environ),
            options=copy_options(job, config),
            server=None if not isinstance(config.target_qps, float) else serving.server_spec(
                job.server or serving.ServerSettings(), config.target_qps, config.n_models,
                placement.copy_index, job.duration, config.batch_size),
            imports=job.imports,
            generate=None if job.generate is None else job.generate.spec(),
        )
        procs.append(start_copy(context, spec, job.in_process))


def start_copy(context: BaseContext, spec: WorkerSpec, in_process: bool) -> Any:
    """A model process, or with ``multiprocess=False`` a copy in this process."""
    if in_process:
        return InProcessCopy(spec)
    return ModelProcess(context, spec)


def measured_cpus(procs: list[ModelProcess]) -> list[int]:
    """The logical CPUs the copies are pinned to (empty when placements leave affinity alone)."""
    return sorted({cpu for proc in procs for cpu in proc.spec.placement.cpu_affinity or ()})


def measure(job: Job, config: RunConfig, procs: list[ModelProcess]) -> Any:
    """Barrier, common window, collection and the report (or raw results) of running copies."""
    deadline = Deadline.after(job.timeout_for())
    ready = collect(procs, messages.Ready, deadline, "loading and warming up")
    meter = interference.Meter(measured_cpus(procs), [r.pid for r in ready])
    meter.start()
    start_ns = time.perf_counter_ns() + int(START_MARGIN_S * 1e9)
    end_ns = start_ns + int(job.duration * 1e9)
    for proc in procs:
        messages.send(proc.conn, messages.Go(start_ns, end_ns))
    if job.generate is not None:
        return generate_report(job, config, ready, procs, deadline, start_ns, meter)
    if config.target_qps is not None:
        served = collect(procs, messages.Served, deadline, "serving")
        return server_report(job, config, ready, served, start_ns, procs)
    timings = collect(procs, messages.Timings, deadline, "measuring")
    copy_stats = collect(procs, messages.CopyStats, deadline, "reporting its statistics")
    cores = [format_cores(proc.spec.placement.cores) for proc in procs]
    raw = raw_results(job, ready, timings, start_ns, cores, copy_stats)
    raw["interference"] = meter.stop(sum(t.cpu_s for t in timings))
    if job.return_timers:
        return base_report(job, config), raw
    return summarize(base_report(job, config), raw)


def collect(
    procs: list[ModelProcess], expected: type, deadline: Deadline, phase: str
) -> list[Any]:
    """One ``expected`` message from every copy, in copy order, or :class:`ConfigurationFailed`."""
    received: dict[int, Any] = {}
    pending = dict(enumerate(procs))
    while pending:
        try:
            arrived = next_messages(pending, deadline, phase)
        except ProcessLost as lost:
            raise ConfigurationFailed(str(lost)) from lost
        for index, message in arrived:
            received[index] = expected_message(pending.pop(index), message, expected, phase)
    return [received[i] for i in range(len(procs))]


def expected_message(proc: ModelProcess, message: Any, expected: type, phase: str) -> Any:
    """``message`` if it is the one this phase waits for, else :class:`ConfigurationFailed`."""
    if isinstance(message, messages.Failed):
        if message.traceback:  # a refusal: its sentence first, on the headline's line
            raise ConfigurationFailed(f"{proc.label} failed while {phase}: {message.error}\n"
                                      f"{message.traceback.rstrip()}")
        raise ConfigurationFailed(f"{proc.label} failed while {phase}:\n{message.error.rstrip()}")
    if not isinstance(message, expected):
        raise ConfigurationFailed(
            f"{proc.label} sent {type(message).__name__} while {phase}, "
            f"expected {expected.__name__}"
        )
    return message


def raw_results(
    job: Job,
    ready: list[messages.Ready],
    timings: list[messages.Timings],
    start_ns: int,
    cores: list[str],
    copy_stats: list[messages.CopyStats] | None = None,
) -> dict[str, Any]:
    """Everything the copies measured, as ``return_timers=True`` returns it (see ``summary``)."""
    copies = []
    for index, (r, t) in enumerate(zip(ready, timings, strict=True)):
        extra = copy_stats[index] if copy_stats else None
        copies.append({
            "end_ns": list(t.end_ns), "latency_ns": list(t.latency_ns),
            "load_ms": r.load_ms, "warmup_ms": r.warmup_ms, "warmup_calls": r.warmup_calls,
            "cpu_percent_avg": extra.cpu_percent_avg if extra else None,
            "memory_mb_peak": extra.memory_mb_peak if extra else None,
            "eval_states": extra.eval_states if extra else {},
        })
    return {
        "status": "ok", "start_ns": start_ns, "measured_s": job.duration, "cores": cores,
        "single_pass": single_pass(job),
        "cost_per_hour": job.cost_per_hour, "copies": copies,
    }


def generate_report(job: Job, config: RunConfig, ready: list[messages.Ready],
                    procs: list[ModelProcess], deadline: Deadline, start_ns: int,
                    meter: interference.Meter) -> Report:
    """The report of a generate run: every copy's requests (``engine.token_summary``)."""
    assert job.generate is not None
    generate = job.generate
    open_loop = config.target_qps is not None
    generated = collect(procs, messages.Generated, deadline, "serving" if open_loop
                        else "generating")
    copy_stats = (None if open_loop else
                  collect(procs, messages.CopyStats, deadline, "reporting its statistics"))
    try:
        fields = token_summary.generate_fields(generated, start_ns, job.duration, generate.slos)
    except ValueError as exc:
        raise ConfigurationFailed(str(exc)) from exc
    asked = generate.output_tokens
    report: dict[str, Any] = {
        **base_report(job, config),
        **fields,
        "output_tokens": list(asked) if len(set(asked)) > 1 else asked[0],
        "slo_ttft_ms": generate.slos.ttft_ms,
        "slo_tpot_ms": generate.slos.tpot_ms,
        "load_avg_ms": float(np.mean([r.load_ms for r in ready])),
        "warmup_avg_ms": float(np.mean([r.warmup_ms for r in ready])),
        "status": "ok",
        "error": None,
        "cores": [format_cores(proc.spec.placement.cores) for proc in procs],
    }
    if open_loop:
        report.update(token_summary.open_loop_fields(generated, start_ns, job.duration),
                      arrival_seed=(job.server or serving.ServerSettings()).seed)
    else:
        report.update(summary_resources(copy_stats or []))
    report["interference"] = meter.stop(sum(g.cpu_s for g in generated))
    return cast(Report, report)


def summary_resources(copy_stats: list[messages.CopyStats]) -> dict[str, Any]:
    """The copies' CPU use and peak memory, as the closed loop reports them."""
    return resources([{"cpu_percent_avg": s.cpu_percent_avg,
                       "memory_mb_peak": s.memory_mb_peak} for s in copy_stats])


def server_report(job: Job, config: RunConfig, ready: list[messages.Ready],
                  served: list[messages.Served], start_ns: int,
                  procs: list[ModelProcess]) -> Report:
    """The report of an open-loop run (server scenario, see ``engine.serving``)."""
    settings = job.server or serving.ServerSettings()
    dynamic = settings.max_queue_delay_ms is not None
    try:
        fields = serving.server_fields(
            serving.Queries.join(served), start_ns, job.duration,
            1 if dynamic else config.batch_size, config.workers_per_model,
            settings.p99_ms if settings.estimate_windows else None)
    except ValueError as exc:
        raise ConfigurationFailed(str(exc)) from exc
    report: Report = {
        **base_report(job, config),
        **fields,
        "arrival_seed": settings.seed,
        "max_queue_delay_ms": settings.max_queue_delay_ms,
        "load_avg_ms": float(np.mean([r.load_ms for r in ready])),
        "warmup_avg_ms": float(np.mean([r.warmup_ms for r in ready])),
        "status": "ok",
        "error": None,
        "cores": [format_cores(proc.spec.placement.cores) for proc in procs],
    }
    if job.return_timers:  # per query, in arrival order per copy: ms after the common start
        report["timers"] = {
            name: [[float(v - start_ns) / 1e6 if v >= 0 else None for v in values]
                   for values in (getattr(s, f"{name}_ns") for s in served)]
            for name in ("arrival", "start", "end")
        }
    return report
