"""Measure one configuration: start its copies, barrier, common window, collect, report."""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

import numpy as np

from pytest_neuronperf.devices.base import DeviceBackend, format_cores
from pytest_neuronperf.engine import messages
from pytest_neuronperf.engine import windows as stats
from pytest_neuronperf.engine.grid import RunConfig
from pytest_neuronperf.engine.processes import ModelProcess
from pytest_neuronperf.engine.specs import ModelSource, WorkerSpec
from pytest_neuronperf.engine.supervise import Deadline, ProcessLost, next_messages
from pytest_neuronperf.reports import config_slug

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

    def timeout_for(self) -> float:
        """Seconds a configuration may take in all: generous unless the caller set it."""
        if self.timeout is not None:
            return self.timeout
        return LOAD_TIMEOUT_FLOOR_S + 3 * self.duration


def base_report(job: Job, config: RunConfig) -> dict[str, Any]:
    """The identifying keys every report carries, whatever its status."""
    return {
        "model_name": job.model.name,
        "model_filename": job.model.filename,
        "framework": job.framework,
        "device_type": job.device.name,
        "batch_size": config.batch_size,
        "n_models": config.n_models,
        "workers_per_model": config.workers_per_model,
        "pipeline_size": config.pipeline_size,
        "duration": job.duration,
    }


METRIC_KEYS = (
    "total_infs", "throughput_avg", "throughput_peak",
    *(f"latency_ms_p{p}" for p in stats.PERCENTILES), "latency_ms_avg",
    "load_avg_ms", "warmup_avg_ms",
)


def error_report(job: Job, config: RunConfig, reason: str) -> dict[str, Any]:
    """A report for a configuration that could not be measured: metrics are null."""
    report = base_report(job, config)
    report.update({key: None for key in METRIC_KEYS})
    report.update(status="error", error=reason, windows=None)
    return report


def run_configuration(
    context: BaseContext, job: Job, config: RunConfig, inputs: Any
) -> dict[str, Any]:
    """Measure one configuration; never raises for a model's fault (status ``error``)."""
    procs: list[ModelProcess] = []
    try:
        try:
            placements = job.device.placements(job.cores, config.n_models, config.pipeline_size)
        except ValueError as exc:
            raise ConfigurationFailed(f"cannot place {config.label()}: {exc}") from exc
        for placement in placements:
            spec = WorkerSpec(
                model=job.model,
                framework=job.framework,
                adapter=job.adapter,
                inputs=inputs,
                batch_size=config.batch_size,
                workers=config.workers_per_model,
                warmup=job.warmup,  # type: ignore[arg-type]
                placement=placement,
                log_path=str(job.log_dir
                             / f"{config_slug(vars(config))}-copy{placement.copy_index}.log"),
                preprocess_fn=job.preprocess_fn,
                postprocess_fn=job.postprocess_fn,
                max_warmup_s=max(5.0, min(60.0, 2 * job.duration)),
                environ=dict(os.environ),
            )
            procs.append(ModelProcess(context, spec))
        return measure(job, config, procs)
    except ConfigurationFailed as failure:
        return error_report(job, config, str(failure))
    except Exception:  # a bug of ours must not hide the other configurations
        return error_report(job, config, "internal error:\n" + traceback.format_exc())
    finally:
        for proc in procs:
            proc.kill()


def measure(job: Job, config: RunConfig, procs: list[ModelProcess]) -> dict[str, Any]:
    """Barrier, common window, collection and the report for running copies."""
    deadline = Deadline.after(job.timeout_for())
    ready = collect(procs, messages.Ready, deadline, "loading and warming up")
    start_ns = time.perf_counter_ns() + int(START_MARGIN_S * 1e9)
    end_ns = start_ns + int(job.duration * 1e9)
    for proc in procs:
        messages.send(proc.conn, messages.Go(start_ns, end_ns))
    timings = collect(procs, messages.Timings, deadline, "measuring")
    cores = [format_cores(proc.spec.placement.cores) for proc in procs]
    return build_report(job, config, ready, timings, start_ns, cores)


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
        raise ConfigurationFailed(f"{proc.label} failed while {phase}:\n{message.error.rstrip()}")
    if not isinstance(message, expected):
        raise ConfigurationFailed(
            f"{proc.label} sent {type(message).__name__} while {phase}, "
            f"expected {expected.__name__}"
        )
    return message


def build_report(
    job: Job,
    config: RunConfig,
    ready: list[messages.Ready],
    timings: list[messages.Timings],
    start_ns: int,
    cores: list[str],
) -> dict[str, Any]:
    """NeuronPerf-style report from every copy's timings."""
    ends = np.concatenate([e for t in timings for e in t.end_ns] or [np.empty(0, np.int64)])
    lats = np.concatenate([x for t in timings for x in t.latency_ns] or [np.empty(0, np.int64)])
    end_ns = start_ns + int(job.duration * 1e9)
    finished = ends <= end_ns
    calls = int(finished.sum())
    if calls == 0:
        raise ConfigurationFailed(
            f"no call finished within the {job.duration} s window: one inference takes longer "
            f"than the duration; raise duration"
        )
    windows = stats.window_series(ends, lats, start_ns, job.duration, config.batch_size)
    report = base_report(job, config)
    report.update(
        total_infs=calls * config.batch_size,
        throughput_avg=float(np.mean(windows["throughput"])),
        throughput_peak=max(windows["throughput"]),
        **stats.latency_summary(lats[finished]),
        load_avg_ms=float(np.mean([r.load_ms for r in ready])),
        warmup_avg_ms=float(np.mean([r.warmup_ms for r in ready])),
        status="ok",
        error=None,
        cores=cores,
        windows=windows,
    )
    if job.return_timers:
        report["timers"] = {
            "latency_ms": [
                [float(v) / 1e6 for v in np.concatenate(list(t.latency_ns))] for t in timings
            ],
        }
    return report

