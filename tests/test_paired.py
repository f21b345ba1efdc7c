"""Paired A/B mode: the schedule, the paired gate, interference, ``compare`` and
``--neuronperf-against`` in real git repositories."""

from __future__ import annotations

import json
import math
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from projects import Run, baseline_entries, reports_of

from pytest_neuronperf.engine import interference
from pytest_neuronperf.engine.paired import (
    ConfigurationFailed,
    launch_order,
    run_schedule,
    slice_order,
)
from pytest_neuronperf.gating import paired as gate
from pytest_neuronperf.gating.verdicts import Judgement, Verdict
from pytest_neuronperf.plugin.against import defines
from pytest_neuronperf.plugin.options import RunOptions
from pytest_neuronperf.plugin.outcome import merged_verdict
from pytest_neuronperf.protocol import messages

# -- the schedule, without processes or real clocks -------------------------------------------


def test_slice_order_is_seeded_and_recorded_per_round() -> None:
    order = slice_order(40, seed=7, salt=(1, 2))
    assert order == slice_order(40, seed=7, salt=(1, 2))
    assert order != slice_order(40, seed=8, salt=(1, 2))
    assert order != slice_order(40, seed=7, salt=(8, 2))
    assert all(sorted(pair) == ["base", "head"] for pair in order)
    firsts = {pair[0] for pair in order}
    assert firsts == {"base", "head"}  # 40 fair coins: both sides go first sometimes


def test_launch_order_is_a_seeded_coin_per_pair() -> None:
    orders = [launch_order(5, (1, 1), pair) for pair in range(40)]
    assert orders == [launch_order(5, (1, 1), pair) for pair in range(40)]
    assert {o[0] for o in orders} == {"base", "head"}
    assert all(sorted(o) == ["base", "head"] for o in orders)


class FakeSide:
    """A side that records every go and answer on a shared event log."""

    def __init__(self, name: str, log: list[tuple[str, str, int, bool]], fail_at: int = -1):
        self.name = name
        self.log = log
        self.fail_at = fail_at
        self.slices = 0

    def go(self, start_ns: int, end_ns: int, last: bool) -> None:
        self.log.append(("go", self.name, start_ns, last))

    def timings(self) -> list[messages.Timings]:
        self.slices += 1
        if self.slices == self.fail_at:
            raise ConfigurationFailed(f"{self.name} side: copy 0 died")
        self.log.append(("timings", self.name, 0, False))
        return [messages.Timings([np.array([1], np.int64)], [np.array([1], np.int64)])]


def fake_clock() -> Any:
    ticks = iter(range(0, 10**12, 10**6))
    return lambda: next(ticks)


def test_schedule_runs_one_side_at_a_time_in_the_seeded_order() -> None:
    log: list[tuple[str, str, int, bool]] = []
    sides = {"head": FakeSide("head", log), "base": FakeSide("base", log)}
    order = slice_order(10, seed=3)
    result = run_schedule(sides, order, slice_s=0.1, warm_rounds=1, clock=fake_clock())
    # every go is answered by the same side before anything else is sent
    for sent, answered in zip(log[::2], log[1::2], strict=True):
        assert sent[0] == "go" and answered[0] == "timings" and sent[1] == answered[1]
    gos = [entry[1] for entry in log if entry[0] == "go"]
    assert gos[2:] == [name for pair in order for name in pair]  # after the warm round
    assert len(result.slices["head"]) == len(result.slices["base"]) == 10  # warm not recorded
    assert [r.round for r in result.slices["head"]] == list(range(10))
    lasts = [(entry[1], entry[3]) for entry in log if entry[0] == "go" and entry[3]]
    assert sorted(lasts) == [("base", True), ("head", True)]  # only each side's final go
    starts = [entry[2] for entry in log if entry[0] == "go"]
    assert starts == sorted(starts)


def test_a_failing_base_is_dropped_and_the_head_goes_on() -> None:
    log: list[tuple[str, str, int, bool]] = []
    sides = {"head": FakeSide("head", log), "base": FakeSide("base", log, fail_at=4)}
    result = run_schedule(sides, slice_order(6, seed=1), slice_s=0.1, clock=fake_clock())
    assert "copy 0 died" in result.failures["base"]
    assert len(result.slices["head"]) == 6
    assert len(result.slices["base"]) == 2  # its warm slice, two rounds, then it failed


