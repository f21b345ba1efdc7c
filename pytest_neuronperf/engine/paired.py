"""Paired A/B measurement: two sides of one configuration, interleaved on the same cores.

For each configuration the copies of both sides ("base" and "head") are loaded at once, copy
*i* of each side pinned to the same core slice *i*. After one unrecorded warm round, the parent
runs ``rounds`` rounds; each round gives each side one slice of ``duration / rounds`` seconds,
in an order drawn at random per round (a seeded NumPy generator; the seed is recorded). Only one
side runs at a time: the next ``go`` is sent only when the previous side's timings arrived,
and the idle side's copies block in ``next_order`` (a queue fed by their pipe listener).
Each slice yields throughput, p50 and p99 per side, so the gate can compare the sides round by
round: whatever the machine does to its speed over seconds hits both sides of a round alike.

Randomized multiple interleaved trials (Abedi & Brecht, ICPE 2017) and duet benchmarking
(Bulej et al., ICPE 2020) are the published methods this follows.
"""

from __future__ import annotations

import dataclasses
import math
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.context import BaseContext
from typing import Any, Protocol, TypedDict, cast

import numpy as np

from pytest_neuronperf.child import isolation
from pytest_neuronperf.devices.base import format_cores
from pytest_neuronperf.engine import interference, token_summary
from pytest_neuronperf.engine import windows as stats
from pytest_neuronperf.engine.grid import RunConfig
from pytest_neuronperf.engine.processes import ModelProcess
from pytest_neuronperf.engine.runner import (
    ConfigurationFailed,
    Job,
    base_report,
    collect,
    error_report,
    measured_cpus,
    run_configuration,
    start_copies,
)
from pytest_neuronperf.engine.supervise import Deadline
from pytest_neuronperf.protocol import messages
from pytest_neuronperf.protocol.specs import ImportRoot, ModelSource
from pytest_neuronperf.reports import Interference, Paired, Report, SideMetrics

SIDES = ("base", "head")
TARGET_SLICE_S = 0.25
"""Rounds are chosen so that a slice lasts about this long (see ``default_rounds``)."""
MIN_ROUNDS = 8
"""Fewer rounds cannot make a one-sided Wilcoxon test significant after Holm's correction
over a test's family (8 rounds: smallest p 1/256, below 0.05 / 12)."""
DEFAULT_MIN_ROUNDS = 10
MAX_ROUNDS = 40
SLICE_MARGIN_S = 0.005
"""Time between sending a slice's ``go`` and its start, so that the copies are waiting."""
SLICE_SERIES = ("throughput", "latency_ms_p50", "latency_ms_p99")
"""Per-slice series each side records (the gated metrics' names)."""


def default_rounds(duration: float) -> int:
    """Rounds for ``duration`` seconds per side: slices of about ``TARGET_SLICE_S``, within
    ``DEFAULT_MIN_ROUNDS``..``MAX_ROUNDS`` (chosen by ``benchmarks/paired_study.py``)."""
    return int(min(MAX_ROUNDS, max(DEFAULT_MIN_ROUNDS, round(duration / TARGET_SLICE_S))))


def new_seed() -> int:
    """A fresh seed for the order of the slices (recorded in every paired report)."""
    return int(np.random.SeedSequence().generate_state(1)[0])


def slice_order(rounds: int, seed: int, salt: Sequence[int] = ()) -> list[tuple[str, str]]:
    """Which side runs first in each round: a fair coin per round from ``seed`` (and ``salt``,
    e.g. the configuration, so that every configuration of one call gets its own order)."""
    rng = np.random.default_rng([seed, *salt])
    flips = rng.integers(0, 2, size=rounds)
    return [("base", "head") if flip else ("head", "base") for flip in flips]


# -- the schedule -------------------------------------------------------------------------------


class Side(Protocol):
    """One side's copies, as the schedule drives them."""

    def go(self, start_ns: int, end_ns: int, last: bool) -> None:
        """Tell every copy of the side to measure from ``start_ns`` until ``end_ns``."""
        ...

    def timings(self) -> list[messages.Timings]:
        """Wait for every copy's timings of the slice just started."""
        ...


@dataclass
class SliceRecord:
    """One slice of one side: when it ran and what every copy timed."""

    round: int
    start_ns: int
    end_ns: int
    timings: list[Any]
    """Every copy's ``Timings`` (``Generated`` in the generate scenario)."""


