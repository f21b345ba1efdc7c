"""The parent's side of a profile run: one configuration's head (and base) profiled on fresh
copies, after its measurement.

A profile run starts one copy per side on the configuration's first core slice (one driver
thread: a profile explains what a call does, not how copies share a machine), waits until they
are warm, then sends profile windows: per kind (``operators``, then ``python``) ``WINDOWS``
windows per side in ABBA order (head, base, base, head, ...), so that a machine that speeds up
or slows down over the run touches both sides alike. Only one copy runs at a time. The last
window of each kind leaves its raw trace in the run's folder: ``head-operators.json`` (Chrome
trace / Perfetto), ``head-python.pstats`` (cProfile: snakeviz, ``python -m pstats``), and on
Neuron the runtime's own capture (``head-neuron/``). A run never raises for a model's fault: it
returns ``status: error`` with one line saying why.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import shutil
import tempfile
import time
import traceback
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

import psutil

from pytest_neuronperf.engine.grid import RunConfig
from pytest_neuronperf.engine.measure import stage_jobs
from pytest_neuronperf.engine.paired import PairedRequest, side_jobs
from pytest_neuronperf.engine.planning import plan
from pytest_neuronperf.engine.processes import ModelProcess, process_context
from pytest_neuronperf.engine.request import BenchmarkRequest
from pytest_neuronperf.engine.runner import (
    ConfigurationFailed,
    Job,
    base_report,
    collect,
    error_report,
    start_copies,
)
from pytest_neuronperf.engine.supervise import Deadline
from pytest_neuronperf.logs import console
from pytest_neuronperf.profiling.summary import summarize
from pytest_neuronperf.protocol import messages
from pytest_neuronperf.protocol.specs import ModelSource
from pytest_neuronperf.reports import Report, config_slug

WINDOWS = {"operators": 3, "python": 6}
"""Windows per side and kind (their spread is the noise the diff compares changes with).
Python windows are totals per function (cProfile has no per-call times to take a median of),
so there are more of them, shorter: a window a busy machine slowed moves their median less."""
WINDOW_S = {"operators": 0.2, "python": 0.1}
MAX_CALLS = 2000
"""Calls per operator window at most (the copy lowers it to keep the trace small)."""
TRACE_SUFFIXES = {"operators": ".json", "python": ".pstats"}


@dataclass(frozen=True)
class ProfileRequest:
    """What a profile run needs besides the configuration."""

    directory: str
    """Where this configuration's traces go (created; one folder per configuration)."""
    budget_s: float | None = None
    """Seconds the run may take; past them it stops and says so (None: the job's timeout)."""
    windows: dict[str, int] = dataclasses.field(default_factory=lambda: dict(WINDOWS))
    window_s: dict[str, float] = dataclasses.field(default_factory=lambda: dict(WINDOW_S))


def window_plan(kinds: tuple[str, ...], sides: tuple[str, ...],
                windows: dict[str, int]) -> list[tuple[str, str, bool]]:
    """``(kind, side, keeps its trace)`` in running order: ABBA per kind; the last window of
    each kind and side keeps its trace."""
    plan = []
    for kind in kinds:
        for index in range(windows[kind]):
            order = sides if index % 2 == 0 else tuple(reversed(sides))
            plan += [(kind, side, index == windows[kind] - 1) for side in order]
    return plan


def profile_seconds(kinds: tuple[str, ...] = ("operators", "python")) -> float:
    """Seconds of windows per side (each costs more than its length: see ``profiling.explain``)."""
    return sum(WINDOWS[kind] * WINDOW_S[kind] for kind in kinds)


def profile_kinds(job: Job) -> tuple[tuple[str, ...], bool]:
    """(the window kinds, whether the device runtime captures its own profile). A device whose
    runtime captures by itself (Neuron) gets no framework profiler on top: the Neuron runtime's
    documentation says the two capture mechanisms conflict."""
    if getattr(job.device, "profiler_env", None) is not None:
        return ("python",), True
    return ("operators", "python"), False


