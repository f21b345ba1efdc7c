"""The server scenario: arrivals, latency from arrival, overload, the max_qps search, tune(),
the gate on max_qps, and the marker's refusals."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
from engine_models import Naps, Sleeper, Spins
from projects import Run, baseline_entries, reports_of

import pytest_neuronperf as npf
from pytest_neuronperf.child import open_loop
from pytest_neuronperf.engine import serving
from pytest_neuronperf.engine.serving import Queries
from pytest_neuronperf.gating.verdicts import Verdict, budget_misses, judge
from pytest_neuronperf.plugin.markers import PerfSettings, SettingsError, apply_keywords
from pytest_neuronperf.reports import config_key, config_label
from pytest_neuronperf.tuning import pareto_front, tuning_of

MS = 1_000_000
X = np.zeros((1, 4), dtype=np.float32)


# --- arrivals ----------------------------------------------------------------------------------


def test_arrivals_are_seeded_per_copy_sorted_inside_the_window_and_at_the_rate():
    a = open_loop.arrival_offsets_ns(200.0, 5.0, seed=7, copy_index=0)
    assert np.array_equal(a, open_loop.arrival_offsets_ns(200.0, 5.0, seed=7, copy_index=0))
    assert not np.array_equal(a[:50], open_loop.arrival_offsets_ns(200.0, 5.0, 7, 1)[:50])
    assert not np.array_equal(a[:50], open_loop.arrival_offsets_ns(200.0, 5.0, 8, 0)[:50])
    assert np.all(np.diff(a) >= 0) and a[0] >= 0 and a[-1] < 5 * 10**9
    assert abs(len(a) - 1000) < 5 * math.sqrt(1000)  # Poisson count: mean 1000, sd ~32
    gaps = np.diff(a) / 1e9
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.15)  # exponential: CV 1


def test_a_non_positive_rate_is_refused():
    with pytest.raises(ValueError, match="positive"):
        open_loop.arrival_offsets_ns(0.0, 1.0, 0, 0)


# --- the queue, on a fake clock ----------------------------------------------------------------


class FakeClock:
    """A clock that only moves when someone waits on it."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now

    def wait(self, until: int) -> None:
        self.now = max(self.now, until)


class TickingClock(FakeClock):
    """Moves 10 us on every read, as a spinning caller sees it."""

    def __call__(self) -> int:
        self.now += 10_000
        return self.now


def test_a_query_is_taken_at_its_arrival_or_at_once_if_it_already_passed():
    clock = FakeClock()
    queue = open_loop.ArrivalQueue(np.array([10, 20, 30]) * MS, 1, None, 10**12, clock,
                                   clock.wait)
    assert list(queue.take()) == [0] and clock.now == 10 * MS  # waited for the arrival
    clock.now = 35 * MS  # a slow call: both later queries arrived meanwhile
    assert list(queue.take()) == [1] and clock.now == 35 * MS  # served at once, in order
    assert list(queue.take()) == [2]
    assert not queue.take()


def test_dynamic_batching_groups_up_to_the_batch_size_or_the_delay():
    clock = FakeClock()
    arrivals = np.array([0, 1, 2, 3, 10, 30]) * MS
    queue = open_loop.ArrivalQueue(arrivals, 3, 5 * MS, 10**12, clock, clock.wait)
    assert list(queue.take()) == [0, 1, 2]  # full at 3
    assert list(queue.take()) == [3]  # the next one arrives 7 ms later: beyond the 5 ms delay
    clock.now = 40 * MS  # a long call: the rest is already waiting (its delay has passed)
    assert list(queue.take()) == [4, 5]


def test_queries_are_not_taken_after_draining_ends():
    clock = FakeClock()
    queue = open_loop.ArrivalQueue(np.array([1, 2]) * MS, 1, None, 1 * MS, clock, clock.wait)
    assert list(queue.take()) == [0]
    clock.now = 3 * MS  # the call ended after the drain deadline: query 1 stays unserved
    assert not queue.take()


def test_sleep_until_sleeps_for_long_gaps_and_not_at_all_for_past_arrivals(monkeypatch):
    slept: list[float] = []
    clock = TickingClock()

    def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += int(seconds * 1e9)

    monkeypatch.setattr(open_loop.time, "sleep", fake_sleep)
    clock.now = 100 * MS
    open_loop.sleep_until(50 * MS, clock)
    assert slept == []
    open_loop.sleep_until(200 * MS, clock)
    assert len(slept) == 1  # one sleep, then a short spin
    assert slept[0] == pytest.approx((100 * MS - open_loop.SPIN_NS) / 1e9, abs=1e-4)
    assert clock.now >= 200 * MS


