"""Figures of the serving scenario (docs/serving.md, "Measured"): theory, LoadGen, coordinated
omission, max_qps, tune().

    PYTHONPATH=$PWD:$PWD/benchmarks .venv/bin/python benchmarks/server_study.py [a b c d e]

(a) A model that spins 5 ms per call, one copy, one worker, 100 qps for 10 s is an M/D/1 queue:
    our sojourn p50/p90/p99 against Lindley's recursion on the same arrivals, and against the
    stationary M/D/1 quantiles (a long simulated run).
(b) The same model and rate through MLPerf LoadGen's Server scenario (mlcommons-loadgen), on
    the same core, interleaved with ours.
(c) Coordinated omission: a model with a 300 ms stall every 2 s, closed loop vs 50 qps open loop.
(d) max_qps of the 5 ms model under p99 20 ms against M/D/1's answer.
(e) tune() on the README quick-start MLP with a p99 budget.

The machine may be shared: the load average is printed beside every measurement.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

import pytest_neuronperf as npf
from pytest_neuronperf.engine.serving import sojourn_times

HERE = Path(__file__).resolve().parent
CORE = 1
SERVICE_S = 0.005
QUANTILES = (50, 90, 99)


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def quantiles_ms(values_s: np.ndarray) -> list[float]:
    return [float(np.percentile(values_s, q) * 1e3) for q in QUANTILES]


def row(name: str, values: list[float], note: str = "") -> str:
    cells = " ".join(f"{v:8.2f}" for v in values)
    return f"  {name:<44} {cells}  {note}"


def header() -> str:
    return f"  {'':<44} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}"


def stationary_md1(rate: float, service_s: float, queries: int = 2_000_000) -> np.ndarray:
    """Sojourn times of a long M/D/1 run (the first 1 % dropped as warm-up)."""
    rng = np.random.default_rng(12345)
    gaps = rng.exponential(1.0 / rate, queries)
    times = sojourn_times(gaps, np.full(queries, service_s))
    return times[queries // 100:]


def ours(model: type, qps: float, duration: float, **kw: object) -> dict:
    [report] = npf.benchmark(model, np.zeros((1, 4), np.float32), framework="python",
                             n_models=1, workers_per_model=1, duration=duration,
                             scenario="server", target_qps=qps, cores=[CORE], warmup=0.5,
                             verbosity=0, return_timers=True, **kw)
    assert report["status"] == "ok", report["error"]
    return report


def same_arrivals_theory(report: dict, service_s: float | None) -> list[float]:
    """Lindley on this run's own arrivals with a fixed (or the measured) service time."""
    arrivals = np.array(report["timers"]["arrival"][0]) / 1e3
    gaps = np.diff(np.concatenate([[0.0], arrivals]))
    if service_s is None:  # queries never served (overloaded) keep the median service
        start = np.array(report["timers"]["start"][0], dtype=float)
        end = np.array(report["timers"]["end"][0], dtype=float)
        services = (end - start) / 1e3
        services[np.isnan(services)] = np.nanmedian(services)
    else:
        services = np.full(len(gaps), service_s)
    return quantiles_ms(sojourn_times(gaps, services))


def measured_service_ms(report: dict) -> float:
    start = np.array(report["timers"]["start"][0], dtype=float)
    end = np.array(report["timers"]["end"][0], dtype=float)
    return float(np.nanmedian(end - start))