def test_a_failing_head_fails_the_configuration() -> None:
    log: list[tuple[str, str, int, bool]] = []
    sides = {"head": FakeSide("head", log, fail_at=2), "base": FakeSide("base", log)}
    with pytest.raises(ConfigurationFailed, match="head side"):
        run_schedule(sides, slice_order(6, seed=1), slice_s=0.1, clock=fake_clock())


# -- the paired gate --------------------------------------------------------------------------


def launches(ratio: float, pairs: int = 8, rounds: int = 4, noise: float = 0.01,
             offset_sd: float = 0.0, rng: np.random.Generator | None = None) -> list[dict]:
    """Launch pairs whose head runs ``ratio`` times the base's throughput: per-round drift
    shared by both sides (the machine), each process's own speed for its whole life
    (``offset_sd``, as log-normal SD), and a little round noise of each side's own."""
    rng = rng or np.random.default_rng(0)
    entries = []
    for _ in range(pairs):
        offsets = np.exp(rng.normal(0, offset_sd, 2))  # this pair's base and head processes
        drift = np.exp(rng.normal(0, 0.2, rounds))  # cancels within a round
        base_thr = 1000 * offsets[0] * drift * np.exp(rng.normal(0, noise, rounds))
        head_thr = ratio * 1000 * offsets[1] * drift * np.exp(rng.normal(0, noise, rounds))
        entries.append({"order": str(rng.choice(["base", "head"])), "values": {
            side: {"throughput": list(thr), "latency_ms_p50": list(1000 / thr),
                   "latency_ms_p99": list(1.5 * 1000 / thr)}
            for side, thr in (("base", base_thr), ("head", head_thr))}})
    return entries


def paired_report(ratio: float, pairs: int = 8, rounds: int = 4, noise: float = 0.01,
                  offset_sd: float = 0.0, seed: int = 0, batch_size: int = 1) -> dict[str, Any]:
    """A report with ``pairs`` launch pairs (see ``launches``), all planned pairs run."""
    rng = np.random.default_rng(seed)
    return {"status": "ok", "batch_size": batch_size, "n_models": 1, "workers_per_model": 1,
            "pipeline_size": 1,
            "paired": {"base_status": "ok", "rounds": rounds, "planned_pairs": pairs,
                       "launches": launches(ratio, pairs, rounds, noise, offset_sd, rng)}}


def test_identical_sides_pass_and_a_slowdown_regresses() -> None:
    same, slower = gate.judge_family([paired_report(1.0), paired_report(0.85, seed=1)])
    assert same is not None and slower is not None
    assert same.verdict is Verdict.PASS
    assert slower.verdict is Verdict.REGRESSED
    throughput = next(c for c in slower.comparisons if c.metric == "throughput")
    assert -0.2 < throughput.delta < -0.1
    assert throughput.low <= throughput.delta <= throughput.high
    assert throughput.p_adjusted < gate.ALPHA and throughput.pairs == 8


def test_an_improvement_is_improved_and_a_change_within_tolerance_passes() -> None:
    [faster] = gate.judge_family([paired_report(1.2)])
    [tiny] = gate.judge_family([paired_report(0.99, noise=0.001)])
    assert faster is not None and faster.verdict is Verdict.IMPROVED
    assert tiny is not None and tiny.verdict is Verdict.PASS  # significant, but within 3 %


def test_the_family_is_corrected_so_more_configurations_need_stronger_evidence() -> None:
    lone = paired_report(0.95, pairs=6, noise=0.02, seed=4)
    [alone] = gate.judge_family([lone])
    crowd = gate.judge_family([lone] + [paired_report(1.0, pairs=6, seed=s) for s in range(19)])
    assert alone is not None and crowd[0] is not None
    p_alone = next(c.p_adjusted for c in alone.comparisons if c.metric == "throughput")
    p_crowd = next(c.p_adjusted for c in crowd[0].comparisons if c.metric == "throughput")
    assert p_crowd > p_alone


def test_holm_matches_its_definition() -> None:
    assert gate.holm([0.01, 0.04, 0.03, math.nan]) == pytest.approx([0.03, 0.06, 0.06, math.nan],
                                                                    nan_ok=True)


