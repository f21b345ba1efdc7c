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

from pytest_neuronperf.engine import interference
from pytest_neuronperf.engine.paired import (
    ConfigurationFailed,
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


def paired_report(ratio: float, rounds: int = 12, noise: float = 0.02, seed: int = 0,
                  batch_size: int = 1) -> dict[str, Any]:
    """A report whose head runs ``ratio`` times the base's throughput, with per-round noise
    shared by both sides (drift) and a little of each side's own."""
    rng = np.random.default_rng(seed)
    drift = np.exp(rng.normal(0, 0.2, rounds))  # the machine: cancels within a round
    base_thr = 1000 * drift * np.exp(rng.normal(0, noise, rounds))
    head_thr = ratio * 1000 * drift * np.exp(rng.normal(0, noise, rounds))
    series = {
        side: {"throughput": list(thr), "latency_ms_p50": list(1000 / thr),
               "latency_ms_p99": list(1.5 * 1000 / thr)}
        for side, thr in (("base", base_thr), ("head", head_thr))
    }
    return {"status": "ok", "batch_size": batch_size, "n_models": 1, "workers_per_model": 1,
            "pipeline_size": 1,
            "paired": {"base_status": "ok", "rounds": rounds, "slices": series,
                       "slice_rounds": {"base": list(range(rounds)),
                                        "head": list(range(rounds))}}}


def test_identical_sides_pass_and_a_slowdown_regresses() -> None:
    same, slower = gate.judge_family([paired_report(1.0), paired_report(0.85, seed=1)])
    assert same is not None and slower is not None
    assert same.verdict is Verdict.PASS
    assert slower.verdict is Verdict.REGRESSED
    throughput = next(c for c in slower.comparisons if c.metric == "throughput")
    assert -0.2 < throughput.delta < -0.1
    assert throughput.low <= throughput.delta <= throughput.high
    assert throughput.p_adjusted < gate.ALPHA


def test_an_improvement_is_improved_and_a_change_within_tolerance_passes() -> None:
    [faster] = gate.judge_family([paired_report(1.2)])
    [tiny] = gate.judge_family([paired_report(0.99, noise=0.001)])
    assert faster is not None and faster.verdict is Verdict.IMPROVED
    assert tiny is not None and tiny.verdict is Verdict.PASS  # significant, but within 3 %


def test_the_family_is_corrected_so_more_configurations_need_stronger_evidence() -> None:
    # one configuration 5 % slower over 8 rounds: significant alone, not among 20 others
    lone = paired_report(0.95, rounds=8, noise=0.01, seed=4)
    [alone] = gate.judge_family([lone])
    crowd = gate.judge_family([lone] + [paired_report(1.0, rounds=8, seed=s) for s in range(19)])
    assert alone is not None and crowd[0] is not None
    p_alone = next(c.p_adjusted for c in alone.comparisons if c.metric == "throughput")
    p_crowd = next(c.p_adjusted for c in crowd[0].comparisons if c.metric == "throughput")
    assert p_crowd > p_alone


def test_holm_matches_its_definition() -> None:
    assert gate.holm([0.01, 0.04, 0.03, math.nan]) == pytest.approx([0.03, 0.06, 0.06, math.nan],
                                                                    nan_ok=True)


def test_too_few_rounds_and_missing_bases_are_said_so() -> None:
    [few] = gate.judge_family([paired_report(0.5, rounds=5)])
    assert few is not None and few.verdict is Verdict.INCONCLUSIVE
    assert "usable rounds" in few.comparisons[0].note
    absent = {"status": "ok", "paired": {"base_status": "absent", "revision": "HEAD (abc)",
                                         "base_error": "m.py does not exist at HEAD (abc)"}}
    crashed = {"status": "ok", "paired": {"base_status": "error", "revision": "HEAD (abc)",
                                          "base_error": "base side: copy 0 died"}}
    new, failed_base = gate.judge_family([absent, crashed])
    assert new is not None and new.verdict is Verdict.NEW and "does not exist" in new.note
    assert failed_base is not None and failed_base.verdict is Verdict.NEW
    assert "the base side at HEAD (abc) failed" in failed_base.note
    assert gate.judge_family([{"status": "ok"}]) == [None]  # not a paired report


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
                               duration=0.8, paired_rounds=10, seed=11, cores=cores[:1])
    assert report["status"] == "ok", report["error"]
    paired = report["paired"]
    assert paired["base_status"] == "ok" and paired["rounds"] == 10 and paired["seed"] == 11
    assert len(paired["order"]) == 10 and set(paired["order"]) <= {"base", "head"}
    assert len(paired["slices"]["head"]["throughput"]) == 10
    assert paired["base"]["throughput_avg"] > report["throughput_avg"]
    # three times the work: throughput falls to about a third (wide: a loaded machine)
    assert -0.9 < paired["delta"]["throughput"] < -0.3
    assert paired["delta"]["latency_ms_p50"] > 0.5
    assert paired["verdict"] == "REGRESSED"
    low, high = paired["interval"]["throughput"]
    assert low <= paired["delta"]["throughput"] <= high
    assert report["interference"] is None or 0 <= report["interference"]["other_pct"] <= 100


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


    @pytest.mark.neuronperf(n_models=1, workers_per_model=1, duration=0.8, paired_rounds=10)
    def test_model(neuronperf):
        reports = neuronperf.benchmark(Model, np.ones((1, 96)), framework="python")
        assert all(r["status"] == "ok" for r in reports)