def profile(request: BenchmarkRequest, wanted: ProfileRequest) -> list[Report]:
    """Profile every configuration of a ``benchmark`` request on fresh copies instead of
    measuring it (both sides when it is paired): one report per configuration, with its
    identifying keys and ``profile``; each configuration's traces go to a folder named after it
    in ``wanted.directory``. A bad argument raises as ``benchmark`` would."""
    planned = plan(request)
    context = (multiprocessing.get_context("spawn") if request.multiinterpreter
               else process_context(planned.framework))
    log_dir = Path(tempfile.mkdtemp(prefix="neuronperf-logs-"))
    reports: list[Report] = []
    with console(request.verbosity):
        try:
            for job, source_plan, config in stage_jobs(planned, log_dir):
                if source_plan.failure is not None:
                    reports.append(error_report(job, config, source_plan.failure))
                    continue
                base = None
                if planned.paired is not None and planned.base is not None:
                    source, _ = planned.base.source_for(config)
                    base = None if source is None else (source, planned.paired)
                folder = dataclasses.replace(
                    wanted, directory=str(Path(wanted.directory) / config_slug(vars(config))))
                result = profile_configuration(context, job, config,
                                               planned.per_batch[config.batch_size], folder, base)
                report = base_report(job, config)
                report["status"], report["profile"] = "ok", result
                reports.append(report)
        finally:
            shutil.rmtree(log_dir, ignore_errors=True)
    return reports


def profile_configuration(
    context: BaseContext, job: Job, config: RunConfig, inputs: Any, request: ProfileRequest,
    base: tuple[ModelSource, PairedRequest] | None = None,
) -> dict[str, Any]:
    """Profile one configuration (and its base side: ``(source, PairedRequest)``); the
    result's ``sides`` hold each side's summary (``profiling.summary``)."""
    started = time.monotonic()
    jobs = {"head": job} if base is None else side_jobs(job, base[0], base[1])
    folder = Path(request.directory)
    procs: dict[str, list[ModelProcess]] = {side: [] for side in jobs}
    kinds, captured = profile_kinds(job)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        solo = dataclasses.replace(config, n_models=1, workers_per_model=1, target_qps=None)
        deadline = Deadline.after(request.budget_s if request.budget_s is not None
                                  else job.timeout_for())
        for side, side_job in jobs.items():
            env = (job.device.profiler_env(str(folder / f"{side}-neuron"))  # type: ignore[attr-defined]
                   if captured else None)
            start_copies(context, side_job, solo, inputs, procs[side], env)
        for side in jobs:
            collect(procs[side], messages.Ready, deadline, f"loading ({side} side, profile run)")
        windows: dict[str, list[messages.Profiled]] = {side: [] for side in jobs}
        for kind, side, keep in window_plan(kinds, tuple(jobs), request.windows):
            path = str(folder / f"{side}-{kind}{TRACE_SUFFIXES[kind]}") if keep else None
            order = messages.Profile(kind, request.window_s[kind], MAX_CALLS, path)
            messages.send(procs[side][0].conn, order)
            [answer] = collect(procs[side], messages.Profiled, deadline,
                               f"profiling ({side} side)")
            windows[side].append(answer)
    except ConfigurationFailed as failure:
        return failed(str(failure), started)
    except Exception:  # a bug of ours must not take the verdict with it
        return failed("internal error: " + traceback.format_exc(), started)
    finally:
        cpu_s = copies_cpu_s([p for side_procs in procs.values() for p in side_procs])
        for side_procs in procs.values():
            for proc in side_procs:
                proc.kill()
    return {
        "status": "ok",
        "seconds": time.monotonic() - started,
        "cpu_s": cpu_s,
        "directory": str(folder),
        "sides": {side: summarize(found, job.framework) for side, found in windows.items()},
        "traces": sorted(str(p) for p in folder.rglob("*") if p.is_file()),
    }


def copies_cpu_s(procs: list[ModelProcess]) -> float:
    """CPU seconds the copies used (user + system): what the run costs on an idle machine,
    where its wall time would be about this much."""
    total = 0.0
    for proc in procs:
        try:
            times = psutil.Process(proc.pid).cpu_times()
        except (psutil.Error, ValueError, TypeError):
            continue
        total += times.user + times.system
    return total


def failed(error: str, started: float) -> dict[str, Any]:
    """A profile run that could not finish: ``error`` is its first line, ``detail`` all of it
    (a copy's output tail, a traceback)."""
    first = error.strip().splitlines()[0] if error.strip() else "no reason given"
    return {"status": "error", "error": first, "detail": error.strip(),
            "seconds": time.monotonic() - started}
