"""Paired A/B measurement: two sides of one configuration, as launch pairs on the same cores.

A configuration is measured as launch pairs. Each pair starts fresh copies of both sides
("base" and "head"; which side's copies start first is a fair coin per pair, recorded), copy
*i* of each side pinned to the same core slice *i*. After one unrecorded warm round, the parent
runs ``rounds`` rounds; each round gives each side one slice, in an order drawn at random per
round (a seeded NumPy generator; the seed is recorded). Only one side runs at a time: the next
``go`` is sent only when the previous side's timings arrived, and the idle side's copies block
in ``next_order``. Each slice yields throughput, p50 and p99 per side; then the pair's copies
are stopped and the gate (``gating.paired.look``) says whether the pairs so far decide the
configuration; if not, the next pair starts, until ``duration`` per side is used up.

A process has its own speed for its whole life, so rounds within a pair are not independent:
the pair is the unit the gate counts (``benchmarks/variance_levels.py`` measured the levels).
Each side waits under its own deadline (``SideBudget``): a side that hangs is named, with its
stacks, and never uses up the other side's time.

Randomized multiple interleaved trials (Abedi & Brecht, ICPE 2017), duet benchmarking
(Bulej et al., ICPE 2020) and repetitions split between levels by their variance and cost
(Kalibera & Jones, ISMM 2013) are the published methods this follows.
"""

from __future__ import annotations

import dataclasses
import math
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.context import BaseContext
from typing import Any, Protocol, TypedDict, TypeVar, cast

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
from pytest_neuronperf.reports import Interference, Launch, Paired, Report, SideMetrics

SIDES = ("base", "head")
SLICE_S = 0.1
"""A slice lasts at least this long, and long enough for ``CALLS_PER_SLICE`` calls."""
CALLS_PER_SLICE = 5
DEFAULT_ROUNDS = 3
"""Rounds per launch pair (``benchmarks/variance_levels.py``: the launch level dominates)."""
MIN_ROUNDS = 2
MIN_PAIRS = 3
"""At least this many launch pairs per configuration (two pairs give one degree of freedom)."""
MAX_PAIRS = 40
"""At most this many launch pairs per configuration, whatever ``duration`` allows."""
SLICE_MARGIN_S = 0.005
"""Time between sending a slice's ``go`` and its start, so that the copies are waiting."""
SLICE_SERIES = ("throughput", "latency_ms_p50", "latency_ms_p99")
"""Per-slice series each side records (the gated metrics' names)."""
T = TypeVar("T")


def planned_pairs(duration: float, rounds: int, slice_s: float) -> int:
    """Launch pairs that fit ``duration`` seconds of measuring per side (at least
    ``MIN_PAIRS``, at most ``MAX_PAIRS``)."""
    fitting = int(math.floor(duration / (rounds * slice_s) * (1 + 1e-9)))
    return max(MIN_PAIRS, min(MAX_PAIRS, fitting))


def slice_length(ready: Sequence[messages.Ready]) -> float:
    """A slice of ``SLICE_S``, or of ``CALLS_PER_SLICE`` calls of the slowest copy's warm-up."""
    per_call = max((r.warmup_ms / 1e3 / max(r.warmup_calls, 1) for r in ready), default=0.0)
    return max(SLICE_S, CALLS_PER_SLICE * per_call)


def new_seed() -> int:
    """A fresh seed for the order of the slices (recorded in every paired report)."""
    return int(np.random.SeedSequence().generate_state(1)[0])


def launch_order(seed: int, salt: Sequence[int], pair: int) -> tuple[str, str]:
    """Which side's copies start first in launch pair ``pair``: a fair coin from ``seed``."""
    flip = np.random.default_rng([seed, *salt, pair, 1]).integers(0, 2)
    return ("base", "head") if flip else ("head", "base")


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


@dataclass
class SideBudget:
    """The seconds one side may be waited for in a launch pair: its own deadline, so that a
    side that hangs is the one named and never uses up the other side's time."""

    limit_s: float
    used_s: float = 0.0

    def wait(self, waiting: Callable[[Deadline], T]) -> T:
        """Run ``waiting`` with the deadline this side has left; count the time it took."""
        started = time.monotonic()
        try:
            return waiting(Deadline(started + self.limit_s - self.used_s, self.limit_s))
        finally:
            self.used_s += time.monotonic() - started