# --- latency from arrival ------------------------------------------------------------------


def queries(arrival_ms, start_ms, end_ms) -> Queries:  # type: ignore[no-untyped-def]
    arr = (np.array(arrival_ms, dtype=float) * MS).astype(np.int64)
    start = np.array([s * MS if s >= 0 else -1 for s in start_ms], dtype=np.int64)
    end = np.array([e * MS if e >= 0 else -1 for e in end_ms], dtype=np.int64)
    return Queries(arr, start, end, np.zeros(len(arr), dtype=np.int64))


def test_latency_counts_the_wait_behind_a_slow_call():
    # one server, 5 ms calls, queries 1 ms apart: each waits for the ones before it
    q = queries([0, 1, 2, 3], [0, 5, 10, 15], [5, 10, 15, 20])
    fields = serving.server_fields(q, 0, 1.0, 1, 1)
    assert fields["latency_ms_p0"] == pytest.approx(5)
    assert fields["latency_ms_p100"] == pytest.approx(17)  # arrived at 3, done at 20
    assert fields["queue_ms_p50"] == pytest.approx(6)  # waits 0, 4, 8, 12
    assert fields["achieved_qps"] == pytest.approx(4)
    assert fields["overloaded"] is False and fields["backlog"] == 0


def test_unserved_queries_make_the_run_overloaded():
    q = queries([0, 1, 2], [0, -1, -1], [5, -1, -1])
    fields = serving.server_fields(q, 0, 1.0, 1, 1)
    assert fields["unserved"] == 2 and fields["overloaded"] is True


def test_overload_needs_a_backlog_that_grows_with_the_offered_load():
    assert not serving.is_overloaded(offered=1000, backlog=10, unserved=0, backlog_half=5)
    assert not serving.is_overloaded(offered=1000, backlog=49, unserved=0, backlog_half=20)
    assert serving.is_overloaded(offered=1000, backlog=200, unserved=0, backlog_half=100)
    assert not serving.is_overloaded(offered=30, backlog=8, unserved=0, backlog_half=4)  # floor
    # one stall near the end: a backlog now, none at half time; the queue did not keep growing
    assert not serving.is_overloaded(offered=1000, backlog=200, unserved=0, backlog_half=3)


def test_lindley_recursion_matches_a_hand_computed_queue():
    gaps = np.array([0.0, 1.0, 1.0, 10.0])
    service = np.array([3.0, 3.0, 3.0, 3.0])
    assert list(serving.sojourn_times(gaps, service)) == [3.0, 5.0, 7.0, 3.0]
    assert list(serving.sojourn_times(gaps, service, servers=2)) == [3.0, 3.0, 4.0, 3.0]


# --- a real engine: behaviour, not timing -----------------------------------------------------


def serve(qps: float, **kwargs: Any) -> dict[str, Any]:
    """One open-loop run of ``Spins`` at ``qps``, with every query's timestamps."""
    settings = {"n_models": 1, "workers_per_model": 1, "duration": 1.0, "warmup": 0.05,
                "verbosity": 0, **kwargs}
    [report] = npf.cpu.benchmark(Spins, X, scenario="server", target_qps=qps,
                                 return_timers=True, **settings)
    assert report["status"] == "ok", report["error"]
    return report


def test_far_below_capacity_the_queue_is_stable_and_latency_runs_from_arrival(monkeypatch):
    monkeypatch.setenv("SPIN_MS", "5")  # capacity ~200 qps; 20 qps is 0.1x
    report = serve(20.0)
    assert report["scenario"] == "server" and report["target_qps"] == 20.0
    assert report["overloaded"] is False and report["unserved"] == 0
    arrival, start, end = (np.array(report["timers"][k][0]) for k in ("arrival", "start", "end"))
    assert np.all(start >= arrival - 0.01) and np.all(end > start)  # never served early
    assert np.all(np.diff(start) >= 0)  # one worker: arrival order
    assert report["latency_ms_p0"] >= 4.5  # a 5 ms spin, counted from arrival
    assert 0 < report["achieved_qps"] < 60
    assert len(report["windows"]["latency_ms_p99"]) >= 5
    assert report["arrival_seed"] == serving.DEFAULT_SEED