def figure_a_b(rounds: int = 3) -> None:
    print("(a)+(b) 5 ms spin, 1 copy, 1 worker, 100 qps, 10 s, core", CORE)
    theory = quantiles_ms(stationary_md1(100.0, SERVICE_S))
    print(header())
    print(row("M/D/1 stationary (2e6 simulated queries)", theory))
    lg_available = True
    for i in range(rounds):
        before = load()
        report = ours(_models().Spin5ms, 100.0, 10.0)
        mine = [report[f"latency_ms_p{q}"] for q in QUANTILES]
        print(row(f"ours, round {i + 1}", mine, f"{before}; overloaded={report['overloaded']}, "
                  f"service median {measured_service_ms(report):.3f} ms"))
        lindley = same_arrivals_theory(report, SERVICE_S)
        print(row("  Lindley, same arrivals, D = 5 ms", lindley))
        print(row("  Lindley, same arrivals, measured services",
                  same_arrivals_theory(report, None)))
        err = [abs(m / t - 1) for m, t in zip(mine[1:], lindley[1:], strict=True)]
        print(f"    ours vs Lindley (same arrivals, D = 5 ms): p90 {err[0]:+.1%}, "
              f"p99 {err[1]:+.1%} (goal within 15 %)")
        if lg_available:
            before = load()
            result = loadgen(100.0, 10.0)
            if result is None:
                lg_available = False
                print("  LoadGen: not available (pip install mlcommons-loadgen)")
            else:
                print(row(f"MLPerf LoadGen Server, round {i + 1}",
                          [result[f"p{q}"] for q in QUANTILES],
                          f"{before}; scheduled {result['qps']:.1f} qps, "
                          f"completed {result['completed_qps']:.1f} qps, service median "
                          f"{result['service_ms']:.3f} ms"))


def _models():  # the models must be imported by name in the workers, from benchmarks/
    sys.path.insert(0, str(HERE))
    import server_models

    return server_models


