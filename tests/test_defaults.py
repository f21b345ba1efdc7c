"""Every default the documentation states, checked against the number on the page.

Each test reads its figure from docs/*.md (so a page that goes stale fails here, naming itself)
and checks what the code does with it: the settings a marker without keywords gets, a timeout
computed for a duration, the tolerance a verdict used, when a lock waiter speaks up. A figure the
code only holds as a constant is compared with that constant as a last resort, and says so.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from doc_blocks import stated
from test_paired import paired_report

import pytest_neuronperf as npf
from pytest_neuronperf import safe_files
from pytest_neuronperf.engine import interference, serving, windows
from pytest_neuronperf.engine.paired import (
    DEFAULT_ROUNDS,
    SLICE_S,
    check_rounds,
    planned_pairs,
)
from pytest_neuronperf.engine.runner import Job
from pytest_neuronperf.frameworks.casts import CAST_TOLERANCES
from pytest_neuronperf.gating import paired as paired_gate
from pytest_neuronperf.gating.verdicts import Verdict, judge
from pytest_neuronperf.plugin.markers import PerfSettings, SettingsError, apply_keywords


def number(page: str, pattern: str) -> float:
    """The one number ``pattern`` finds in docs/``page``."""
    [value] = stated(page, pattern)
    return float(value)


def marker_default(keyword: str) -> str:
    """The default column of docs/usage.md's marker table for ``keyword``."""
    [default] = stated("usage.md", rf"\| `{keyword}` \|[^|]*\| ([^|]+) \|")
    return default.strip()


# --- a marker without keywords -----------------------------------------------------------------


def test_a_marker_without_keywords_gets_the_documented_grid() -> None:
    settings = apply_keywords(PerfSettings(), {})
    assert marker_default("batch_sizes") == "`[1]`" and settings.batch_sizes in (None, [1])
    assert marker_default("n_models").startswith('`[1, "max"]`')
    assert settings.n_models == [1, "max"]
    assert marker_default("pipeline_sizes") == "`[1]`" and settings.pipeline_sizes in (None, [1])
    assert marker_default("warmup") == '`"auto"`' and settings.warmup == "auto"
    assert marker_default("device") == "`auto`" and settings.device == "auto"
    assert marker_default("compiler").startswith("`auto`") and settings.compiler == "auto"
    assert marker_default("scenario") == "`closed`" and settings.scenario == "closed"
    assert marker_default("cast_modes") == "`[fp32]`" and settings.cast_modes in (None, ["fp32"])
    assert settings.duration == number("usage.md", r"\| `duration` \|[^|]*\| ini "
                                                   r"`neuronperf_duration`, else (\d+) \|")


def test_workers_per_model_defaults_to_one_and_two_and_pipeline_size_minus_one() -> None:
    from pytest_neuronperf.engine.grid import default_workers

    assert marker_default("workers_per_model") == (
        "`[1, 2]`; `[pipeline_size - 1]` for pipelines")
    assert default_workers(1) == [1, 2]
    assert default_workers(3) == [2]


def test_the_timeout_is_the_documented_sum(tmp_path: Path) -> None:
    floor, per_second = stated("usage.md", r"\| `timeout` \|[^|]*\| (\d+) \+ (\d+) x duration \|")
    for duration in (0.5, 7.0):
        job = Job(model=None, framework="python", adapter="", device=None,  # type: ignore[arg-type]
                  cores=[0], duration=duration, warmup="auto", timeout=None, log_dir=tmp_path)
        assert job.timeout_for() == float(floor) + float(per_second) * duration
    given = Job(model=None, framework="python", adapter="", device=None,  # type: ignore[arg-type]
                cores=[0], duration=7.0, warmup="auto", timeout=12.0, log_dir=tmp_path)
    assert given.timeout_for() == 12.0


# --- the gates' tolerances ---------------------------------------------------------------------


def windows_of(level: float, seed: int) -> dict[str, list[float]]:
    """Ten windows around ``level`` throughput (1 % noise), latencies to match."""
    rng = np.random.default_rng(seed)
    throughput = level * rng.normal(1, 0.01, 10)
    return {"throughput": list(throughput), "latency_ms_p50": list(1000 / throughput),
            "latency_ms_p99": list(1500 / throughput)}


def test_the_stored_baseline_gate_uses_the_documented_tolerances() -> None:
    documented = dict(zip(("throughput", "latency_ms_p50", "latency_ms_p99"),
                          (float(v) / 100 for v in stated(
                              "statistics.md", r"default tolerances \(throughput (\d+) %, p50 "
                                               r"(\d+) %, p99 (\d+) %\)")), strict=True))
    baseline = {"metrics": {}, "windows": windows_of(1000, 1)}
    report = {"status": "ok", "windows": windows_of(1000, 2)}
    used = {c.metric: c.tolerance for c in judge(report, baseline).comparisons}
    assert {m: used[m] for m in documented} == pytest.approx(documented)
    # and they decide: a clear change just inside the throughput tolerance passes, one just
    # beyond it regresses
    inside = 1 - documented["throughput"] + 0.03
    outside = 1 - documented["throughput"] - 0.03
    report["windows"] = windows_of(1000 * inside, 3)
    assert judge(report, baseline, {"latency_ms_p50": 1.0, "latency_ms_p99": 1.0}).verdict is (
        Verdict.PASS)
    report["windows"] = windows_of(1000 * outside, 4)
    assert judge(report, baseline, {"latency_ms_p50": 1.0, "latency_ms_p99": 1.0}).verdict is (
        Verdict.REGRESSED)