def test_too_few_pairs_and_missing_bases_are_said_so() -> None:
    [few] = gate.judge_family([paired_report(0.5, pairs=2)])
    assert few is not None and few.verdict is Verdict.INCONCLUSIVE
    assert "only 2 usable launch pairs" in few.comparisons[0].note
    absent = {"status": "ok", "paired": {"base_status": "absent", "revision": "HEAD (abc)",
                                         "base_error": "m.py does not exist at HEAD (abc)"}}
    crashed = {"status": "ok", "paired": {"base_status": "error", "revision": "HEAD (abc)",
                                          "base_error": "base side: copy 0 died"}}
    new, failed_base = gate.judge_family([absent, crashed])
    assert new is not None and new.verdict is Verdict.NEW and "does not exist" in new.note
    assert failed_base is not None and failed_base.verdict is Verdict.NEW
    assert "the base side at HEAD (abc) failed" in failed_base.note
    assert gate.judge_family([{"status": "ok"}]) == [None]  # not a paired report


def rounds_rule_fails(report: dict[str, Any]) -> bool:
    """The rule before launch pairs: every round a replicate (one-sided Wilcoxon over all
    rounds, Hodges-Lehmann estimate beyond the 3 % tolerance), throughput only."""
    from scipy.stats import wilcoxon

    d = np.array([math.log(h / b) for launch in report["paired"]["launches"]
                  for h, b in zip(launch["values"]["head"]["throughput"],
                                  launch["values"]["base"]["throughput"], strict=True)])
    i, j = np.triu_indices(d.size)
    estimate = math.expm1(float(np.median((d[i] + d[j]) / 2)))
    return estimate < -0.03 and float(wilcoxon(d, alternative="less").pvalue) < gate.ALPHA


def test_process_offsets_fail_the_rounds_rule_but_not_the_launch_rule() -> None:
    """Pseudo-replication: each process has its own speed (SD 3 %), rounds inside a pair
    share it. One process pair of 12 rounds judged round by round (the rule before launch
    pairs) fails identical code far more often than 1 in 20; the same 12 rounds per side as 4
    launch pairs of 3, judged pair by pair, hold the rate."""
    only_throughput = {"latency_ms_p50": math.inf, "latency_ms_p99": math.inf}
    one_pair = [paired_report(1.0, pairs=1, rounds=12, noise=0.005, offset_sd=0.03, seed=s)
                for s in range(300)]
    four_pairs = [paired_report(1.0, pairs=4, rounds=3, noise=0.005, offset_sd=0.03, seed=s)
                  for s in range(300)]
    old = sum(rounds_rule_fails(r) for r in one_pair) / len(one_pair)
    new = sum(j is not None and j.verdict is Verdict.REGRESSED for r in four_pairs
              for j in gate.judge_family([r], only_throughput)) / len(four_pairs)
    assert old > 0.15
    assert new <= 0.05


def run_sequentially(ratio: float, planned: int, offset_sd: float, seed: int,
                     tolerance: dict[str, float]) -> tuple[Verdict, gate.Look]:
    """One simulated paired configuration: pairs added until ``gate.look`` stops, then judged."""
    rng = np.random.default_rng(seed)
    paired: dict[str, Any] = {"base_status": "ok", "planned_pairs": planned, "launches": []}
    while True:
        paired["launches"] += launches(ratio, 1, 4, 0.005, offset_sd, rng)
        stop = gate.look(paired, gate.effective_tolerance(tolerance), 1, planned)
        if stop.stop:
            break
    [judgement] = gate.judge_family([{"status": "ok", "paired": paired}], tolerance)
    assert judgement is not None
    return judgement.verdict, stop