class CopySide:
    """The copies of one side of a launch pair, driven over their pipes."""

    def __init__(self, name: str, procs: list[ModelProcess], budget: SideBudget,
                 expected: type = messages.Timings) -> None:
        self.name = name
        self.procs = procs
        self.budget = budget
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
        """Every copy's timings of the current slice (``expected``'s messages)."""
        return self.wait(self.expected, "measuring")

    def wait(self, expected: type, phase: str) -> list[Any]:
        """One ``expected`` message from every copy, under this side's own deadline."""
        try:
            return self.budget.wait(lambda deadline: collect(
                self.procs, expected, deadline, f"{phase} ({self.name} side)"))
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
        "latency_sketch": stats.latency_sketch(lats),
    })
    series = {name: [f[name] for f in figures] for name in SLICE_SERIES}
    cpu = cpu_series(records, warm) if records else []
    return {"metrics": metrics, "series": series, "cpu_s": cpu}


# -- one configuration --------------------------------------------------------------------------


class Stop(Protocol):
    """A stopping rule's answer (``gating.paired.Look``): stop or go on, and why."""

    @property
    def stop(self) -> bool: ...

    @property
    def code(self) -> str: ...

    @property
    def reason(self) -> str: ...


@dataclass(frozen=True)
class Stopped:
    """A stop the engine decides itself: the base failed, or the planned pairs ran."""

    stop: bool
    code: str
    reason: str


StopRule = Callable[[Mapping[str, Any], int], Stop]
"""(the ``paired`` part so far, with its ``launches`` and the report's ``scenario``, which
picks the metrics compared; the planned pairs) -> whether to stop
(``gating.paired.look`` bound to the call's tolerances and family)."""
StopRules = Callable[[int], StopRule]
"""The number of configurations of the call (the gate's family) -> the stopping rule
(``gating.paired.stop_rules``: the engine does not import the gate above it)."""


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
    """Rounds per launch pair; None: ``DEFAULT_ROUNDS``."""
    seed: int | None = None
    revision: str | None = None
    """The base revision as given and its commit, e.g. ``origin/main (3f2a9c1d...)``."""
    absent: str | None = None
    stop_rules: StopRules | None = None
    """After each pair: whether the pairs so far decide; None: run the planned pairs."""

    def with_seed(self) -> PairedRequest:
        """This request with a seed drawn now if it had none (one seed per call)."""
        return self if self.seed is not None else dataclasses.replace(self, seed=new_seed())