def test_far_beyond_capacity_the_run_is_overloaded_and_misses_any_budget(monkeypatch):
    monkeypatch.setenv("SPIN_MS", "5")  # capacity ~200 qps; 2000 qps is 10x
    report = serve(2000.0)
    assert report["overloaded"] is True
    assert report["achieved_qps"] < 1000
    assert report["queue_ms_p99"] > 100  # the queue grew for the whole second
    assert budget_misses(report, {"p99_ms": 1e9})  # even a huge budget: never met


def test_dynamic_batching_serves_one_sample_per_query(monkeypatch):
    monkeypatch.setenv("SPIN_MS", "2")
    [report] = npf.cpu.benchmark(Spins, X, batch_sizes=4, n_models=1, workers_per_model=1,
                                 duration=1.0, warmup=0.05, verbosity=0, scenario="server",
                                 target_qps=40.0, max_queue_delay_ms=5, return_timers=True)
    assert report["status"] == "ok", report["error"]
    assert report["max_queue_delay_ms"] == 5 and "delay=5ms" in config_label(report)
    assert report["total_infs"] == pytest.approx(report["achieved_qps"] * 1.0, abs=1)
    assert not report["overloaded"]


def test_a_max_search_on_the_engine_reports_a_confirmed_rate_and_window_samples(monkeypatch):
    monkeypatch.setenv("SPIN_MS", "2")  # capacity ~500 qps; p99 500 ms: only overload fails
    [report] = npf.cpu.benchmark(Spins, X, n_models=1, workers_per_model=1, duration=1.0,
                                 warmup=0.05, verbosity=0, scenario="server",
                                 target_qps="max", p99_ms=500)
    assert report["status"] == "ok", report["error"]
    trials = "\n".join(map(str, report["search"]))
    assert report["target_qps"] == "max" and report["max_qps"] > 0, trials
    assert report["search"][-1]["stage"] == "confirm" and report["search"][-1]["meets"], trials
    assert report["max_qps"] < 5 * report["capacity_qps"]
    assert len([w for w in report["windows"]["max_qps"] if w > 0]) >= 5
    assert config_key(report).endswith(",qps=max")


def test_the_rate_is_split_between_copies_each_with_its_own_stream(monkeypatch, two_cores):
    monkeypatch.setenv("SPIN_MS", "1")
    report = serve(400.0, n_models=2, cores=two_cores)
    arrivals = report["timers"]["arrival"]  # per copy, ms after the common start
    assert len(arrivals) == 2
    # each copy offers 400 / 2 queries/s for 1 s: a Poisson count of mean 200 (sd 14); seeded
    assert all(130 < len(copy) < 270 for copy in arrivals), [len(c) for c in arrivals]
    assert arrivals[0][:20] != arrivals[1][:20]  # independent streams, not one stream twice
    assert report["offered_queries"] == sum(len(copy) for copy in arrivals)


def test_a_copys_workers_share_one_queue_and_drain_it_after_the_window(monkeypatch):
    monkeypatch.setenv("NAP_MS", "20")  # two workers: at most ~100 queries/s; 400 are offered
    [report] = npf.cpu.benchmark(Naps, X, n_models=1, workers_per_model=2, duration=0.6,
                                 warmup=0.05, verbosity=0, scenario="server", target_qps=400.0,
                                 return_timers=True)
    assert report["status"] == "ok", report["error"]
    assert report["overloaded"] is True
    [arrival], [start], [end] = (report["timers"][k] for k in ("arrival", "start", "end"))
    served = [s is not None for s in start]
    # one queue, taken in arrival order: the served queries are the first ones
    count = sum(served)
    assert 0 < count < len(served) and served == [True] * count + [False] * (len(served) - count)
    # both workers take from it: two calls run at once at some point, never three
    events = sorted([(s, 1) for s in start if s is not None]
                    + [(e, -1) for e in end if e is not None])
    running = list(itertools.accumulate(step for _, step in events))
    assert max(running) == 2
    # after the 0.6 s window, queued queries are served for min(duration, 2 s) = 0.6 s more
    # (docs/serving.md): the last one starts after 0.9 s, and none after 1.2 s (+ slack)
    last = max(s for s in start if s is not None)
    assert 900 < last < 1600, last


# --- the max_qps search, with a fake measure function -----------------------------------------