def test_the_sequential_rule_holds_its_error_rate_and_stops_early() -> None:
    off = {"latency_ms_p50": math.inf, "latency_ms_p99": math.inf}
    # no tolerance to hide behind: identical code fails only through the test's level
    strict = {"throughput": 0.0, **off}
    aa = [run_sequentially(1.0, 10, 0.03, s, strict) for s in range(300)]
    rate = sum(v is Verdict.REGRESSED for v, _ in aa) / len(aa)
    assert rate <= gate.ALPHA + 2 * math.sqrt(gate.ALPHA * (1 - gate.ALPHA) / len(aa))
    # looking after every pair at the full level, as if it were one test, does not hold it
    naive = 0
    for seed in range(200):
        y = gate.launch_values({"launches": launches(1.0, 10, 4, 0.005, 0.03,
                                                     np.random.default_rng(seed))}, "throughput")
        naive += any(gate.t_p(y[:k], "less") < gate.ALPHA for k in range(3, 11))
    assert naive / 200 > 2 * gate.ALPHA
    # with the default 3 % tolerance, a steady model stops early, clear, in most runs
    default = {"throughput": 0.03, **off}
    steady = [run_sequentially(1.0, 10, 0.01, s, default) for s in range(100)]
    assert sum(v is Verdict.REGRESSED for v, _ in steady) == 0
    early = [stop for _, stop in steady if stop.code == "clear"]
    assert len(early) / len(steady) > 0.8
    # and 10 % more work is caught at least 19 times in 20 at a 3 % process spread
    slower = [run_sequentially(1 / 1.1, 10, 0.03, s, default) for s in range(100)]
    assert sum(v is Verdict.REGRESSED for v, _ in slower) / len(slower) >= 0.95


def test_error_spending_adds_up_to_alpha_and_the_last_look_gets_most() -> None:
    for planned in (3, 4, 10, 40):
        shares = [gate.alpha_share(k, planned) for k in range(1, planned + 1)]
        assert sum(shares) == pytest.approx(1.0)
        assert shares[-1] >= 1 - gate.INTERIM_SHARE
    y = np.array([-0.1, -0.12, -0.09, -0.11, -0.1])
    assert gate.sequential_p(y, 5, "less") >= gate.t_p(y, "less")


def test_a_compare_base_that_cannot_run_and_a_refused_base_are_errors() -> None:
    # decided (docs/paired.md): compare()'s base was given explicitly, so a base that cannot
    # run fails the test instead of turning the gate off; a refused base is never compared
    broken = {"status": "ok", "paired": {"base_status": "error", "revision": None,
                                         "base_error": "base side: copy 0 died"}}
    refused = {"status": "ok", "paired": {"base_status": "refused", "revision": "HEAD (abc)",
                                          "base_error": "base isolation: the base copy ..."}}
    compare_base, isolation_refusal = gate.judge_family([broken, refused])
    assert compare_base is not None and compare_base.verdict is Verdict.ERROR
    assert "the base side failed, so nothing was compared" in compare_base.note
    assert isolation_refusal is not None and isolation_refusal.verdict is Verdict.ERROR
    assert "was refused" in isolation_refusal.note


def test_the_worse_of_the_baseline_and_paired_verdicts_stands() -> None:
    with_baseline = RunOptions(baseline=Path("perf.json"))
    paired_only = RunOptions()
    regressed = gate.PairedJudgement(Verdict.REGRESSED)
    passed = gate.PairedJudgement(Verdict.PASS)
    assert merged_verdict(Judgement(Verdict.PASS), regressed, with_baseline) is Verdict.REGRESSED
    assert merged_verdict(Judgement(Verdict.REGRESSED), passed, with_baseline) is (
        Verdict.REGRESSED)
    assert merged_verdict(Judgement(Verdict.NEW), passed, with_baseline) is Verdict.NEW
    assert merged_verdict(Judgement(Verdict.NEW), passed, paired_only) is Verdict.PASS
    assert merged_verdict(Judgement(Verdict.OVER_BUDGET), passed, paired_only) is (
        Verdict.OVER_BUDGET)
    assert merged_verdict(Judgement(Verdict.PASS), None, with_baseline) is Verdict.PASS


# -- interference -----------------------------------------------------------------------------

STAT_BEFORE = "cpu  0 0 0 0\ncpu0 100 0 100 800 0 0 0 0 0 0\ncpu1 0 0 0 1000 0 0 0 0 0 0\n"
STAT_AFTER = "cpu  0 0 0 0\ncpu0 250 0 150 880 0 0 0 20 0 0\ncpu1 50 0 0 1150 0 0 0 0 0 0\n"


def test_interference_is_the_busy_time_the_copies_did_not_spend() -> None:
    before = interference.Sample(
        {c: t for c, t in interference.parse_proc_stat(STAT_BEFORE).items() if c == 0}, 0)
    after = interference.Sample(
        {c: t for c, t in interference.parse_proc_stat(STAT_AFTER).items() if c == 0}, 150)
    # cpu0 over the window: 300 ticks, 80 idle, 20 stolen, 200 busy of which 150 were ours
    figures = interference.interference(before, after)
    assert figures == {"other_pct": pytest.approx(16.7), "steal_pct": pytest.approx(6.7),
                       "cpus": 1}
    assert interference.is_high(figures)
    assert "17% of the measured cores' time" in interference.describe(figures)
    assert interference.parse_pid_ticks("12 (a model (x)) S " + "0 " * 10 + "7 5 0 0") == 12