""")
WIDE = "--neuronperf-paired-tolerance=throughput:40%,p50:40%,p99:off"


def git(directory: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
                   cwd=directory, check=True, capture_output=True)


@pytest.fixture
def repository(pytester: pytest.Pytester) -> Path:
    """A git repository with the perf test committed."""
    pytester.makepyfile(test_perf=PERF_TEST)
    git(pytester.path, "init", "-q")
    git(pytester.path, "add", "test_perf.py")
    git(pytester.path, "commit", "-qm", "base")
    return pytester.path


def test_a_slowdown_against_head_regresses_and_unchanged_code_passes(
        pytester: pytest.Pytester, repository: Path) -> None:
    test_file = repository / "test_perf.py"
    test_file.write_text(PERF_TEST.replace("REPEATS = 4", "REPEATS = 12"))  # 3x the work
    slower = pytester.runpytest_subprocess("--neuronperf-against=HEAD", WIDE,
                                           "--neuronperf-json=out.json")
    slower.assert_outcomes(failed=1)
    slower.stdout.fnmatch_lines(["*REGRESSED bs=1 n=1 w=1 p=1: paired vs HEAD (*): throughput*",
                                 "*paired: head vs base (HEAD (*))*"])
    [report] = json.loads((repository / "out.json").read_text())["reports"]
    assert report["verdict"] == "REGRESSED"
    assert report["paired"]["revision"].startswith("HEAD (")
    assert report["paired"]["delta"]["throughput"] < -0.4
    assert (repository / ".neuronperf-cache").is_dir()
    [tree] = (repository / ".neuronperf-cache").glob("rev-*")
    assert "REPEATS = 4" in (tree / "test_perf.py").read_text()  # the base as committed
    assert not (tree / "test_perf.py").stat().st_mode & 0o222  # read-only

    test_file.write_text(PERF_TEST)  # back to the committed code
    same = pytester.runpytest_subprocess("--neuronperf-against=HEAD", WIDE,
                                         "--neuronperf-json=same.json")
    same.assert_outcomes(passed=1)
    same.stdout.fnmatch_lines(["*paired against HEAD (*)*", "*1 PASS*"])
    [report] = json.loads((repository / "same.json").read_text())["reports"]
    assert report["paired"]["verdict"] == "PASS" and report["paired"]["base_status"] == "ok"
    assert len(report["windows"]["throughput"]) == 10  # the head's slices are its windows


def test_a_model_absent_at_the_base_revision_is_new(
        pytester: pytest.Pytester, repository: Path) -> None:
    (repository / "test_new.py").write_text(
        PERF_TEST.replace("class Model", "class Newer").replace("(Model,", "(Newer,"))
    result = pytester.runpytest_subprocess("test_new.py", "--neuronperf-against=HEAD", WIDE)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*1 NEW*", "*not compared with their base: the model does not "
                                 "exist at HEAD (*): test_new.py does not exist at HEAD*"])


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
                               duration=0.4, paired_rounds=8, cores=cores[:1])
    assert report["status"] == "ok", report["error"]  # the head is fine
    assert report["throughput_avg"] > 0 and len(report["windows"]["throughput"]) == 8
    paired = report["paired"]
    assert paired["base_status"] == "error" and paired["verdict"] == "ERROR"  # docs/paired.md
    assert "base side" in paired["base_error"] and "weights are missing" in paired["base_error"]
    assert "the base side failed, so nothing was compared" in paired["note"]