def fake_queue(capacity: float, service_ms: float = 5.0):  # type: ignore[no-untyped-def]
    """p99 that grows as a queue's does towards capacity; overloaded beyond it."""
    calls: list[tuple[float, float]] = []

    def measure(qps: float, duration: float) -> dict[str, Any]:
        calls.append((qps, duration))
        load = qps / capacity
        if load >= 1:
            return {"status": "ok", "latency_ms_p99": 1e4, "overloaded": True}
        return {"status": "ok", "latency_ms_p99": service_ms / (1 - load), "overloaded": False}

    return measure, calls


def test_the_search_brackets_bisects_and_confirms_at_full_duration():
    measure, calls = fake_queue(capacity=200.0)
    # p99 = 5 / (1 - q/200) <= 20  <=>  q <= 150
    max_qps, report, trials = serving.search_max_qps(measure, 20.0, 200.0, 10.0)
    assert 150 * 0.9 < max_qps <= 150
    assert report["latency_ms_p99"] <= 20
    assert calls[-1] == (max_qps, 10.0)  # confirmed at the full duration
    assert all(d < 10.0 for _, d in calls[:-1])  # trials are short
    assert trials[-1]["stage"] == "confirm" and trials[-1]["meets"]


def test_an_overloaded_rate_never_meets_the_budget():
    def measure(qps: float, duration: float) -> dict[str, Any]:  # low p99, but overloaded
        return {"status": "ok", "latency_ms_p99": 1.0, "overloaded": qps > 50}

    max_qps, _, trials = serving.search_max_qps(measure, 20.0, 200.0, 5.0)
    assert max_qps <= 50
    assert not any(t["meets"] for t in trials if t["qps"] > 50)


def test_a_budget_no_rate_meets_gives_zero():
    measure, _ = fake_queue(capacity=200.0, service_ms=30.0)
    max_qps, _, _ = serving.search_max_qps(measure, 20.0, 200.0, 5.0)
    assert max_qps == 0.0


def test_a_failed_confirmation_steps_the_rate_down():
    def measure(qps: float, duration: float) -> dict[str, Any]:  # full runs are slower
        limit = 70 if duration < 5 else 60  # short trials say 70 qps, full runs 60
        p99 = 10.0 if qps < limit else 30.0
        return {"status": "ok", "latency_ms_p99": p99, "overloaded": False}

    max_qps, report, trials = serving.search_max_qps(measure, 20.0, 100.0, 5.0)
    assert 0 < max_qps < 60 and report["latency_ms_p99"] <= 20
    assert [t["meets"] for t in trials if t["stage"] == "confirm"][-1]


def test_window_estimates_fall_when_the_service_gets_slower():
    def run_of(service_ms: float) -> Queries:
        n = 200
        arrival = np.arange(n) * 10 * MS
        return Queries(arrival, arrival, arrival + int(service_ms * MS),
                       np.zeros(n, dtype=np.int64))

    fast = serving.window_max_qps(run_of(5.0), 0, 2.0, 1, 20.0)
    slow = serving.window_max_qps(run_of(6.5), 0, 2.0, 1, 20.0)
    assert len(fast) == 10 and min(fast) > max(slow) > 0


# --- the gate and the report's text -------------------------------------------------------------


def search_report(max_qps_windows: list[float]) -> dict[str, Any]:
    return {"status": "ok", "target_qps": "max", "scenario": "server",
            "max_qps": float(np.median(max_qps_windows)),
            "batch_size": 1, "n_models": 1, "workers_per_model": 1, "pipeline_size": 1,
            "throughput_avg": 100.0, "latency_ms_p50": 5.0, "latency_ms_p99": 19.0,
            "windows": {"max_qps": max_qps_windows, "throughput": [1.0] * 10}}


def test_the_gate_compares_max_qps_only_and_catches_a_fall():
    rng = np.random.default_rng(1)
    base = search_report(list(150 + rng.normal(0, 3, 10)))
    same = judge(search_report(list(150 + rng.normal(0, 3, 10))), base)
    assert [c.metric for c in same.comparisons] == ["max_qps"]
    assert same.verdict is Verdict.PASS
    fell = judge(search_report(list(110 + rng.normal(0, 3, 10))), base)
    assert fell.verdict is Verdict.REGRESSED