# -- the base tree ----------------------------------------------------------------------------


def test_defines_finds_top_level_names(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("import torch as T\nclass A: ...\ndef b(): ...\nC = 1\n")
    assert all(defines(source, name) for name in ("T", "A", "b", "C"))
    assert not defines(source, "D")


# -- real processes ---------------------------------------------------------------------------


def test_compare_measures_a_known_work_ratio(cores: list[int]) -> None:
    import paired_models

    import pytest_neuronperf as npf

    [report] = npf.cpu.compare(paired_models.OneUnit, paired_models.ThreeUnits,
                               np.ones((1, 96)), n_models=1, workers_per_model=1,
                               duration=1.5, paired_rounds=3, seed=11, cores=cores[:1])
    assert report["status"] == "ok", report["error"]
    paired = report["paired"]
    assert paired["base_status"] == "ok" and paired["rounds"] == 3 and paired["seed"] == 11
    assert 3 <= paired["pairs"] <= paired["planned_pairs"] == 5
    assert paired["stop"]["code"] in ("regressed", "cap") and paired["stop"]["reason"]
    for launch in paired["launches"]:
        assert launch["order"] in ("base", "head") and len(launch["round_order"]) == 3
        assert len(launch["values"]["head"]["throughput"]) == 3
        assert launch["load_ms"]["base"] > 0 and launch["warmup_ms"]["head"] > 0
    assert paired["base"]["throughput_avg"] > report["throughput_avg"]
    # three times the work: throughput falls to about a third (wide: a loaded machine)
    assert -0.9 < paired["delta"]["throughput"] < -0.3
    assert paired["delta"]["latency_ms_p50"] > 0.5
    assert paired["verdict"] == "REGRESSED"
    low, high = paired["interval"]["throughput"]
    assert low <= paired["delta"]["throughput"] <= high
    # the interference meter ran over both sides' slices (docs/paired.md)
    figures = report["interference"]
    assert figures["cpus"] == 1 and 0 <= figures["other_pct"] <= 100
    assert 0 <= figures["steal_pct"] <= 100


def test_identical_code_passes_as_launch_pairs(cores: list[int]) -> None:
    """A/A on real processes: fresh pairs, launch order recorded, and no failure (the 10 %
    tolerance makes a false failure need a 10 % gap that is also significant)."""
    import paired_models

    import pytest_neuronperf as npf

    [report] = npf.cpu.compare(paired_models.OneUnit, paired_models.OneUnit, np.ones((1, 96)),
                               n_models=1, workers_per_model=1, duration=0.9, paired_rounds=3,
                               cores=cores[:1], tolerance="throughput:10%,p50:10%,p99:off")
    assert report["status"] == "ok", report["error"]
    paired = report["paired"]
    assert paired["verdict"] in ("PASS", "IMPROVED", "INCONCLUSIVE"), paired
    assert paired["pairs"] == len(paired["launches"]) == 3 == paired["planned_pairs"]
    assert set(paired["delta"]) == {"throughput", "latency_ms_p50"}
    assert len(report["windows"]["throughput"]) == 9  # the head's rounds of every pair


def test_a_hanging_base_is_named_with_its_stacks_and_the_head_is_not_blamed(
        cores: list[int]) -> None:
    """Each side waits under its own deadline: the base that hangs mid-run times out as the
    base, with its stack, and the idle head does not inherit a spent deadline."""
    import paired_models

    import pytest_neuronperf as npf

    [report] = npf.cpu.compare(paired_models.HangsWhileMeasuring, paired_models.OneUnit,
                               np.ones((1, 96)), n_models=1, workers_per_model=1,
                               duration=0.8, paired_rounds=4, warmup=0.2, timeout=5,
                               cores=cores[:1])
    assert report["status"] == "ok", report["error"]  # the head measured its rounds
    paired = report["paired"]
    # compare()'s base was given explicitly: a base that cannot run fails the test
    assert paired["base_status"] == "error" and paired["verdict"] == "ERROR"
    error = paired["base_error"]
    assert error.startswith("base side: copy 0 timed out after 5 s while measuring (base side)")
    assert "paired_models.py\", line" in error and "in __call__" in error  # its own stack
    assert "head side" not in error
    assert paired["stop"]["code"] == "base failed"
    assert len(report["windows"]["throughput"]) == 4


# -- --neuronperf-against in a git repository -------------------------------------------------

PERF_TEST = textwrap.dedent("""
    import numpy as np
    import pytest

    WEIGHTS = np.random.default_rng(0).standard_normal((96, 96))
    REPEATS = 4


    class Model:
        def __call__(self, x):
            for _ in range(REPEATS):
                x = np.tanh(x @ WEIGHTS)
            return x


    @pytest.mark.neuronperf(n_models=1, workers_per_model=1, duration=0.9, paired_rounds=3)
    def test_model(neuronperf):
        reports = neuronperf.benchmark(Model, np.ones((1, 96)), framework="python")
        assert all(r["status"] == "ok" for r in reports)
""")
WIDE = "--neuronperf-paired-tolerance=throughput:40%,p50:40%,p99:off"


def git(directory: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
                   cwd=directory, check=True, capture_output=True)


def test_against_head_regresses_a_slowdown_passes_unchanged_code_and_a_new_model_is_new(
        pytester: pytest.Pytester) -> None:
    """One run against HEAD (one pytest start, one base tree): the test whose model now does 3x
    the work regresses, the unchanged one passes, the one whose file HEAD lacks is NEW."""
    pytester.makepyfile(test_slower=PERF_TEST, test_same=PERF_TEST)
    git(pytester.path, "init", "-q")
    git(pytester.path, "add", "test_slower.py", "test_same.py")
    git(pytester.path, "commit", "-qm", "base")
    (pytester.path / "test_slower.py").write_text(PERF_TEST.replace("REPEATS = 4", "REPEATS = 12"))
    (pytester.path / "test_new.py").write_text(
        PERF_TEST.replace("class Model", "class Newer").replace("(Model,", "(Newer,"))
    result = pytester.runpytest_subprocess("--neuronperf-against=HEAD", WIDE,
                                           "--neuronperf-profile=off", "--neuronperf-json=out.json")
    result.assert_outcomes(failed=1, passed=2)
    for line in ("*REGRESSED throughput -*% at bs=1 n=1 w=1 p=1 (paired vs HEAD (*)*",
                 "*paired: head vs base (HEAD (*))*", "*1 PASS*", "*1 NEW*",
                 "*not compared with their base: the model does not exist at HEAD (*): "
                 "test_new.py does not exist at HEAD*"):
        result.stdout.fnmatch_lines([line])
    reports = {r["test"].split("::")[0]: r
               for r in json.loads((pytester.path / "out.json").read_text())["reports"]}
    slower, same = reports["test_slower.py"], reports["test_same.py"]
    assert slower["verdict"] == "REGRESSED" and slower["paired"]["revision"].startswith("HEAD (")
    assert slower["paired"]["delta"]["throughput"] < -0.4
    [tree] = (pytester.path / ".neuronperf-cache").glob("rev-*")
    assert "REPEATS = 4" in (tree / "test_slower.py").read_text()  # the base as committed
    assert not (tree / "test_slower.py").stat().st_mode & 0o222  # read-only
    assert same["paired"]["verdict"] == "PASS" and same["paired"]["base_status"] == "ok"
    assert len(same["windows"]["throughput"]) == 9  # 3 pairs of 3 rounds: the head's slices
    assert reports["test_new.py"]["paired"]["base_status"] == "absent"


def test_saving_a_paired_run_stores_the_head_side(repository: Path, run: Run) -> None:
    result = run("--neuronperf-against=HEAD", WIDE, "--neuronperf-baseline=perf.json",
                 "--neuronperf-save-baseline", "--neuronperf-json=out.json")
    result.assert_outcomes(passed=1)
    [report] = reports_of(repository / "out.json")
    [entry] = baseline_entries(repository / "perf.json")["test_perf.py::test_model"].values()
    head = report["paired"]["slices"]["head"]["throughput"]
    base = report["paired"]["slices"]["base"]["throughput"]
    stored = entry["windows"]["throughput"]
    # the head's slices are its windows: they are what the baseline keeps (rounded), not the
    # base's
    assert stored[:len(head)] == pytest.approx(head, rel=1e-4)
    assert stored[:len(base)] != pytest.approx(base, rel=1e-4)
    assert entry["metrics"]["throughput_avg"] == pytest.approx(report["throughput_avg"], rel=1e-4)


COMPILED_TEST = textwrap.dedent("""
    import pytest
    import torch


    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(16, 4)

        def forward(self, x):
            return self.layer(x)


    @pytest.mark.neuronperf(n_models=1, workers_per_model=1, duration=0.4, warmup=0.05,
                            compiler="torchscript")
    def test_compiled(neuronperf):
        [report] = neuronperf.benchmark(Net, torch.rand(1, 16))
        assert report["status"] == "ok", report["error"]
""")


def test_a_compiled_test_is_new_under_against(pytester: pytest.Pytester, repository: Path,
                                              run: Run) -> None:
    (repository / "test_compiled.py").write_text(COMPILED_TEST)
    git(repository, "add", "test_compiled.py")
    git(repository, "commit", "-qm", "compiled")
    result = run("test_compiled.py", "--neuronperf-against=HEAD", WIDE,
                 "--neuronperf-json=out.json")
    result.assert_outcomes(passed=1)
    [report] = reports_of(repository / "out.json")
    assert report["verdict"] == "NEW" and report["paired"]["base_status"] == "absent"
    result.stdout.fnmatch_lines(["*not compared: --neuronperf-against does not compile the base "
                                 "side yet (compiler='torchscript')*"])


def test_against_needs_a_repository_and_a_known_revision(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_perf=PERF_TEST)
    outside = pytester.runpytest_subprocess("--neuronperf-against=HEAD")
    outside.stderr.fnmatch_lines(["*--neuronperf-against=HEAD: the rootdir * is not inside a git "
                                  "repository*"])
    assert outside.ret == pytest.ExitCode.USAGE_ERROR
    git(pytester.path, "init", "-q")
    git(pytester.path, "add", "test_perf.py")
    git(pytester.path, "commit", "-qm", "base")
    unknown = pytester.runpytest_subprocess("--neuronperf-against=no-such-branch")
    unknown.stderr.fnmatch_lines(["*--neuronperf-against=no-such-branch: unknown revision in "
                                  "the git repository*"])
    assert unknown.ret == pytest.ExitCode.USAGE_ERROR


def test_base_tree_maps_tracked_paths_and_keeps_the_rest(tmp_path: Path) -> None:
    from pytest_neuronperf.plugin.against import resolve

    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "model.py").write_text("class Model: ...\n")
    (repo / "venv-inside").mkdir()  # not tracked, like a virtualenv in the checkout
    git(repo, "init", "-q")
    git(repo, "add", "src")
    git(repo, "commit", "-qm", "base")
    tree = resolve(repo, "HEAD")
    assert tree.tree == repo / ".neuronperf-cache" / f"rev-{tree.commit}"
    assert (tree.tree / "src" / "model.py").read_text() == "class Model: ...\n"
    outside = str(tmp_path / "elsewhere")
    (tmp_path / "elsewhere").mkdir()
    mapped = tree.sys_path([str(repo / "src"), str(repo / "venv-inside"), outside])
    assert mapped == (str(tree.tree / "src"), str(repo / "venv-inside"), outside)
    assert resolve(repo, "HEAD").tree == tree.tree  # cached by commit
    assert tree.absence(str(repo / "src" / "gone.pt")) == (
        f"src/gone.pt does not exist at HEAD ({tree.commit[:10]})")


def test_a_base_that_fails_to_load_is_named_and_the_head_still_measured(
        cores: list[int]) -> None:
    import engine_models
    import paired_models

    import pytest_neuronperf as npf

    [report] = npf.cpu.compare(engine_models.RaisesOnLoad, paired_models.OneUnit,
                               np.ones((1, 96)), n_models=1, workers_per_model=1,
                               duration=0.4, paired_rounds=4, cores=cores[:1])
    assert report["status"] == "ok", report["error"]  # the head is fine
    assert report["throughput_avg"] > 0 and len(report["windows"]["throughput"]) == 4
    paired = report["paired"]
    assert paired["base_status"] == "error" and paired["verdict"] == "ERROR"  # docs/paired.md
    assert "base side" in paired["base_error"] and "weights are missing" in paired["base_error"]
    assert "the base side failed, so nothing was compared" in paired["note"]