def test_the_paired_gate_uses_the_documented_tolerances() -> None:
    page = stated("paired.md", r"Default paired tolerances: throughput (\d+) %, p50 (\d+) %, "
                               r"p99 (\d+) %")
    option = stated("usage.md", r"tolerances of the paired gate \(default "
                                r"`throughput:(\d+)%,p50:(\d+)%,p99:(\d+)%`\)")
    assert page == option
    documented = dict(zip(("throughput", "latency_ms_p50", "latency_ms_p99"),
                          (float(v) / 100 for v in page), strict=True))
    [judged] = paired_gate.judge_family([paired_report(1.0)])
    assert judged is not None
    assert {c.metric: c.tolerance for c in judged.comparisons} == pytest.approx(documented)
    # with almost no noise every change is significant: the tolerance alone decides
    just_inside = 1 - documented["throughput"] + 0.01
    just_beyond = 1 - documented["throughput"] - 0.02
    [inside] = paired_gate.judge_family([paired_report(just_inside, noise=0.001)])
    [beyond] = paired_gate.judge_family([paired_report(just_beyond, noise=0.001)])
    assert inside is not None and inside.verdict is Verdict.PASS
    assert beyond is not None and beyond.verdict is Verdict.REGRESSED


def test_paired_rounds_and_pairs_follow_the_documented_rule() -> None:
    default, at_least, slice_s = stated(
        "usage.md", r"rounds per launch pair of a paired run .*? \| (\d+) \(a value set here: "
                    r"at least (\d+), at most `duration / ([\d.]+) s`\)")
    assert DEFAULT_ROUNDS == int(default) and SLICE_S == float(slice_s)
    low, high, example = stated("paired.md", r"\(at least (\d+), at most (\d+); (\d+) pairs "
                                             r"at `duration=3`\)")
    assert planned_pairs(3.0, DEFAULT_ROUNDS, SLICE_S) == int(example)
    assert planned_pairs(0.1, DEFAULT_ROUNDS, SLICE_S) == int(low)
    assert planned_pairs(1000.0, DEFAULT_ROUNDS, SLICE_S) == int(high)
    check_rounds(int(at_least))
    with pytest.raises(ValueError, match=f">= {at_least}"):
        check_rounds(int(at_least) - 1)
    with pytest.raises(SettingsError):
        apply_keywords(PerfSettings(), {"paired_rounds": int(at_least) - 1})


def test_memory_accuracy_and_max_qps_tolerances_are_the_documented_ones() -> None:
    memory, accuracy = stated("neuronperf-api.md",
                              r"\(memory (\d+) %, accuracy (\d+) %, relative")
    [max_qps] = stated("serving.md", r"tolerance `max_qps:(\d+)%`")
    closed = {"status": "ok", "memory_mb_peak": 100.0, "accuracy": 0.9,
              "windows": windows_of(1000, 5)}
    stored = {"metrics": {"memory_mb_peak": 100.0, "accuracy": 0.9}, "windows": windows_of(1000, 6)}
    used = {c.metric: c.tolerance for c in judge(closed, stored).comparisons}
    assert used["memory_mb_peak"] == pytest.approx(float(memory) / 100)
    assert used["accuracy"] == pytest.approx(float(accuracy) / 100)
    search = {"status": "ok", "target_qps": "max", "max_qps": 100.0,
              "windows": {"max_qps": [100.0 + i for i in range(10)]}}
    searched = {"metrics": {"max_qps": 100.0},
                "windows": {"max_qps": [101.0 + i for i in range(10)]}}
    [comparison] = judge(search, searched).comparisons
    assert comparison.metric == "max_qps"
    assert comparison.tolerance == pytest.approx(float(max_qps) / 100)


# --- how it measures ---------------------------------------------------------------------------


def test_windows_are_one_second_or_a_tenth_of_a_short_run() -> None:
    width, at_least = stated("statistics.md", r"windows \((\d+) s each, or duration / (\d+) for "
                                              r"short runs")
    for duration, expected in ((30.0, 30 / float(width)), (2.0, float(at_least))):
        start = 0
        ends = np.arange(1, int(duration * 1000)) * 1_000_000  # a call every ms
        series = windows.window_series(ends, np.full(len(ends), 1_000_000), start, duration, 1)
        assert len(series["throughput"]) == expected, duration