def test_closed_loop_reports_are_not_gated_on_max_qps():
    report = {"status": "ok", "windows": {m: [1.0] * 10 for m in
                                          ("throughput", "latency_ms_p50", "latency_ms_p99")}}
    assert "max_qps" not in [c.metric for c in judge(report, report).comparisons]


def test_server_configurations_have_their_own_baseline_keys_and_closed_ones_keep_theirs():
    closed = {"batch_size": 1, "n_models": 2, "workers_per_model": 1, "pipeline_size": 1}
    assert config_key(closed) == "bs=1,n_models=2,workers=1,pipeline=1"
    server = {**closed, "scenario": "server", "target_qps": 100.0}
    assert config_key(server) == "bs=1,n_models=2,workers=1,pipeline=1,qps=100"
    assert config_key({**server, "target_qps": "max"}).endswith(",qps=max")
    assert config_label(server) == "bs=1 n=2 w=1 p=1 qps=100"


# --- tune ---------------------------------------------------------------------------------------


def fake(bs: int, n: int, tput: float, p99: float, **extra: Any) -> dict[str, Any]:
    return {"status": "ok", "batch_size": bs, "n_models": n, "workers_per_model": 1,
            "pipeline_size": 1, "throughput_avg": tput, "latency_ms_p99": p99, **extra}


def test_tune_ranks_by_throughput_among_those_meeting_the_budget():
    reports = [fake(1, 1, 100, 5), fake(8, 1, 400, 15), fake(8, 2, 700, 30),
               fake(1, 2, 200, 6), fake(4, 2, 500, 18, overloaded=True),
               {"status": "error", "batch_size": 16, "n_models": 1, "workers_per_model": 1,
                "pipeline_size": 1, "throughput_avg": None, "latency_ms_p99": None}]
    tuning = tuning_of(reports, 20.0)
    assert [r["throughput_avg"] for r in tuning.ranked] == [400, 200, 100]
    assert tuning.best is reports[1]
    text = npf.tuning.format_tuning(tuning)
    assert text.splitlines()[-1].startswith("deploy bs=8 n=1 w=1 p=1: 400.0 samples/s")


def test_the_pareto_front_keeps_only_undominated_configurations():
    reports = [fake(1, 1, 100, 5), fake(8, 1, 400, 15), fake(2, 1, 90, 8),
               fake(8, 2, 700, 30), fake(4, 1, 300, 16)]
    front = pareto_front(reports)
    assert [r["throughput_avg"] for r in front] == [700, 400, 100]


def test_tune_says_when_nothing_meets_the_budget():
    tuning = tuning_of([fake(1, 1, 100, 25), fake(8, 1, 400, 40)], 20.0)
    assert tuning.best is None
    assert "no configuration meets p99 <= 20 ms; the lowest p99 is 25" in (
        npf.tuning.format_tuning(tuning))


def test_tune_ranks_searches_by_the_samples_they_serve_at_max_qps():
    a = fake(1, 1, 90, 19, target_qps="max", max_qps=150.0)
    b = fake(4, 1, 300, 19, target_qps="max", max_qps=60.0)  # 240 samples/s
    none = fake(8, 1, 500, 30, target_qps="max", max_qps=0.0)
    assert tuning_of([a, b, none], 20.0).ranked == [b, a]


def test_tune_on_real_runs_ranks_them_and_says_which_to_deploy(capsys):
    tuning = npf.tune(Sleeper, X, p99_ms=1e4, batch_sizes=[1, 2], n_models=1,
                      workers_per_model=[1, 2], duration=0.3, warmup=0.05, verbosity=0,
                      framework="python")
    assert [config_label(r) for r in tuning.reports] == [
        "bs=1 n=1 w=1 p=1", "bs=1 n=1 w=2 p=1", "bs=2 n=1 w=1 p=1", "bs=2 n=1 w=2 p=1"]
    assert all(r["status"] == "ok" for r in tuning.reports)
    throughputs = [r["throughput_avg"] for r in tuning.ranked]
    assert len(throughputs) == 4 and throughputs == sorted(throughputs, reverse=True)
    assert tuning.best is tuning.ranked[0] and tuning.front[0] is tuning.best
    npf.print_tuning(tuning)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["rank", "configuration", "throughput", "latency_ms_p99", "meets",
                                "front"]
    assert len(lines) == 1 + 4 + 1
    assert lines[-1].startswith(f"deploy {config_label(tuning.best)}: ")
    assert lines[-1].endswith("(4 of 4 configurations meet the budget)")


