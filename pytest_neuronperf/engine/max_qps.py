"""``target_qps="max"``: measure one configuration's highest rate that meets its p99 budget."""

from __future__ import annotations

from dataclasses import replace
from multiprocessing.context import BaseContext
from typing import Any, cast

from pytest_neuronperf.engine import serving
from pytest_neuronperf.engine.grid import RunConfig
from pytest_neuronperf.engine.runner import Job, error_report, run_configuration
from pytest_neuronperf.reports import Report


def measure_max_qps(context: BaseContext, job: Job, config: RunConfig,
                    inputs: Any) -> Report:
    """Probe the closed-loop capacity, search (``serving.search_max_qps``), report ``max_qps``.

    The report is the full-duration confirmation run at ``max_qps``, with ``target_qps``
    ``"max"``, the search's trials (``search``) and per-window ``max_qps`` estimates for the gate.
    """
    settings = job.server or serving.ServerSettings()
    assert settings.p99_ms is not None, "check_settings requires p99_ms with target_qps='max'"
    probe_s = min(job.duration, serving.MIN_TRIAL_S)
    probe = run_configuration(context, replace(job, duration=probe_s, server=None),
                              replace(config, target_qps=None), inputs)
    if probe["status"] != "ok":
        return error_report(job, config, f"closed-loop capacity probe failed: {probe['error']}")
    capacity = cast(float, probe["throughput_avg"]) / config.batch_size

    def measure(qps: float, duration: float, estimate: bool = False) -> Report:
        trial_job = replace(job, duration=duration,
                            server=replace(settings, estimate_windows=estimate))
        return run_configuration(context, trial_job, replace(config, target_qps=qps), inputs)

    max_qps, report, trials = serving.search_max_qps(
        measure, settings.p99_ms, capacity, job.duration,
        final=lambda qps, duration: measure(qps, duration, estimate=True))
    return {**report, "target_qps": "max", "max_qps": max_qps, "search": trials,
            "capacity_qps": capacity, "duration": job.duration}
