"""Verdicts: tolerance specs, per-metric comparisons, budgets, and the failure table."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_neuronperf.gating.verdicts import (
    DEFAULT_TOLERANCE,
    Judgement,
    Verdict,
    compare_metric,
    effective_tolerance,
    entry_from_report,
    format_judgement_table,
    judge,
    parse_tolerance,
    pool_reports,
)


def make_report(
    seed: int,
    speed: float = 1.0,
    cv: float = 0.03,
    drift: float = 0.0,
    windows: int = 10,
    **overrides: Any,
) -> dict[str, Any]:
    """A report whose windows scatter around 1000 samples/s, 2 ms p50 and 3 ms p99, / speed."""
    rng = np.random.default_rng(seed)
    shift = np.exp(rng.normal(0.0, drift)) / speed
    noise = np.exp(rng.normal(0.0, cv, windows))
    throughput = 1000.0 / shift / noise
    p50 = 2.0 * shift * noise
    p99 = 3.0 * shift * np.exp(rng.normal(0.0, 2 * cv, windows))
    report = {
        "status": "ok",
        "batch_size": 1,
        "n_models": 1,
        "workers_per_model": 1,
        "pipeline_size": 1,
        "throughput_avg": float(throughput.mean()),
        "throughput_peak": float(throughput.max()),
        "latency_ms_p50": float(np.median(p50)),
        "latency_ms_p99": float(np.median(p99)),
        "windows": {
            "throughput": throughput.tolist(),
            "latency_ms_p50": p50.tolist(),
            "latency_ms_p99": p99.tolist(),
        },
    }
    report.update(overrides)
    return report


# --- Tolerance specs ---------------------------------------------------------------------------


def test_tolerance_string_with_aliases() -> None:
    assert parse_tolerance("p99:10%, p50:12.5%,throughput:5%") == {
        "latency_ms_p99": 0.10,
        "latency_ms_p50": 0.125,
        "throughput": 0.05,
    }


def test_tolerance_dict_of_fractions_or_percentages() -> None:
    assert parse_tolerance({"p99": 0.1}) == {"latency_ms_p99": 0.1}
    assert parse_tolerance({"p99": "10%"}) == {"latency_ms_p99": 0.1}
    assert parse_tolerance({"latency_ms_p50": "0.2"}) == {"latency_ms_p50": 0.2}


def test_tolerance_off_disables_a_metric() -> None:
    assert parse_tolerance("p99:off") == {"latency_ms_p99": math.inf}
    assert parse_tolerance({"throughput": None}) == {"throughput": math.inf}


def test_empty_tolerance_spec_changes_nothing() -> None:
    assert parse_tolerance("") == {}
    assert effective_tolerance({}) == effective_tolerance(None) == DEFAULT_TOLERANCE


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("p95:10%", "unknown metric 'p95'"),
        ("p99", "not 'metric:value'"),
        ("p99:ten", "'ten'; expected a percentage"),
        ("p99:-5%", "must be 0 or more"),
        ("p99:10", "reads as 1000%"),
        ({"p99": True}, "True; expected a percentage"),
        (["p99"], "string or a dict"),
    ],
)
def test_bad_tolerance_is_a_sentence_naming_the_bad_part(spec: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_tolerance(spec)


def test_effective_tolerance_layers_over_the_defaults() -> None:
    merged = effective_tolerance(parse_tolerance({"p99": "25%", "throughput": 0.07}))
    assert merged == {**DEFAULT_TOLERANCE, "latency_ms_p99": 0.25, "throughput": 0.07}


def test_a_parsed_tolerance_over_100_percent_is_not_parsed_again() -> None:
    # p99:300% parses to 3.0; read again as an unmarked number it would be refused as "300%?".
    parsed = parse_tolerance("p99:300%")
    assert effective_tolerance(parsed)["latency_ms_p99"] == 3.0
    report = make_report(1)
    judgement = judge(report, entry_from_report(report), parsed)
    assert judgement.verdict is Verdict.PASS
    [p99] = [c for c in judgement.comparisons if c.metric == "latency_ms_p99"]
    assert p99.tolerance == 3.0


# --- Verdicts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("verdict", "fails", "fails_strict"),
    [
        (Verdict.PASS, False, False),
        (Verdict.IMPROVED, False, False),
        (Verdict.NEW, False, True),
        (Verdict.INCONCLUSIVE, False, True),
        (Verdict.REGRESSED, True, True),
        (Verdict.OVER_BUDGET, True, True),
        (Verdict.ERROR, True, True),
    ],
)
def test_which_verdicts_fail(verdict: Verdict, fails: bool, fails_strict: bool) -> None:
    assert verdict.failing() is fails
    assert verdict.failing(strict=True) is fails_strict


def test_verdict_is_its_name_as_a_string() -> None:
    assert Verdict.REGRESSED == "REGRESSED"
    assert f"{Verdict.PASS}" == "PASS"


# --- One metric --------------------------------------------------------------------------------


def series(center: float, seed: int, cv: float = 0.03, n: int = 10) -> list[float]:
    """``n`` window values scattered around ``center``."""
    return (center * np.exp(np.random.default_rng(seed).normal(0, cv, n))).tolist()


def test_same_distribution_passes() -> None:
    result = compare_metric("throughput", series(1000, 1), series(1000, 2), 0.10)
    assert result.verdict is Verdict.PASS
    assert abs(result.delta) < 0.05
    assert result.ci_low < 1 + result.delta < result.ci_high


def test_throughput_drop_beyond_tolerance_regresses() -> None:
    result = compare_metric("throughput", series(1000, 1), series(800, 2), 0.10)
    assert result.verdict is Verdict.REGRESSED
    assert result.delta == pytest.approx(-0.2, abs=0.03)
    assert result.p_value < 0.001
    assert result.ci_high < 0.9
    assert result.worse > 0.1


def test_latency_rise_beyond_tolerance_regresses_and_fall_improves() -> None:
    slower = compare_metric("latency_ms_p50", series(2.0, 1), series(2.5, 2), 0.10)
    faster = compare_metric("latency_ms_p50", series(2.0, 1), series(1.5, 2), 0.10)
    assert slower.verdict is Verdict.REGRESSED and slower.delta > 0
    assert faster.verdict is Verdict.IMPROVED and faster.delta < 0


def test_throughput_rise_improves() -> None:
    result = compare_metric("throughput", series(1000, 1), series(1300, 2), 0.10)
    assert result.verdict is Verdict.IMPROVED


def test_small_significant_shift_within_tolerance_passes() -> None:
    """A 4 % whole-run drift is 'significant' to the test, but inside the tolerance."""
    result = compare_metric("throughput", series(1000, 1, 0.01), series(960, 2, 0.01), 0.10)
    assert result.p_value < 0.01
    assert result.verdict is Verdict.PASS


def test_change_beyond_tolerance_that_noise_explains_is_inconclusive() -> None:
    base = [1000, 400, 1600, 700, 1300, 500, 1500, 900, 1100, 600]
    now = [v * 0.85 for v in base[5:] + base[:5]]
    now[0], now[1] = now[1], now[0]
    result = compare_metric("throughput", base, now, 0.10)
    assert result.delta < -0.10
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "p=" in result.note


def test_too_few_windows_is_inconclusive() -> None:
    result = compare_metric("throughput", series(1000, 1, n=3), series(500, 2), 0.10)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "too few windows to decide (3 in the baseline, 10 now)" in result.note


def test_missing_windows_are_ignored() -> None:
    base = series(2.0, 1) + [math.nan, None]
    now = [None, *series(2.6, 2), math.nan]
    result = compare_metric("latency_ms_p99", base, now, 0.10)
    assert result.verdict is Verdict.REGRESSED
    assert math.isfinite(result.baseline) and math.isfinite(result.current)


def test_zero_baseline_is_inconclusive() -> None:
    result = compare_metric("throughput", [0.0] * 10, series(10, 2), 0.10)
    assert result.verdict is Verdict.INCONCLUSIVE


def test_disabled_metric_never_fails() -> None:
    result = compare_metric("throughput", series(1000, 1), series(300, 2), math.inf)
    assert result.verdict is Verdict.PASS


def test_comparison_is_deterministic() -> None:
    base, now = series(1000, 1, 0.08), series(900, 2, 0.08)
    assert compare_metric("throughput", base, now, 0.1) == compare_metric(
        "throughput", base, now, 0.1
    )


# --- One configuration -------------------------------------------------------------------------


def test_error_report_is_error() -> None:
    judgement = judge({"status": "error", "error": "worker 0 died"}, None, budgets={"p99_ms": 1})
    assert judgement.verdict is Verdict.ERROR
    assert judgement.failing
    assert "worker 0 died" in format_judgement_table(judgement)


def test_no_baseline_entry_is_new_and_passes_unless_strict() -> None:
    report = make_report(1)
    assert judge(report, None).verdict is Verdict.NEW
    assert not judge(report, None).failing
    assert judge(report, None, strict=True).failing


@pytest.mark.parametrize(
    ("budgets", "missed"),
    [
        ({"p50_ms": 1.0}, ["p50_ms"]),
        ({"p99_ms": 2.0}, ["p99_ms"]),
        ({"min_throughput": 5000}, ["min_throughput"]),
        ({"p50_ms": 1.0, "p99_ms": 10.0, "min_throughput": 5000}, ["p50_ms", "min_throughput"]),
        ({"p50_ms": 10.0, "p99_ms": None, "min_throughput": 10}, []),
    ],
)
def test_absolute_budgets(budgets: dict[str, Any], missed: list[str]) -> None:
    report = make_report(1)
    judgement = judge(report, None, budgets=budgets)
    assert [m.budget for m in judgement.budget_misses] == missed
    assert judgement.verdict is (Verdict.OVER_BUDGET if missed else Verdict.NEW)


def test_over_budget_wins_over_a_baseline_pass_and_keeps_the_comparisons() -> None:
    judgement = judge(make_report(2), entry_from_report(make_report(1)), budgets={"p99_ms": 1})
    assert judgement.verdict is Verdict.OVER_BUDGET
    assert [c.verdict for c in judgement.comparisons] == [Verdict.PASS] * 3


def test_unmeasured_latency_misses_its_budget() -> None:
    report = make_report(1, latency_ms_p99=math.nan)
    assert judge(report, None, budgets={"p99_ms": 100}).verdict is Verdict.OVER_BUDGET


def test_unknown_budget_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown budget 'p90_ms'"):
        judge(make_report(1), None, budgets={"p90_ms": 3})


def test_identical_code_passes_with_baseline_and_delta() -> None:
    baseline = make_report(1)
    judgement = judge(make_report(2), entry_from_report(baseline))
    assert judgement.verdict is Verdict.PASS
    assert set(judgement.delta) == {"throughput", "latency_ms_p50", "latency_ms_p99"}
    assert judgement.baseline["throughput"] == pytest.approx(
        float(np.median(baseline["windows"]["throughput"]))
    )
    fields = judgement.report_fields()
    assert fields["verdict"] == "PASS"
    assert fields["baseline"]["throughput_avg"] == baseline["throughput_avg"]
    assert fields["delta"] == judgement.delta


def test_new_report_fields_have_no_baseline() -> None:
    assert judge(make_report(1), None).report_fields() == {"verdict": "NEW"}


def test_slowdown_regresses_and_fails() -> None:
    judgement = judge(make_report(2, speed=0.8), entry_from_report(make_report(1)))
    assert judgement.verdict is Verdict.REGRESSED
    assert judgement.failing
    assert judgement.delta["throughput"] < -0.1
    assert judgement.delta["latency_ms_p50"] > 0.1


def test_speedup_is_improved_and_passes() -> None:
    judgement = judge(make_report(2, speed=1.4), entry_from_report(make_report(1)))
    assert judgement.verdict is Verdict.IMPROVED
    assert not judgement.failing


def test_marker_tolerance_can_switch_a_metric_off() -> None:
    entry = entry_from_report(make_report(1))
    judgement = judge(make_report(2, speed=0.8), entry,
                      parse_tolerance("p50:off,p99:off,throughput:off"))
    assert judgement.verdict is Verdict.PASS


def test_any_inconclusive_metric_makes_the_configuration_inconclusive() -> None:
    entry = entry_from_report(make_report(1))
    report = make_report(2)
    report["windows"]["latency_ms_p99"] = [3.0, math.nan, math.nan] + [math.nan] * 7
    judgement = judge(report, entry)
    assert judgement.verdict is Verdict.INCONCLUSIVE
    assert not judgement.failing
    assert judge(report, entry, strict=True).failing


def test_entry_without_windows_falls_back_to_stored_values() -> None:
    entry = {"metrics": {"throughput_avg": 1000.0, "latency_ms_p50": 2.0, "latency_ms_p99": 3.0}}
    judgement = judge(make_report(2), entry)
    assert judgement.verdict is Verdict.INCONCLUSIVE
    assert judgement.baseline["throughput"] == 1000.0


def test_entry_from_report_keeps_metrics_and_windows() -> None:
    report = make_report(1, model_name="mlp", latency_ms_p100=None)
    entry = entry_from_report(report)
    assert set(entry) == {"metrics", "windows"}
    assert entry["metrics"]["throughput_avg"] == report["throughput_avg"]
    assert math.isnan(entry["metrics"]["latency_ms_p100"])
    assert "model_name" not in entry["metrics"]
    assert entry["windows"]["throughput"] == report["windows"]["throughput"]


def test_entry_from_error_report_is_refused() -> None:
    with pytest.raises(ValueError, match="error"):
        entry_from_report({"status": "error", "error": "boom"})


# --- Failure message ---------------------------------------------------------------------------


def test_table_shows_baseline_now_delta_tolerance_and_verdict() -> None:
    judgement = judge(
        make_report(2, speed=0.8), entry_from_report(make_report(1)), budgets={"p99_ms": 2.5}
    )
    table = format_judgement_table(judgement)
    lines = table.splitlines()
    assert all(len(line) < 100 for line in lines)
    assert lines[0].split()[:6] == ["metric", "baseline", "now", "delta", "tolerance", "p"]
    throughput = next(line for line in lines if line.startswith("throughput"))
    tolerance = f"-{DEFAULT_TOLERANCE['throughput']:.0%}"
    assert tolerance in throughput and "-19.1%" in throughput and "REGRESSED" in throughput
    assert any(line.startswith("p99 budget") and "OVER_BUDGET" in line for line in lines)


def test_table_of_new_configuration_says_so() -> None:
    assert "NEW" in format_judgement_table(judge(make_report(1), None))


def test_table_shows_disabled_tolerance_as_off() -> None:
    judgement = judge(make_report(2), entry_from_report(make_report(1)),
                      parse_tolerance("p99:off"))
    assert "off" in next(
        line for line in format_judgement_table(judgement).splitlines() if line.startswith("p99")
    )


# --- The contract, on seeded simulations ------------------------------------------------------


def test_identical_code_rarely_regresses_and_a_25_percent_slowdown_always_does() -> None:
    """Seeded: window CV 5 %, run-to-run drift 2.5 %, 10 windows (``duration`` 3 s)."""
    same = [
        judge(
            make_report(2 * i + 1, cv=0.05, drift=0.025),
            entry_from_report(make_report(2 * i, cv=0.05, drift=0.025)),
        )
        for i in range(60)
    ]
    slow = [
        judge(
            make_report(2 * i + 1, speed=0.8, cv=0.05, drift=0.025),
            entry_from_report(make_report(2 * i, cv=0.05, drift=0.025)),
        )
        for i in range(100, 140)
    ]
    assert sum(j.verdict is Verdict.REGRESSED for j in same) <= 3
    assert all(j.verdict is Verdict.REGRESSED for j in slow)


def test_importing_the_gate_imports_no_framework_and_no_scipy() -> None:
    code = (
        "import sys; import pytest_neuronperf.gating.verdicts, pytest_neuronperf.gating.baseline, "
        "pytest_neuronperf.gating.machine; "
        "print(*(m in sys.modules for m in ('torch', 'tensorflow', 'scipy')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]


def test_judgement_is_plain_data() -> None:
    judgement = Judgement(Verdict.PASS)
    assert judgement.comparisons == [] and judgement.delta == {} and not judgement.failing


def test_a_suspected_regression_is_rechecked_on_both_runs() -> None:
    from pytest_neuronperf.gating.verdicts import Judgement, needs_recheck, pool_reports

    assert needs_recheck(Judgement(Verdict.REGRESSED))
    assert needs_recheck(Judgement(Verdict.INCONCLUSIVE))
    assert not needs_recheck(Judgement(Verdict.PASS))
    first = {"status": "ok", "throughput_avg": 10.0, "windows": {"throughput": [10.0, 11.0]}}
    second = {"status": "ok", "throughput_avg": 12.0, "windows": {"throughput": [12.0]}}
    pooled = pool_reports(first, second)
    assert pooled["windows"]["throughput"] == [10.0, 11.0, 12.0]
    assert pooled["throughput_avg"] == 10.0 and pooled["recheck"]["throughput_avg"] == 12.0
    assert first["windows"]["throughput"] == [10.0, 11.0]  # inputs untouched
    failed = pool_reports(first, {"status": "error", "error": "boom"})
    assert failed["windows"] == first["windows"] and failed["recheck"]["error"] == "boom"


def test_a_metric_switched_off_is_never_inconclusive() -> None:
    # two windows only: too few to decide, but p50 and p99 are off, so they must not say so
    base = {"status": "ok", "throughput_avg": 2.0, "latency_ms_p50": 450.0,
            "latency_ms_p99": 460.0,
            "windows": {"throughput": [2.0, 2.0], "latency_ms_p50": [450.0, 451.0],
                        "latency_ms_p99": [460.0, 461.0]}}
    judgement = judge(base, entry_from_report(base), parse_tolerance("p50:off,p99:off"))
    verdicts = {c.metric: c.verdict for c in judgement.comparisons}
    assert verdicts["latency_ms_p50"] is verdicts["latency_ms_p99"] is Verdict.PASS


def test_gate_figures_are_the_medians_the_verdict_used() -> None:
    from pytest_neuronperf.gating.verdicts import gate_figures

    base, now = make_report(1), make_report(2, speed=0.7)
    judgement = judge(now, entry_from_report(base))
    figures = gate_figures(judgement, now)
    for c in judgement.comparisons:
        assert figures[c.metric]["now"] == c.current
        assert figures[c.metric]["baseline"] == c.baseline
        assert figures[c.metric]["delta"] == c.delta
        assert figures[c.metric]["verdict"] == c.verdict.value
        # the interval of the change, as delta is (one name and one form with the paired gate)
        low, high = figures[c.metric]["interval"]
        assert low == pytest.approx(c.ci_low - 1) and high == pytest.approx(c.ci_high - 1)
    recorded = gate_figures(judge(base, None), base)  # NEW: what a later gate calls baseline
    assert recorded["throughput"]["now"] == figures["throughput"]["baseline"]
    assert set(recorded["throughput"]) == {"now"}


# -- launches compared with launches ----------------------------------------------------------


def test_launch_medians_follow_the_windows_each_launch_gave() -> None:
    from pytest_neuronperf.gating.verdicts import launch_medians

    windows = [1.0, 2.0, 3.0, None, 10.0, 12.0]
    assert launch_medians(windows, [3, 3]).tolist() == [2.0, 11.0]
    assert launch_medians(windows, [4]).size == 0  # sizes that do not fit: an older entry
    assert launch_medians(windows, None).size == 0


def test_a_baseline_whose_launches_disagree_beyond_tolerance_cannot_decide() -> None:
    base = series(1000, 1, 0.01) + series(1250, 2, 0.01)
    result = compare_metric("throughput", base, series(950, 3), 0.10, [10, 10], [10])
    assert result.verdict is Verdict.INCONCLUSIVE
    # a change larger than the baseline's own disagreement still decides
    slower = compare_metric("throughput", base, series(600, 3), 0.10, [10, 10], [10])
    assert slower.verdict is Verdict.REGRESSED
    assert "the baseline's 2 launches differ by 2" in result.note and "tolerance" in result.note


def test_an_entry_from_before_launches_is_gated_on_its_windows(tmp_path: Path) -> None:
    """Older baseline files (no ``launch_windows``) keep loading and gating."""
    from pytest_neuronperf.gating.baseline import load_baseline

    old = {"format": "pytest-neuronperf-baseline", "version": 1, "machines": {"m": {
        "fingerprint": {"cpu": "x", "cores": 2}, "tests": {"t.py::test": {"bs=1": {
            "metrics": {"throughput_avg": 1000.0},
            "windows": {"throughput": series(1000, 1), "latency_ms_p50": series(1.0, 2),
                        "latency_ms_p99": series(2.0, 3)}}}}}}}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    baseline = load_baseline(path)
    assert baseline is not None
    entry = baseline.lookup("m", "t.py::test", "bs=1")
    report = {"status": "ok", "throughput_avg": 700.0, "launch_windows": [10],
              "windows": {"throughput": series(700, 4), "latency_ms_p50": series(1.4, 5),
                          "latency_ms_p99": series(2.8, 6)}}
    judgement = judge(report, entry)
    assert judgement.verdict is Verdict.REGRESSED
    throughput = next(c for c in judgement.comparisons if c.metric == "throughput")
    assert throughput.delta == pytest.approx(-0.3, abs=0.05)


def test_pooling_and_saving_keep_the_launches_apart() -> None:
    first = {"status": "ok", "windows": {"throughput": [1.0, 2.0]}, "launch_windows": [2]}
    second = {"status": "ok", "windows": {"throughput": [3.0, 4.0, 5.0]}, "launch_windows": [3]}
    pooled = pool_reports(first, second)
    assert pooled["launch_windows"] == [2, 3]
    assert pooled["windows"]["throughput"] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert entry_from_report({**pooled, "throughput_avg": 3.0})["launch_windows"] == [2, 3]
    assert "launch_windows" not in pool_reports({**first, "launch_windows": None}, second)
