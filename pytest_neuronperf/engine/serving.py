"""The server scenario on the parent side: its settings, the open-loop report, overload, and the
search for the highest rate that meets a p99 budget (``target_qps="max"``).

Pure functions over timestamps and reports, apart from :func:`search_max_qps`, which calls the
``measure`` function it is given (the engine's, or a fake one in tests).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

import numpy as np

from pytest_neuronperf.engine import windows as stats
from pytest_neuronperf.engine.limits import format_bytes, memory_budget
from pytest_neuronperf.protocol.specs import ServerSpec
from pytest_neuronperf.reports import Report, SearchTrial

SCENARIOS = ("closed", "server", "generate")
DEFAULT_SEED = 0
"""Arrivals are seeded: a baseline and a later run see the same arrival process, so their
difference is the model's, not the dice's."""
OVERLOAD_BACKLOG_FRACTION = 0.05
OVERLOAD_MIN_BACKLOG = 10
"""``overloaded`` (the queue kept growing) when any query is left unserved after draining, or
when at the end of the window more than this fraction of the queries offered (and more than
``OVERLOAD_MIN_BACKLOG``) still wait *and* at half time more than half that many did. A stable
queue's backlog is its steady-state length, which does not grow with the duration (M/D/1 at
90 % load: 4 queries on average); an overloaded one holds ``1 - capacity / rate`` of what was
offered so far, at half time as at the end, so 5 % flags every rate above ~1.05x capacity in a
long enough run. Asking for the backlog at both times keeps one stall (a machine hiccup near
the end, or one the queue recovered from) from reading as overload."""
MAX_DRAIN_S = 2.0
"""After the window, queued queries are still served for min(duration, this)."""

START_FRACTION = 0.5
"""The ``max`` search starts at this fraction of the closed-loop capacity."""
BISECT_STEPS = 5
MAX_DOUBLINGS = 8
MAX_HALVINGS = 12
TRIAL_QUERIES = 400
"""A search trial lasts long enough to offer about this many queries (p99 from ~4 above it)."""
MIN_TRIAL_S = 1.0
MIN_QUERIES = 50
"""The search goes no lower than the rate that offers this many queries in the duration."""
CONFIRMATIONS = 5
"""A failed full-duration confirmation steps the rate down by ``CONFIRM_STEP``, this often
(down to half the searched rate: a drifting machine's capacity moves between trials)."""
CONFIRM_STEP = 0.85
BYTES_PER_QUERY = 6 * 8
"""Memory one offered query takes at most: its arrival is generated as float64 gaps, their
cumulative sum, a mask and the int64 copy a copy keeps (open_loop.arrival_offsets_ns), and its
serving records its start and end (int64 each)."""
SIM_QUERIES = 4000
"""Simulated queries per window when estimating a window's max_qps from its service times."""


@dataclass(frozen=True)
class ServerSettings:
    """What a ``benchmark`` call asked of the server scenario (the same for all its configs)."""

    seed: int = DEFAULT_SEED
    max_queue_delay_ms: float | None = None
    p99_ms: float | None = None
    """The budget ``target_qps="max"`` searches under."""
    estimate_windows: bool = False
    """Add per-window ``max_qps`` estimates to the report (the search's confirmation run)."""


def check_settings(scenario: str, target_qps: Any, p99_ms: float | None,
                   max_queue_delay_ms: float | None) -> list[float | str] | None:
    """Validate the server scenario's arguments together; the rates to sweep (None: closed)."""
    if scenario not in SCENARIOS:
        raise ValueError(f"scenario must be one of {', '.join(SCENARIOS)}, got {scenario!r}")
    if scenario == "closed":
        for name, value in (("target_qps", target_qps), ("p99_ms", p99_ms),
                            ("max_queue_delay_ms", max_queue_delay_ms)):
            if value is not None:
                raise ValueError(f"{name} only applies to scenario='server': add "
                                 f"scenario='server' or leave {name} out")
        return None
    if scenario == "generate":
        return generate_rates(target_qps, p99_ms, max_queue_delay_ms)
    if target_qps is None:
        raise ValueError("scenario='server' needs target_qps (queries/s, a list to sweep, or "
                         "'max' with p99_ms)")
    rates = target_rates(target_qps)
    if "max" in rates and p99_ms is None:
        raise ValueError("target_qps='max' searches for the highest rate that meets a p99 "
                         "budget: set p99_ms too")
    if "max" in rates and max_queue_delay_ms is not None:
        raise ValueError("target_qps='max' with max_queue_delay_ms is not supported: give "
                         "fixed target_qps rates to measure dynamic batching")
    if max_queue_delay_ms is not None:
        _positive("max_queue_delay_ms", max_queue_delay_ms, allow_zero=True)
    return rates


def generate_rates(target_qps: Any, p99_ms: float | None,
                   max_queue_delay_ms: float | None) -> list[float | str] | None:
    """The generate scenario's request rates: None (closed loop) or fixed Poisson rates."""
    for name, value in (("p99_ms", p99_ms), ("max_queue_delay_ms", max_queue_delay_ms)):
        if value is not None:
            raise ValueError(f"{name} only applies to scenario='server': the generate "
                             f"scenario's budgets are ttft_ms_p99, tpot_ms_p99 and min_goodput")
    if target_qps is None:
        return None
    rates = target_rates(target_qps)
    if "max" in rates:
        raise ValueError("target_qps='max' searches a p99 budget in scenario='server'; for "
                         "scenario='generate' give request rates, or tune(..., "
                         "scenario='generate') to find the most goodput under SLOs")
    return rates


def check_arrivals(rates: list[float | str] | None, duration: float) -> None:
    """Refuse a fixed rate whose pre-generated arrivals would not fit the memory budget
    (``engine.limits``): the copies generate every arrival of the window and the drain up
    front (together, ``target_qps`` per second whatever ``n_models`` is)."""
    fixed = [rate for rate in rates or () if isinstance(rate, float)]
    if not fixed:
        return
    rate = max(fixed)
    queries = rate * (duration + min(duration, MAX_DRAIN_S))
    needed, budget = queries * BYTES_PER_QUERY, memory_budget()
    if needed > budget:
        raise ValueError(
            f"target_qps={rate:g} for duration={duration:g} s means pre-generating about "
            f"{queries:.3g} arrivals ({format_bytes(needed)}), more than half the memory "
            f"available now ({format_bytes(budget)}): lower target_qps (no copy serves that "
            f"rate; target_qps='max' with p99_ms finds the highest one that meets the budget) "
            f"or the duration")


def target_rates(value: Any) -> list[float | str]:
    """``target_qps`` as a list of positive rates and/or ``"max"`` (deduplicated, in order)."""
    values = list(value) if isinstance(value, list | tuple) else [value]
    if not values:
        raise ValueError("target_qps must not be empty")
    rates: list[float | str] = []
    for v in values:
        rates.append("max" if v == "max" else _positive("target_qps", v))
    return list(dict.fromkeys(rates))


def _positive(name: str, value: Any, allow_zero: bool = False) -> float:
    ok = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        kind = "a number >= 0" if allow_zero else "a positive number"
        extra = " (queries/s) or 'max'" if name == "target_qps" else ""
        raise ValueError(f"{name} must be {kind}{extra}, got {value!r}")
    return float(value)


def with_rates(rates: list[float | str] | None, configs: list[Any]) -> list[Any]:
    """Each configuration at each offered rate (the server scenario's grid dimension)."""
    if rates is None:
        return configs
    return [replace(config, target_qps=rate) for config in configs for rate in rates]


def server_spec(settings: ServerSettings, target_qps: float, n_models: int, copy_index: int,
                duration_s: float, batch_size: int) -> ServerSpec:
    """One copy's share of the offered load: an independent stream of ``target_qps / n``."""
    delay = settings.max_queue_delay_ms
    return ServerSpec(
        rate=target_qps / n_models, seed=settings.seed, copy_index=copy_index,
        duration_s=duration_s, drain_s=min(duration_s, MAX_DRAIN_S),
        max_queue_delay_ns=None if delay is None else int(delay * 1e6), batch_size=batch_size,
    )


# --- The report of one open-loop run ---------------------------------------------------------


@dataclass(frozen=True)
class Queries:
    """Every copy's queries together: scheduled arrival, start and end of service (ns)."""

    arrival: np.ndarray
    start: np.ndarray
    end: np.ndarray
    copy: np.ndarray

    @classmethod
    def join(cls, served: Sequence[Any]) -> Queries:
        """From each copy's ``Served`` message."""
        return cls(
            np.concatenate([s.arrival_ns for s in served]),
            np.concatenate([s.start_ns for s in served]),
            np.concatenate([s.end_ns for s in served]),
            np.concatenate([np.full(len(s.arrival_ns), i) for i, s in enumerate(served)]),
        )


def backlog_at(queries: Queries, t_ns: int) -> int:
    """Queries that had arrived by ``t_ns`` but whose service had not started."""
    waiting = (queries.arrival <= t_ns) & ((queries.start < 0) | (queries.start > t_ns))
    return int(waiting.sum())


def is_overloaded(offered: int, backlog: int, unserved: int, backlog_half: int) -> bool:
    """The queue kept growing: see ``OVERLOAD_BACKLOG_FRACTION``."""
    limit = max(OVERLOAD_MIN_BACKLOG, OVERLOAD_BACKLOG_FRACTION * offered)
    return unserved > 0 or (backlog > limit and backlog_half > limit / 2)


def server_fields(queries: Queries, start_ns: int, duration_s: float, samples_per_query: int,
                  workers: int, estimate_budget_ms: float | None = None) -> Report:
    """The report keys of an open-loop run: NeuronPerf's, with latency from arrival, and ours.

    Latency (``latency_ms_*``) runs from each query's scheduled arrival to the end of the call
    that served it, over every query that was served (the ones that finished while draining
    after the window too); ``queue_ms_*`` from arrival to the start of service. Throughput
    counts the samples served inside the window, per window, as in the closed loop.
    """
    end_ns = start_ns + int(duration_s * 1e9)
    done = queries.end >= 0
    in_window = done & (queries.end <= end_ns)
    if not in_window.any():
        raise ValueError(f"no query finished within the {duration_s} s window: the model is "
                         f"far slower than target_qps; lower it or raise duration")
    sojourn = (queries.end - queries.arrival)[done]
    queue = (queries.start - queries.arrival)[done]
    service = (queries.end - queries.start)[done]
    ends = queries.end[done]
    windows = stats.window_series(ends, service, start_ns, duration_s, samples_per_query)
    latency_windows = stats.window_series(ends, sojourn, start_ns, duration_s, 1)
    windows["latency_ms_p50"] = latency_windows["latency_ms_p50"]
    windows["latency_ms_p99"] = latency_windows["latency_ms_p99"]
    offered = len(queries.arrival)
    backlog = backlog_at(queries, end_ns)
    unserved = int((~done).sum())
    queue_ms = queue.astype(np.float64) / 1e6
    fields: dict[str, Any] = {
        "total_infs": int(in_window.sum()) * samples_per_query,
        "throughput_avg": float(np.mean(windows["throughput"])),
        "throughput_peak": max(windows["throughput"]),
        **stats.latency_summary(sojourn),
        "latency_sketch": stats.latency_sketch(sojourn),
        "achieved_qps": float(in_window.sum()) / duration_s,
        "offered_queries": offered,
        "queue_ms_p50": float(np.percentile(queue_ms, 50)),
        "queue_ms_p99": float(np.percentile(queue_ms, 99)),
        "backlog": backlog,
        "unserved": unserved,
        "overloaded": is_overloaded(offered, backlog, unserved,
                                    backlog_at(queries, start_ns + int(duration_s * 0.5e9))),
        "windows": windows,
    }
    if estimate_budget_ms is not None:
        fields["windows"]["max_qps"] = window_max_qps(
            queries, start_ns, duration_s, workers, estimate_budget_ms)
    return cast(Report, fields)


# --- max_qps: the highest rate that meets a p99 budget ---------------------------------------


def meets_budget(report: Mapping[str, Any], p99_ms: float) -> bool:
    """A measured rate meets the budget: ok, not overloaded, and p99 within it."""
    p99 = report.get("latency_ms_p99")
    return (report.get("status") == "ok" and not report.get("overloaded")
            and p99 is not None and math.isfinite(p99) and p99 <= p99_ms)


def trial_seconds(qps: float, duration_s: float) -> float:
    """A search trial: long enough for ``TRIAL_QUERIES`` queries, never beyond the duration."""
    return min(duration_s, max(MIN_TRIAL_S, TRIAL_QUERIES / qps))


@dataclass
class Search:
    """The trials of one ``max`` search, in the order they ran."""

    p99_ms: float
    trials: list[SearchTrial] = field(default_factory=list)

    def run(self, measure: Callable[[float, float], Report], qps: float,
            duration_s: float, stage: str) -> tuple[bool, Report]:
        report = measure(qps, duration_s)
        ok = meets_budget(report, self.p99_ms)
        self.trials.append({"stage": stage, "qps": qps, "duration": duration_s,
                            "latency_ms_p99": report.get("latency_ms_p99"),
                            "overloaded": report.get("overloaded"), "meets": ok,
                            "status": report.get("status")})
        return ok, report


def search_max_qps(
    measure: Callable[[float, float], Report],
    p99_ms: float,
    capacity_qps: float,
    duration_s: float,
    final: Callable[[float, float], Report] | None = None,
) -> tuple[float, Report, list[SearchTrial]]:
    """(max_qps, the report of the confirming run, every trial) for one configuration.

    Brackets from ``START_FRACTION`` of the closed-loop capacity by doubling (or halving),
    bisects ``BISECT_STEPS`` times with short trials (:func:`trial_seconds`), then confirms
    the best rate at the full duration with ``final`` (``measure`` if None), stepping down by
    ``CONFIRM_STEP`` when the confirmation misses. A rate that is overloaded never meets the
    budget. When no rate down to ``MIN_QUERIES / duration`` meets it, max_qps is 0 and the
    report is the lowest rate's.
    """
    search = Search(p99_ms)
    confirm = final or measure

    def trial(qps: float, stage: str) -> tuple[bool, Report]:
        return search.run(measure, qps, trial_seconds(qps, duration_s), stage)

    floor = MIN_QUERIES / duration_s
    rate = max(capacity_qps * START_FRACTION, floor)
    ok, last = trial(rate, "bracket")
    lo, hi = (rate, math.inf) if ok else (0.0, rate)
    for _ in range(MAX_DOUBLINGS if ok else MAX_HALVINGS):
        rate = rate * 2 if ok else rate / 2
        if rate < floor:
            break  # a p99 of fewer queries than this says nothing: no rate meets the budget
        passed, last = trial(rate, "bracket")
        if ok and not passed:
            hi = rate
            break
        if ok:
            lo = rate
        elif passed:
            lo = rate
            break
        else:
            hi = rate
    if lo == 0.0:
        return 0.0, last, search.trials
    if math.isfinite(hi):
        for _ in range(BISECT_STEPS):
            mid = (lo + hi) / 2
            passed, _ = trial(mid, "bisect")
            lo, hi = (mid, hi) if passed else (lo, mid)
    report = last
    for _ in range(CONFIRMATIONS):
        passed, report = search.run(confirm, lo, duration_s, "confirm")
        if passed:
            return lo, report, search.trials
        lo *= CONFIRM_STEP
    return 0.0, report, search.trials


def window_max_qps(queries: Queries, start_ns: int, duration_s: float, workers: int,
                   p99_ms: float) -> list[float]:
    """Per window, the highest total rate whose simulated p99 meets ``p99_ms``.

    Each window's own service times (calls that ended in it) drive a simulated FCFS queue with
    ``workers`` servers per copy and Poisson arrivals (fixed seeds, so the estimate is a
    deterministic function of the service times): a window whose calls were slower gives a
    lower rate. These are the per-window samples the gate compares for ``max_qps``; the
    headline ``max_qps`` is the measured search result.
    """
    length_ns = stats.window_length_s(duration_s) * 1e9
    count = max(1, int(math.floor(duration_s * 1e9 / length_ns + 1e-9)))
    copies = int(queries.copy.max()) + 1 if len(queries.copy) else 1
    done = queries.end >= 0
    calls = np.unique(np.stack([queries.copy[done], queries.start[done], queries.end[done]]),
                      axis=1)
    index = np.floor((calls[2] - start_ns) / length_ns).astype(np.int64)
    service_s = (calls[2] - calls[1]).astype(np.float64) / 1e9
    estimates = []
    for k in range(count):
        window = service_s[index == k]
        estimates.append(copies * max_rate(window, workers, p99_ms / 1e3) if window.size
                         else math.nan)
    return estimates


def max_rate(service_s: np.ndarray, servers: int, budget_s: float) -> float:
    """The highest Poisson rate at which a FCFS queue of these service times meets the budget."""
    rng = np.random.default_rng(0)
    gaps = rng.exponential(1.0, SIM_QUERIES)
    services = rng.choice(service_s, SIM_QUERIES)
    if np.percentile(services, 99) > budget_s:
        return 0.0
    lo, hi = 0.0, servers / float(np.mean(services))
    for _ in range(30):
        mid = (lo + hi) / 2
        if np.percentile(sojourn_times(gaps / mid, services, servers), 99) <= budget_s:
            lo = mid
        else:
            hi = mid
    return lo


def sojourn_times(gaps_s: np.ndarray, service_s: np.ndarray, servers: int = 1) -> np.ndarray:
    """FCFS sojourn times (wait + service) for these inter-arrival gaps and service times.

    One server: Lindley's recursion, W[n+1] = max(0, W[n] + S[n] - A[n+1]), vectorised as
    X - running min(X) over X = cumsum(S - A). More servers: each query goes to the server
    that frees first (Kiefer-Wolfowitz).
    """
    if servers == 1:
        steps = np.concatenate([[0.0], service_s[:-1] - gaps_s[1:]])
        x = np.cumsum(steps)
        wait = x - np.minimum(np.minimum.accumulate(x), 0.0)
        sojourn: np.ndarray = wait + service_s
        return sojourn
    arrivals = np.cumsum(gaps_s)
    free = [0.0] * servers
    out = np.empty(len(arrivals))
    for i, (arrival, service) in enumerate(zip(arrivals, service_s, strict=True)):
        begin = max(arrival, heapq.heappop(free))
        heapq.heappush(free, begin + service)
        out[i] = begin + service - arrival
    return out