def test_tune_in_the_server_scenario_measures_the_given_rates():
    tuning = npf.tune(Sleeper, X, p99_ms=1e4, batch_sizes=1, n_models=1, workers_per_model=1,
                      scenario="server", target_qps=[20, 40], duration=0.5, warmup=0.05,
                      verbosity=0, framework="python")
    assert [(r["status"], r["target_qps"]) for r in tuning.reports] == [("ok", 20.0),
                                                                         ("ok", 40.0)]
    # far below capacity both are served in full: the doubled rate serves more samples/s
    assert tuning.best is not None and tuning.best["target_qps"] == 40.0
    assert npf.tuning.format_tuning(tuning).splitlines()[-1].startswith(
        "deploy bs=1 n=1 w=1 p=1 qps=40: ")


# --- settings and refusals ---------------------------------------------------------------------


@pytest.mark.parametrize(("keywords", "message"), [
    ({"scenario": "server"}, "needs target_qps"),
    ({"target_qps": 10}, "only applies to scenario='server'"),
    ({"scenario": "server", "target_qps": "max"}, "set p99_ms too"),
    ({"scenario": "server", "target_qps": [10, -1]}, "target_qps must be a positive number"),
    ({"scenario": "open"}, "scenario must be one of closed, server"),
    ({"scenario": "server", "target_qps": "max", "p99_ms": 5, "max_queue_delay_ms": 2},
     "not supported"),
])
def test_bad_server_settings_are_refused(keywords, message):
    with pytest.raises(SettingsError, match=message):
        apply_keywords(PerfSettings(), keywords)


def test_a_closed_loop_marker_keeps_its_p99_budget():
    settings = apply_keywords(PerfSettings(), {"scenario": "closed", "p99_ms": 20})
    assert settings.budgets == {"p99_ms": 20.0} and settings.scenario_arguments() == {}


def test_server_settings_reach_benchmark():
    settings = apply_keywords(PerfSettings(), {"scenario": "server", "target_qps": [10, 20.5],
                                               "p99_ms": 20, "max_queue_delay_ms": 1})
    assert settings.scenario_arguments() == {"scenario": "server", "target_qps": [10.0, 20.5],
                                           "p99_ms": 20.0, "max_queue_delay_ms": 1.0}
    assert PerfSettings().scenario_arguments() == {}


def test_the_library_refuses_a_server_run_without_a_rate():
    with pytest.raises(ValueError, match="needs target_qps"):
        npf.cpu.benchmark(Spins, X, scenario="server")


def test_a_marker_without_target_qps_is_a_usage_error_naming_the_test(pytester, run: Run):
    pytester.makepyfile('''
import numpy as np
import pytest

@pytest.mark.neuronperf(scenario="server", n_models=1)
def test_serving(neuronperf):
    pass
''')
    result = run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_serving*scenario='server' needs target_qps*"])


SERVER_TESTS = '''
import time

import numpy as np
import pytest


class SpinModel:
    def __call__(self, x):
        deadline = time.perf_counter() + 0.002
        while time.perf_counter() < deadline:
            pass
        return x


@pytest.mark.neuronperf(n_models=1, workers_per_model=1, duration=1, warmup=0.05,
                        scenario="server", target_qps=40, p99_ms=5000)
def test_serving(neuronperf):
    [report] = neuronperf.benchmark(SpinModel, np.zeros((1, 4), np.float32),
                                    framework="python")
    assert report["status"] == "ok", report["error"]
'''


def test_a_server_baseline_is_saved_per_rate_with_windows_and_gated_like_closed_ones(
        pytester, run: Run):
    pytester.makepyfile(SERVER_TESTS)
    saved = run("--neuronperf-baseline=perf.json", "--neuronperf-save-baseline")
    saved.assert_outcomes(passed=1)
    [entries] = baseline_entries(pytester.path / "perf.json").values()
    [(key, entry)] = entries.items()
    assert key == "bs=1,n_models=1,workers=1,pipeline=1,qps=40"
    assert len(entry["windows"]["throughput"]) >= 10  # two runs of >= 5 windows (saved twice)
    assert "queue_ms_p99" in entry["metrics"]
    run("--neuronperf-baseline=perf.json", "--neuronperf-json=out.json")
    [report] = reports_of(pytester.path / "out.json")
    assert report["verdict"] != "NEW" and "baseline" in report