@dataclass
class LaunchPair:
    """One launch pair: which side started first, each side's readiness and recorded slices."""

    order: tuple[str, str]
    round_order: list[tuple[str, str]]
    ready: dict[str, list[messages.Ready]]
    result: ScheduleResult
    interference: Interference | None
    wall_s: float
    cores: list[str]

    def entry(self, batch_size: int, generate: bool = False) -> Launch:
        """The pair as the report's ``paired.launches`` records it (``values``: the token
        series in the generate scenario)."""
        sides = {name: side_summary(self.result.slices[name], batch_size,
                                    self.result.warm.get(name), generate)
                 for name in SIDES if self.result.slices[name]}
        return {
            "order": self.order[0], "round_order": [pair[0] for pair in self.round_order],
            "rounds": len(self.result.slices["head"]),
            "values": {name: side["series"] for name, side in sides.items()},
            "cpu_s": {name: side["cpu_s"] for name, side in sides.items()},
            "load_ms": {name: _mean([r.load_ms for r in ready])
                        for name, ready in self.ready.items()},
            "warmup_ms": {name: _mean([r.warmup_ms for r in ready])
                          for name, ready in self.ready.items()},
            "interference": self.interference, "wall_s": round(self.wall_s, 3),
        }


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def run_paired_configuration(
    context: BaseContext,
    head_job: Job,
    base_source: ModelSource | None,
    config: RunConfig,
    inputs: Any,
    request: PairedRequest,
    base_failure: str | None = None,
    configurations: int = 1,
) -> Report:
    """Measure one configuration paired (one of ``configurations`` of the call, the stopping
    rule's family); never raises for a model's fault.

    ``base_source`` None (with ``base_failure`` or ``request.absent`` saying why) measures the
    head alone, as a plain run, and records why there is no comparison.
    """
    assert request.seed is not None
    rounds = request.rounds or DEFAULT_ROUNDS
    header: Paired = {"revision": request.revision, "rounds": rounds, "seed": request.seed}
    if base_source is None:
        report = run_configuration(context, head_job, config, inputs)
        status = "absent" if request.absent else "error"
        report["paired"] = {**header, "base_status": status,
                            "base_error": request.absent or base_failure or "no base"}
        return report
    jobs = side_jobs(head_job, base_source, request)
    try:
        rule = request.stop_rules(configurations) if request.stop_rules else None
        return measure_paired(context, jobs, config, inputs, rule, rounds, header)
    except ConfigurationFailed as failure:
        report = error_report(jobs["head"], config, str(failure))
    except Exception:  # a bug of ours must not hide the other configurations
        report = error_report(jobs["head"], config, "internal error:\n" + traceback.format_exc())
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
    rule: StopRule | None,
    rounds: int,
    header: Paired,
) -> Report:
    """Launch pairs until ``rule`` stops them (or the base fails, or the planned pairs ran
    without a rule); the head's report."""
    salt = (config.batch_size, config.n_models, config.workers_per_model, config.pipeline_size)
    pairs: list[LaunchPair] = []
    entries: list[Launch] = []  # each pair's report entry, computed once (the rule reads all)
    slice_s = math.nan
    planned = MIN_PAIRS
    base_error: str | None = None
    stop: Stop = Stopped(True, "cap", "")
    scenario = "generate" if jobs["head"].generate is not None else "closed"
    while True:
        index = len(pairs)
        pair, base_error = launch_pair(context, jobs, config, inputs, rounds, slice_s,
                                       launch_order(header["seed"], salt, index),
                                       slice_order(rounds, header["seed"], (*salt, index)))
        if index == 0:
            slice_s = pair_slice(pair)
            planned = planned_pairs(jobs["head"].duration, rounds, slice_s)
        pairs.append(pair)
        if base_error is not None:
            stop = Stopped(True, "base failed", "the base side failed")
            break
        entries.append(pair.entry(config.batch_size, scenario == "generate"))
        if rule is not None:
            stop = rule({"scenario": scenario, "launches": entries}, planned)
        elif len(pairs) >= planned:
            stop = Stopped(True, "cap", f"the {planned} planned pairs ran")
        if stop.stop:
            break
    return paired_report(jobs, config, pairs, entries, {**header, "slice_s": slice_s,
                                                        "planned_pairs": planned},
                         stop, base_error)


def pair_slice(pair: LaunchPair) -> float:
    """The slice length the first pair used (every later pair uses the same)."""
    records = pair.result.slices["head"]
    return (records[0].end_ns - records[0].start_ns) / 1e9 if records else SLICE_S


def launch_pair(
    context: BaseContext,
    jobs: dict[str, Job],
    config: RunConfig,
    inputs: Any,
    rounds: int,
    slice_s: float,
    order: tuple[str, str],
    round_order: list[tuple[str, str]],
) -> tuple[LaunchPair, str | None]:
    """Start fresh copies of both sides (``order[0]``'s first), run the warm round and the
    rounds, stop the copies: the pair, and why the base failed (None when it did not)."""
    started = time.perf_counter()
    procs: dict[str, list[ModelProcess]] = {"head": [], "base": []}
    budgets = {name: SideBudget(jobs["head"].timeout_for()) for name in SIDES}
    failures: dict[str, str] = {}
    try:
        for name in order:
            try:
                start_copies(context, jobs[name], config, inputs, procs[name])
            except ConfigurationFailed as failure:
                if name == "head":
                    raise
                failures["base"] = f"base side: {failure}"
        ready: dict[str, list[messages.Ready]] = {}
        for name in order:
            if name in failures:
                continue
            try:
                ready[name] = CopySide(name, procs[name], budgets[name]).wait(
                    messages.Ready, "loading and warming up")
            except ConfigurationFailed as failure:
                if name == "head":
                    raise
                failures["base"] = str(failure)
        for proc in procs["base"] if "base" in failures else []:
            proc.kill()
        if not math.isfinite(slice_s):
            slice_s = slice_length([r for side in ready.values() for r in side])
        expected = messages.Generated if jobs["head"].generate is not None else messages.Timings
        sides = {name: CopySide(name, procs[name], budgets[name], expected) for name in ready}
        meter = interference.Meter(measured_cpus(procs["head"]),
                                   [r.pid for side in ready.values() for r in side])
        meter.start()
        result = run_schedule(sides, round_order, slice_s)
        figures = meter.stop(sum(t.cpu_s for t in result.last_timings()))
    finally:
        for side in procs.values():
            for proc in side:
                proc.kill()
    failures.update(result.failures)
    if "base" not in failures and not result.slices["base"]:
        failures["base"] = "the base side recorded no slice"
    pair = LaunchPair(order, round_order, ready, result, figures, time.perf_counter() - started,
                      [format_cores(p.spec.placement.cores) for p in procs["head"]])
    return pair, failures.get("base")