def loadgen(qps: float, duration: float) -> dict | None:
    """One LoadGen Server run in a child process pinned to ``CORE``."""
    try:
        import mlperf_loadgen  # noqa: F401
    except ImportError:
        return None
    out = subprocess.run([sys.executable, __file__, "--loadgen-child", str(qps), str(duration)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def loadgen_child(qps: float, duration: float) -> None:
    """LoadGen's Server scenario against the same 5 ms spin, one worker thread, pinned."""
    import mlperf_loadgen as lg

    os.sched_setaffinity(0, {CORE})
    models = _models()
    work: queue.Queue = queue.Queue()

    def issue(samples: list) -> None:
        for sample in samples:
            work.put(sample)

    services: list[float] = []

    def serve() -> None:
        while (sample := work.get()) is not None:
            began = time.perf_counter()
            models.spin(SERVICE_S)
            services.append(time.perf_counter() - began)
            lg.QuerySamplesComplete([lg.QuerySampleResponse(sample.id, 0, 0)])

    worker = threading.Thread(target=serve, daemon=True)
    worker.start()
    sut = lg.ConstructSUT(issue, lambda: None)
    qsl = lg.ConstructQSL(1024, 1024, lambda s: None, lambda s: None)
    settings = lg.TestSettings()
    settings.scenario = lg.TestScenario.Server
    settings.mode = lg.TestMode.PerformanceOnly
    settings.server_target_qps = qps
    settings.server_target_latency_ns = 20_000_000
    settings.min_duration_ms = int(duration * 1000)
    settings.max_duration_ms = int(duration * 1000) + 2000
    settings.min_query_count = int(qps * duration * 0.9)
    with tempfile.TemporaryDirectory() as outdir:
        log = lg.LogSettings()
        log.log_output.outdir = outdir
        log.log_output.copy_summary_to_stdout = False
        lg.StartTestWithLogSettings(sut, qsl, settings, log)
        summary = (Path(outdir) / "mlperf_log_summary.txt").read_text()
    work.put(None)
    lg.DestroyQSL(qsl)
    lg.DestroySUT(sut)
    values = {}
    for line in summary.splitlines():
        name, _, value = line.partition(":")
        values[name.strip()] = value.strip()
    result = {f"p{q}": int(values[f"{q:.2f} percentile latency (ns)"]) / 1e6 for q in QUANTILES}
    result["qps"] = float(values.get("Scheduled samples per second", "nan"))
    result["completed_qps"] = float(values.get("Completed samples per second", "nan"))
    result["service_ms"] = float(np.median(services) * 1e3)
    print(json.dumps(result))


def figure_c() -> None:
    print("(c) coordinated omission: 5 ms calls, a 300 ms stall every 2 s, 10 s, core", CORE)
    models = _models()
    before = load()
    [closed] = npf.benchmark(models.StallingModel, np.zeros((1, 4), np.float32),
                             framework="python", n_models=1, workers_per_model=1, duration=10,
                             cores=[CORE], warmup=0.5, verbosity=0)
    print(f"  closed loop (NeuronPerf's):   p50 {closed['latency_ms_p50']:7.2f}  "
          f"p99 {closed['latency_ms_p99']:7.2f}  p100 {closed['latency_ms_p100']:7.2f} ms  "
          f"({closed['throughput_avg']:.0f}/s; {before})")
    before = load()
    opened = ours(models.StallingModel, 50.0, 10.0)
    print(f"  open loop, 50 qps:            p50 {opened['latency_ms_p50']:7.2f}  "
          f"p99 {opened['latency_ms_p99']:7.2f}  p100 {opened['latency_ms_p100']:7.2f} ms  "
          f"(queue p99 {opened['queue_ms_p99']:.1f} ms, overloaded={opened['overloaded']}; "
          f"{before})")


def md1_max_rate(budget_s: float, service_s: float) -> float:
    """The rate whose stationary M/D/1 p99 sojourn equals the budget (bisection)."""
    lo, hi = 1.0, 1.0 / service_s
    for _ in range(30):
        mid = (lo + hi) / 2
        p99 = np.percentile(stationary_md1(mid, service_s, 400_000), 99)
        lo, hi = (mid, hi) if p99 <= budget_s else (lo, mid)
    return lo


def figure_d(budget_ms: float = 20.0) -> None:
    print(f"(d) max_qps of the 5 ms spin under p99 {budget_ms:g} ms, duration 10 s, core", CORE)
    theory = md1_max_rate(budget_ms / 1e3, SERVICE_S)
    print(f"  M/D/1 theory: {theory:.1f} qps (rate whose stationary p99 sojourn is "
          f"{budget_ms:g} ms, D = 5 ms)")
    before = load()
    started = time.monotonic()
    [report] = npf.benchmark(_models().Spin5ms, np.zeros((1, 4), np.float32),
                             framework="python", n_models=1, workers_per_model=1, duration=10,
                             scenario="server", target_qps="max", p99_ms=budget_ms,
                             cores=[CORE], warmup=0.5, verbosity=0, return_timers=True)
    took = time.monotonic() - started
    print(f"  ours: max_qps {report['max_qps']:.1f} qps ({report['max_qps'] / theory - 1:+.1%} "
          f"vs theory), confirmed p99 {report['latency_ms_p99']:.2f} ms, "
          f"{len(report['search'])} trials in {took:.0f} s; {before}")
    if report.get("timers") and report["max_qps"]:
        service = measured_service_ms(report) / 1e3
        print(f"  M/D/1 with D = the measured median service {service * 1e3:.2f} ms: "
              f"{md1_max_rate(budget_ms / 1e3, service):.1f} qps")
    for trial in report["search"]:
        print(f"    {trial['stage']:<8} {trial['qps']:8.1f} qps {trial['duration']:5.1f} s  "
              f"p99 {trial['latency_ms_p99']:8.2f} ms  overloaded={trial['overloaded']}  "
              f"meets={trial['meets']}")
    windows = report["windows"].get("max_qps") or []
    print("  per-window max_qps estimates (the gate's samples): "
          + " ".join(f"{w:.0f}" for w in windows))


def figure_e() -> None:
    print("(e) tune() on the README quick-start MLP, p99 budget 20 ms")
    sys.path.insert(0, str(HERE))
    import torch
    from quickstart_models import MLP

    before = load()
    result = npf.tune(MLP, torch.rand(1, 512), p99_ms=20, batch_sizes=[1, 8],
                      n_models=[1, 2], workers_per_model=[1, 2], duration=3, verbosity=0)
    print(f"  ({before})")
    npf.print_tuning(result)


FIGURES = {"a": figure_a_b, "c": figure_c, "d": figure_d,
           "d100": lambda: figure_d(100.0), "e": figure_e}

if __name__ == "__main__":
    if sys.argv[1:2] == ["--loadgen-child"]:
        loadgen_child(float(sys.argv[2]), float(sys.argv[3]))
        sys.exit(0)
    chosen = sys.argv[1:] or list(FIGURES)
    print(f"server_study {time.strftime('%Y-%m-%d %H:%M:%S')}, {os.cpu_count()} cpus, {load()}, "
          f"nice {os.nice(0)}")
    for name in chosen:
        FIGURES[name]()
        print()