@dataclass
class ScheduleResult:
    """Every side's recorded slices, and why a side stopped early (the base may fail)."""

    slices: dict[str, list[SliceRecord]] = field(default_factory=lambda: {s: [] for s in SIDES})
    failures: dict[str, str] = field(default_factory=dict)
    warm: dict[str, SliceRecord] = field(default_factory=dict)
    """Each side's last unrecorded warm slice (its CPU reading starts the first round's)."""

    def last_timings(self) -> list[messages.Timings]:
        """Each live side's final timings (they carry the copies' CPU time at the end)."""
        return [t for name, records in self.slices.items() if records
                and name not in self.failures for t in records[-1].timings]


def run_schedule(
    sides: Mapping[str, Side],
    order: Sequence[tuple[str, str]],
    slice_s: float,
    warm_rounds: int = 1,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> ScheduleResult:
    """Run ``warm_rounds`` unrecorded rounds, then ``order``: one slice per side per round,
    strictly one side at a time.

    A base side that fails is dropped and the head goes on alone (its results still count);
    a failing head raises :class:`ConfigurationFailed`.
    """
    result = ScheduleResult()
    live = dict(sides)
    plan = [(-1, order[0])] * warm_rounds + list(enumerate(order))
    slice_ns = int(slice_s * 1e9)
    for position, (round_index, pair) in enumerate(plan):
        last = position == len(plan) - 1
        for name in pair:
            side = live.get(name)
            if side is None:
                continue
            start = clock() + int(SLICE_MARGIN_S * 1e9)
            try:
                side.go(start, start + slice_ns, last)
                timings = side.timings()
            except ConfigurationFailed as failure:
                if name == "head":
                    raise
                result.failures[name] = str(failure)
                del live[name]
                continue
            record = SliceRecord(round_index, start, start + slice_ns, timings)
            if round_index >= 0:
                result.slices[name].append(record)
            else:
                result.warm[name] = record
    return result


class CopySide:
    """The copies of one side of a configuration, driven over their pipes."""

    def __init__(self, name: str, procs: list[ModelProcess], deadline: Deadline,
                 expected: type = messages.Timings) -> None:
        self.name = name
        self.procs = procs
        self.deadline = deadline
        self.expected = expected
        """What a copy answers a slice with: ``Timings``, or ``Generated`` (generate)."""

    def go(self, start_ns: int, end_ns: int, last: bool) -> None:
        """Send the slice's ``go`` to every copy of this side."""
        for proc in self.procs:
            try:
                messages.send(proc.conn, messages.Go(start_ns, end_ns, last))
            except OSError as exc:
                raise ConfigurationFailed(
                    f"{self.name} side: copy {proc.spec.placement.copy_index} is gone "
                    f"({proc.exit_description()})" + proc.formatted_tail()) from exc

    def timings(self) -> list[messages.Timings]:
        """Every copy's timings of the current slice."""
        try:
            return collect(self.procs, self.expected, self.deadline,
                           f"measuring ({self.name} side)")
        except ConfigurationFailed as failure:
            raise ConfigurationFailed(f"{self.name} side: {failure}") from None


# -- per-slice figures --------------------------------------------------------------------------


def copy_rate(timings: messages.Timings, start_ns: int, end_ns: int, batch_size: int) -> float:
    """One copy's throughput in a slice: the work done between its first call's start (or the
    slice's start, if later) and the slice's end, over that span.

    Counting from the first call keeps a copy that woke up late (a busy machine delays the
    wake-up of a blocked process by milliseconds) from looking slower than it ran."""
    ends = np.concatenate(timings.end_ns or [np.empty(0, np.int64)])
    lats = np.concatenate(timings.latency_ns or [np.empty(0, np.int64)])
    if ends.size == 0:
        return math.nan
    begin = max(start_ns, int(np.min(ends - lats)))
    if end_ns <= begin:
        return math.nan
    length_s = (end_ns - begin) / 1e9
    windows = stats.window_series(ends, lats, begin, length_s, batch_size)
    return float(np.mean(windows["throughput"]))


def slice_figures(record: SliceRecord, batch_size: int) -> dict[str, float]:
    """Throughput (every copy's rate while it ran, summed), p50 and p99 of every call."""
    lats = np.concatenate([x for t in record.timings for x in t.latency_ns]
                          or [np.empty(0, np.int64)])
    rates = [copy_rate(t, record.start_ns, record.end_ns, batch_size) for t in record.timings]
    summary = stats.latency_summary(lats)
    return {
        "throughput": float(np.sum(rates)) if rates else math.nan,
        "latency_ms_p50": summary["latency_ms_p50"],
        "latency_ms_p99": summary["latency_ms_p99"],
        "calls": int(lats.size),
    }


def cpu_series(records: list[SliceRecord], warm: SliceRecord | None) -> list[float]:
    """The CPU seconds the side's copies used in each slice (from their cumulative readings;
    between slices a copy is blocked and uses none). Not gated: recorded so that studies can
    tell a slower model from a model that got less of a busy machine's CPU."""
    previous = [t.cpu_s for t in warm.timings] if warm else [math.nan] * len(records[0].timings)
    used = []
    for record in records:
        current = [t.cpu_s for t in record.timings]
        used.append(float(sum(c - p for c, p in zip(current, previous, strict=False))))
        previous = current
    return used


class SideSummary(TypedDict):
    """One side's whole-run figures, its per-slice series and CPU seconds per slice."""

    metrics: SideMetrics
    series: dict[str, list[float]]
    cpu_s: list[float]


def side_summary(records: list[SliceRecord], batch_size: int,
                 warm: SliceRecord | None = None, generate: bool = False) -> SideSummary:
    """One side's whole-run figures (NeuronPerf's keys) and its per-slice series (the token
    metrics' in the generate scenario: ``token_summary.slice_figures``)."""
    if generate:
        tokens = [token_summary.slice_figures(r.timings, r.start_ns, r.end_ns)
                  for r in records]
        return {"metrics": cast(SideMetrics, token_summary.side_metrics(
                    [t for r in records for t in r.timings], tokens)),
                "series": {name: [f[name] for f in tokens]
                           for name in token_summary.SLICE_SERIES},
                "cpu_s": cpu_series(records, warm) if records else []}
    figures = [slice_figures(r, batch_size) for r in records]
    lats = np.concatenate([x for r in records for t in r.timings for x in t.latency_ns]
                          or [np.empty(0, np.int64)])
    throughput = [f["throughput"] for f in figures]
    metrics = cast(SideMetrics, {
        "total_infs": int(sum(f["calls"] for f in figures)) * batch_size,
        "throughput_avg": float(np.mean(throughput)) if throughput else math.nan,
        "throughput_peak": float(np.max(throughput)) if throughput else math.nan,
        **stats.latency_summary(lats),
    })
    series = {name: [f[name] for f in figures] for name in SLICE_SERIES}
    cpu = cpu_series(records, warm) if records else []
    return {"metrics": metrics, "series": series, "cpu_s": cpu}


# -- one configuration --------------------------------------------------------------------------


@dataclass(frozen=True)
class PairedRequest:
    """What makes a ``benchmark`` call paired: the base side and the schedule's settings.

    ``base_model`` is what the user would pass as ``model`` (a class, factory, artifact or model
    index). With ``imports`` (a run against a git revision) the base copies import it, and the
    pre/post-processing functions, from the revision's tree. ``absent`` says why there is no
    base (the model does not exist at the revision): the head is then measured alone.
    """

    base_model: Any = None
    imports: ImportRoot | None = None
    rounds: int | None = None
    seed: int | None = None
    revision: str | None = None
    """The base revision as given and its commit, e.g. ``origin/main (3f2a9c1d...)``."""
    absent: str | None = None

    def with_seed(self) -> PairedRequest:
        """This request with a seed drawn now if it had none (one seed per call)."""
        return self if self.seed is not None else dataclasses.replace(self, seed=new_seed())


def run_paired_configuration(
    context: BaseContext,
    head_job: Job,
    base_source: ModelSource | None,
    config: RunConfig,
    inputs: Any,
    request: PairedRequest,
    base_failure: str | None = None,
) -> Report:
    """Measure one configuration paired; never raises for a model's fault.

    ``base_source`` None (with ``base_failure`` or ``request.absent`` saying why) measures the
    head alone, as a plain run, and records why there is no comparison.
    """
    assert request.seed is not None
    rounds = request.rounds or default_rounds(head_job.duration)
    header: Paired = {"revision": request.revision, "rounds": rounds, "seed": request.seed,
                      "slice_s": head_job.duration / rounds}
    if base_source is None:
        report = run_configuration(context, head_job, config, inputs)
        status = "absent" if request.absent else "error"
        report["paired"] = {**header, "base_status": status,
                            "base_error": request.absent or base_failure or "no base"}
        return report
    jobs = side_jobs(head_job, base_source, request)
    head_job = jobs["head"]
    procs: dict[str, list[ModelProcess]] = {"head": [], "base": []}
    try:
        report = measure_paired(context, jobs, config, inputs, procs, rounds, header)
    except ConfigurationFailed as failure:
        report = error_report(head_job, config, str(failure))
    except Exception:  # a bug of ours must not hide the other configurations
        report = error_report(head_job, config, "internal error:\n" + traceback.format_exc())
    else:
        return report
    finally:
        for side in procs.values():
            for proc in side:
                proc.kill()
    report["paired"] = {**header, "base_status": "not measured"}
    return report


def side_jobs(head_job: Job, base_source: ModelSource, request: PairedRequest) -> dict[str, Job]:
    """The jobs of both sides: the base imports its model (and functions) as the request says."""
    return {"head": dataclasses.replace(head_job, side="head"),
            "base": dataclasses.replace(head_job, model=base_source, imports=request.imports,
                                        side="base")}


def measure_paired(
    context: BaseContext,
    jobs: dict[str, Job],
    config: RunConfig,
    inputs: Any,
    procs: dict[str, list[ModelProcess]],
    rounds: int,
    header: Paired,
) -> Report:
    """Load both sides, run the schedule and build the head's report with its ``paired`` part."""
    head_job = jobs["head"]
    failures: dict[str, str] = {}
    start_copies(context, head_job, config, inputs, procs["head"])
    try:
        start_copies(context, jobs["base"], config, inputs, procs["base"])
    except ConfigurationFailed as failure:
        failures["base"] = str(failure)
    deadline = Deadline.after(head_job.timeout_for() + 2 * head_job.duration)
    ready = {"head": collect(procs["head"], messages.Ready, deadline, "loading and warming up")}
    if "base" not in failures:
        try:
            ready["base"] = collect(procs["base"], messages.Ready, deadline,
                                    "loading and warming up")
        except ConfigurationFailed as failure:
            failures["base"] = f"base side: {failure}"
    if "base" in failures:
        for proc in procs["base"]:
            proc.kill()
    expected = messages.Generated if head_job.generate is not None else messages.Timings
    sides = {name: CopySide(name, procs[name], deadline, expected) for name in ready}
    pids = [r.pid for side in ready.values() for r in side]
    meter = interference.Meter(measured_cpus(procs["head"]), pids)
    order = slice_order(rounds, header["seed"], (config.batch_size, config.n_models,
                                                 config.workers_per_model, config.pipeline_size))
    meter.start()
    result = run_schedule(sides, order, header["slice_s"])
    figures = meter.stop(sum(t.cpu_s for t in result.last_timings()))
    failures.update(result.failures)
    return paired_report(jobs, config, ready, result, order, header, failures, figures,
                         [format_cores(p.spec.placement.cores) for p in procs["head"]])


def paired_report(
    jobs: dict[str, Job],
    config: RunConfig,
    ready: dict[str, list[messages.Ready]],
    result: ScheduleResult,
    order: list[tuple[str, str]],
    header: Paired,
    failures: dict[str, str],
    figures: Interference | None,
    cores: list[str],
) -> Report:
    """The head's report (its slices are its windows) with the base side under ``paired``."""
    head_job = jobs["head"]
    generate = head_job.generate is not None
    head = side_summary(result.slices["head"], config.batch_size, result.warm.get("head"),
                        generate)
    if not result.slices["head"] or head["metrics"]["total_infs"] == 0:
        raise ConfigurationFailed(
            f"no call finished within the {header['slice_s']:.3g} s slices: one inference takes "
            f"longer than duration / paired_rounds; raise duration or lower paired_rounds")
    report: Report = {
        **base_report(head_job, config),
        **head["metrics"],
        "load_avg_ms": float(np.mean([r.load_ms for r in ready["head"]])),
        "warmup_avg_ms": float(np.mean([r.warmup_ms for r in ready["head"]])),
        "status": "ok", "error": None, "cores": cores, "windows": head["series"],
        "interference": figures,
    }
    paired: Paired = {**header, "base_model": jobs["base"].model.filename,
                      "order": [pair[0] for pair in order]}
    if "base" in failures or not result.slices["base"]:
        error = failures.get("base", "the base side recorded no slice")
        paired["base_status"] = isolation.base_status(error)
        paired["base_error"] = error
    else:
        base = side_summary(result.slices["base"], config.batch_size, result.warm.get("base"),
                            generate)
        base["metrics"]["load_avg_ms"] = float(np.mean([r.load_ms for r in ready["base"]]))
        base["metrics"]["warmup_avg_ms"] = float(np.mean([r.warmup_ms for r in ready["base"]]))
        paired["base_status"] = "ok"
        paired["base"] = base["metrics"]
        paired["slices"] = {"head": head["series"], "base": base["series"]}
        paired["slice_cpu_s"] = {"head": head["cpu_s"], "base": base["cpu_s"]}
        paired["slice_rounds"] = {"head": [r.round for r in result.slices["head"]],
                                  "base": [r.round for r in result.slices["base"]]}
    report["paired"] = paired
    return report


def check_rounds(rounds: Any) -> int:
    """``paired_rounds``: an integer of at least ``MIN_ROUNDS``."""
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < MIN_ROUNDS:
        raise ValueError(f"paired_rounds must be an integer >= {MIN_ROUNDS} (fewer rounds can "
                         f"never be significant), got {rounds!r}")
    return rounds