def paired_report(
    jobs: dict[str, Job],
    config: RunConfig,
    pairs: list[LaunchPair],
    entries: list[Launch],
    header: Paired,
    stop: Stop,
    base_error: str | None,
) -> Report:
    """The head's report (its slices, all pairs', are its windows) with the base side and
    every launch pair whose both sides measured (``entries``) under ``paired``."""
    head_job = jobs["head"]
    generate = head_job.generate is not None
    head_records = [r for p in pairs for r in p.result.slices["head"]]
    head = side_summary(head_records, config.batch_size, generate=generate)
    if not head_records or head["metrics"]["total_infs"] == 0:
        raise ConfigurationFailed(
            f"no call finished within the {header['slice_s']:.3g} s slices: one inference takes "
            f"longer than a slice; raise duration or lower paired_rounds")
    report: Report = {
        **base_report(head_job, config),
        **head["metrics"],
        "load_avg_ms": _mean([r.load_ms for p in pairs for r in p.ready["head"]]),
        "warmup_avg_ms": _mean([r.warmup_ms for p in pairs for r in p.ready["head"]]),
        "status": "ok", "error": None, "cores": pairs[0].cores, "windows": head["series"],
        "launch_windows": [len(p.result.slices["head"]) for p in pairs],
        "interference": mean_interference([p.interference for p in pairs]),
    }
    complete = [p for p in pairs if p.result.slices["base"]] if base_error is None else []
    paired: Paired = {
        **header, "base_model": jobs["base"].model.filename, "pairs": len(complete),
        "stop": {"code": stop.code, "reason": stop.reason},
        "launches": entries if base_error is None else [],
        "wall_s": round(sum(p.wall_s for p in pairs), 3),
    }
    if base_error is not None:
        paired["base_status"] = isolation.base_status(base_error)
        paired["base_error"] = base_error
    else:
        base = side_summary([r for p in complete for r in p.result.slices["base"]],
                            config.batch_size, generate=generate)
        base["metrics"]["load_avg_ms"] = _mean([r.load_ms for p in complete
                                                for r in p.ready["base"]])
        base["metrics"]["warmup_avg_ms"] = _mean([r.warmup_ms for p in complete
                                                  for r in p.ready["base"]])
        paired["base_status"] = "ok"
        paired["base"] = base["metrics"]
    report["paired"] = paired
    return report


def mean_interference(figures: Sequence[Interference | None]) -> Interference | None:
    """The launch pairs' interference figures averaged (None when none could be read)."""
    known = [f for f in figures if f]
    if not known:
        return None
    return {"other_pct": round(_mean([f["other_pct"] for f in known]), 1),
            "steal_pct": round(_mean([f["steal_pct"] for f in known]), 1),
            "cpus": known[0]["cpus"]}


def check_rounds(rounds: Any) -> int:
    """``paired_rounds``: an integer of at least ``MIN_ROUNDS`` (rounds per launch pair; the
    duration bounds it from above, ``planning.check_paired``)."""
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < MIN_ROUNDS:
        raise ValueError(f"paired_rounds must be an integer >= {MIN_ROUNDS} (rounds per launch "
                         f"pair), got {rounds!r}")
    return rounds