def test_the_busy_machine_thresholds_are_the_documented_ones() -> None:
    other, steal = (float(v) for v in stated("measuring.md", r"Above (\d+) % \(or (\d+) % steal\)"))
    assert interference.is_high({"other_pct": other + 0.5, "steal_pct": 0.0, "cpus": 1})
    assert not interference.is_high({"other_pct": other - 0.5, "steal_pct": 0.0, "cpus": 1})
    assert interference.is_high({"other_pct": 0.0, "steal_pct": steal + 0.5, "cpus": 1})
    assert not interference.is_high({"other_pct": 0.0, "steal_pct": steal - 0.5, "cpus": 1})


def test_statistics_interval_verbosity_and_dataset_defaults_are_the_documented_ones() -> None:
    parameters = inspect.signature(npf.benchmark).parameters
    assert parameters["stats_interval"].default == number(
        "neuronperf-api.md", r"`stats_interval` \(default ([\d.]+) s\)")
    assert parameters["verbosity"].default == number("neuronperf-api.md",
                                                     r"At the default `verbosity=(\d+)`")
    assert stated("neuronperf-api.md", r"`loop_dataset=(True)` \(default\)") == ("True",)
    assert parameters["loop_dataset"].default is True
    assert parameters["eval_target_col"].default == number("neuronperf-api.md",
                                                           r"eval_target_col=(-?\d+)")


def test_compile_verification_tolerances_are_the_documented_ones() -> None:
    # only the constant holds them (a compile that would show them needs a lossy model per dtype)
    fp16, bf16 = stated("neuronperf-api.md", r"a tolerance that fits the dtype \(fp16 ([\de.-]+), "
                                             r"bf16/mixed ([\de.-]+)\)")
    assert CAST_TOLERANCES["fp16"] == (float(fp16), float(fp16))
    assert CAST_TOLERANCES["bf16"] == CAST_TOLERANCES["mixed"] == (float(bf16), float(bf16))


# --- the server scenario -----------------------------------------------------------------------


def test_arrivals_are_seeded_with_the_documented_default_seed() -> None:
    assert inspect.signature(npf.benchmark).parameters["seed"].default == number(
        "serving.md", r"`seed=` in the library, default (\d+)")


def test_draining_lasts_the_documented_time() -> None:
    [cap] = stated("serving.md", r"served for min\(duration, (\d+) s\)")
    settings = serving.ServerSettings()
    for duration in (0.5, 30.0):
        spec = serving.server_spec(settings, 10.0, 1, 0, duration, 1)
        assert spec.drain_s == min(duration, float(cap))


def test_overload_needs_the_documented_backlog() -> None:
    share, floor = stated("serving.md", r"more than (\d+) % of the queries offered \(and more than "
                                        r"(\d+)\) were waiting")
    offered = 10_000
    limit = int(offered * float(share) / 100)
    assert serving.is_overloaded(offered, limit + 1, 0, limit)
    assert not serving.is_overloaded(offered, limit - 1, 0, limit)
    assert not serving.is_overloaded(100, int(floor), 0, int(floor))  # 5 % of 100 is below it


def test_a_sleeper_spins_for_the_documented_last_stretch(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_neuronperf.child import open_loop

    [spin_ms] = stated("serving.md", r"the last ([\d.]+) ms is a spin")
    slept: list[float] = []
    now = [0]

    def clock() -> int:
        now[0] += 1_000
        return now[0]

    def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += int(seconds * 1e9)

    monkeypatch.setattr(open_loop.time, "sleep", fake_sleep)
    open_loop.sleep_until(100_000_000, clock)
    [seconds] = slept
    assert 100e-3 - seconds == pytest.approx(float(spin_ms) / 1e3, abs=1e-5)


# --- locks -------------------------------------------------------------------------------------


def test_a_lock_waiter_names_the_holder_then_gives_up_as_documented(tmp_path: Path) -> None:
    notice_s, give_up_s = (float(v) for v in stated(
        "formats.md", r"says after (\d+) s which process holds it, and gives up after (\d+) s"))
    target = tmp_path / "baseline.json"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from pathlib import Path
        from pytest_neuronperf.safe_files import locked
        with locked(Path({str(target)!r})):
            print("held", flush=True)
            time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    said: list[tuple[float, str]] = []
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        waiter = threading.Thread(target=lambda: _wait_for(target, said, started))
        waiter.start()
        deadline = time.monotonic() + notice_s + 60
        while not said and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        holder.kill()
        holder.wait()
    waiter.join(timeout=60)
    [(after, message)] = said
    assert after >= notice_s  # the defaults' notice, not earlier
    assert f"held by process {holder.pid}" in message
    assert f"giving up after {give_up_s:.0f} s" in message


def _wait_for(target: Path, said: list[tuple[float, str]], started: float) -> None:
    """Take ``target``'s lock with the default limits, noting what the waiter is told."""
    with safe_files.locked(target, on_wait=lambda text: said.append(
            (time.monotonic() - started, text))):
        pass
