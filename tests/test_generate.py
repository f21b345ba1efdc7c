"""The generate scenario in process: token timings, the model forms, the open loop, gating,
paired mode, tune() and the refusals. The endpoint path and the server helper are in
test_generate_server.py."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from generate_models import FIRST_TOKEN_S, TOKEN_S, Sleeper, TimesPrompt

import pytest_neuronperf as npf
from pytest_neuronperf.child.token_streams import StampStreamer, checked_iterator
from pytest_neuronperf.engine import generation, token_summary
from pytest_neuronperf.engine.token_summary import Slos
from pytest_neuronperf.gating import paired as paired_gate
from pytest_neuronperf.gating.verdicts import Verdict, entry_from_report, judge
from pytest_neuronperf.metrics import gated_metrics
from pytest_neuronperf.plugin.markers import PerfSettings, SettingsError, apply_keywords
from pytest_neuronperf.protocol import messages
from pytest_neuronperf.tuning import format_tuning, tuning_of

pytest_plugins = ["pytester"]

MS = 1_000_000
QUICK: dict[str, Any] = {"n_models": 1, "workers_per_model": 1, "duration": 0.4, "warmup": 0,
                         "verbosity": 0}


def generated(*requests: tuple[int, list[int], int, int]) -> messages.Generated:
    """A copy's message from (arrival ms, token stamps in ms, prompt tokens, sequences); each
    request starts at its arrival and ends 1 ms after its last token; no stamps: never
    served."""
    rows = []
    for arrival, stamps, prompt, sequences in requests:
        served = bool(stamps)
        rows.append((arrival * MS, arrival * MS if served else -1,
                     (stamps[-1] + 1) * MS if served else -1, len(stamps), prompt,
                     sequences if served else 0, len(stamps)))
    columns = [np.array(c, dtype=np.int64) for c in zip(*rows, strict=True)]
    flat = np.array([s * MS for _, stamps, _, _ in requests for s in stamps], dtype=np.int64)
    return messages.Generated(*columns, flat)


TWO_REQUESTS = generated((0, [10, 12, 14, 16], 3, 1), (20, [25, 35], 5, 2))


# --- the figures, from known timestamps ------------------------------------------------------


def test_ttft_tpot_itl_and_end_to_end_follow_their_definitions():
    fields = token_summary.generate_fields([TWO_REQUESTS], 0, 0.1, Slos())
    # request 1: TTFT 10, TPOT (16 - 10) / 3 = 2, e2e 16, gaps 2 2 2; request 2 (2 sequences):
    # TTFT 5, TPOT 10, e2e 15, gap 10 -- every figure weighs a sequence as one request
    assert fields["ttft_ms_p50"] == 5.0 and fields["ttft_ms_p99"] == pytest.approx(9.9, abs=0.2)
    assert fields["tpot_ms_p50"] == 10.0  # [2, 10, 10]: unweighted it would be 6
    assert fields["itl_ms_p50"] == 2.0 and fields["itl_ms_p99"] == pytest.approx(10, abs=0.2)
    assert fields["e2e_ms_p50"] == 15.0 and fields["latency_ms_p50"] == 15.0
    assert fields["requests"] == 3 and fields["total_infs"] == 3
    assert fields["output_tokens_avg"] == pytest.approx((4 + 2 * 2) / 3)


def test_tokens_per_second_counts_each_token_in_the_window_it_arrived_in():
    fields = token_summary.generate_fields([TWO_REQUESTS], 0, 0.1, Slos())
    # 10 windows of 10 ms: 4 tokens in the 2nd, then 2 sequences x 1 token in the 3rd and 4th
    assert fields["windows"]["output_tokens_per_s"][:5] == [0.0, 400.0, 200.0, 200.0, 0.0]
    assert fields["output_tokens_per_s"] == pytest.approx(80.0)  # 8 tokens / 0.1 s
    assert fields["requests_per_s"] == pytest.approx(30.0)  # 3 sequences / 0.1 s
    # a request counts where its tokens arrived, by their share: the 2-sequence request is
    # half in the 3rd window, half in the 4th, so no window it streamed in looks idle
    assert fields["windows"]["throughput"][:5] == pytest.approx([0, 100, 100, 100, 0])
    assert fields["prefill_tokens_per_s"] == pytest.approx(80.0)  # 3 + 5 prompt tokens
    assert math.isnan(fields["windows"]["tpot_ms_p99"][0])  # nothing finished in it
    assert fields["windows"]["tpot_ms_p99"][1] == pytest.approx(2.0)


def test_goodput_counts_the_requests_within_every_slo():
    fields = token_summary.generate_fields([TWO_REQUESTS], 0, 0.1, Slos(ttft_ms=8))
    assert fields["goodput_ratio"] == pytest.approx(2 / 3)  # the 2 sequences with TTFT 5
    assert fields["goodput"] == pytest.approx(20.0)
    both = token_summary.generate_fields([TWO_REQUESTS], 0, 0.1, Slos(ttft_ms=8, tpot_ms=5))
    assert both["goodput"] == 0.0 and both["goodput_ratio"] == 0.0  # TPOT 10 misses 5
    assert "goodput" not in token_summary.generate_fields([TWO_REQUESTS], 0, 0.1, Slos())


def test_a_one_token_request_has_no_tpot_and_meets_a_tpot_slo():
    one = generated((0, [4], 1, 1))
    fields = token_summary.generate_fields([one], 0, 0.1, Slos(tpot_ms=1))
    assert fields["tpot_ms_p50"] is None and fields["itl_ms_p50"] is None
    assert fields["goodput_ratio"] == 1.0


def test_the_open_loop_counts_queueing_and_flags_what_was_never_served():
    # three arrivals 0, 1, 2 ms; one server of ~10 ms a request: the third is never served
    copy = generated((0, [5, 10], 2, 1), (1, [15, 20], 2, 1), (2, [], 2, 1))
    starts = np.array([0, 11 * MS, -1], dtype=np.int64)
    copy = messages.Generated(copy.arrival_ns, starts, *[getattr(copy, n) for n in
                                                         messages.Generated.ARRAYS[2:]])
    fields = token_summary.generate_fields([copy], 0, 0.05, Slos())
    assert fields["ttft_ms_p50"] == pytest.approx(9.5)  # 5 and 14 ms from the arrivals
    loop = token_summary.open_loop_fields([copy], 0, 0.05)
    assert loop["unserved"] == 1 and loop["overloaded"] and loop["offered_queries"] == 3
    assert loop["queue_ms_p99"] == pytest.approx(10, abs=0.2)


def test_paired_slices_measure_tokens_per_second_from_the_first_request():
    figures = token_summary.slice_figures([TWO_REQUESTS], 0, 40 * MS)
    assert figures["output_tokens_per_s"] == pytest.approx(8 / 0.040)
    assert figures["tpot_ms_p99"] == pytest.approx(10.0, abs=0.2) and figures["calls"] == 3


def test_generated_messages_cross_the_pipe_whole():
    parent, child = multiprocessing.Pipe()
    messages.send(child, TWO_REQUESTS)
    received = messages.receive(parent)
    assert isinstance(received, messages.Generated) and math.isnan(received.cpu_s)
    for name in messages.Generated.ARRAYS:
        assert np.array_equal(getattr(received, name), getattr(TWO_REQUESTS, name))


# --- the copy's side, without processes ------------------------------------------------------


class Shape:
    """What the streamer reads of a tensor."""

    def __init__(self, *shape: int) -> None:
        self.shape = shape

    def dim(self) -> int:
        return len(self.shape)


def test_the_streamer_leaves_out_the_prompt_and_stamps_each_step():
    stamps: list[int] = []
    streamer = StampStreamer(stamps.append, prompt_length=5)
    streamer.put(Shape(2, 5))  # the prompt, put first by generate
    streamer.put(Shape(2))
    streamer.put(Shape(2, 3))  # several tokens at once (assisted decoding)
    assert len(stamps) == 2 and streamer.tokens == 4


def test_a_list_of_tokens_is_refused_in_one_sentence():
    with pytest.raises(messages.Refusal, match="returned a list, not an iterator"):
        checked_iterator([1, 2, 3])


# --- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("inputs", "expected"), [
    ([1, 2, 3], ((1, 2, 3),)),
    ([[1, 2], [3]], ((1, 2), (3,))),
    ("hello", ("hello",)),
    (["a", "b"], ("a", "b")),
    (np.array([[4, 5]]), ((4, 5),)),
    ([np.array([[6, 7]]), np.array([8])], ((6, 7), (8,))),
])
def test_prompts_are_token_ids_or_text(inputs, expected):
    assert generation.prompts_of(inputs) == expected


@pytest.mark.parametrize(("inputs", "message"), [
    ([], "takes prompts"), ([[1, 2], []], "prompt 1 is empty"), ([1.5], "prompt 0 is a float"),
    ([[1, -2]], "not a token id"), (np.zeros((1, 2, 3)), "1 or 2 dimensions"),
])
def test_bad_prompts_are_refused(inputs, message):
    with pytest.raises(ValueError, match=message):
        generation.prompts_of(inputs)


def test_output_tokens_is_one_count_or_one_per_prompt():
    assert generation.output_lengths(4, 2) == (4, 4)
    assert generation.output_lengths([4, 8], 2) == (4, 8)
    with pytest.raises(ValueError, match="needs output_tokens"):
        generation.output_lengths(None, 2)
    with pytest.raises(ValueError, match="3 lengths for 2 prompts"):
        generation.output_lengths([1, 2, 3], 2)


@pytest.mark.parametrize(("keywords", "message"), [
    ({"slo_ttft_ms": 50}, "slo_ttft_ms defines a good request of the generate scenario"),
    ({"scenario": "server", "target_qps": 5, "slo_tpot_ms": 5}, "add scenario='generate'"),
    ({"tpot_ms_p99": 20}, "tpot_ms_p99 is a budget of the generate scenario"),
    ({"output_tokens": 8}, "output_tokens is the length"),
    ({"scenario": "generate", "min_goodput": 2}, "min_goodput counts the requests"),
    ({"scenario": "generate", "target_qps": "max"}, "give request rates"),
])
def test_generate_keywords_outside_the_generate_scenario_are_refused(keywords, message):
    with pytest.raises(SettingsError, match=message):
        apply_keywords(PerfSettings(), keywords)


def test_generate_keywords_reach_benchmark():
    settings = apply_keywords(PerfSettings(), {
        "scenario": "generate", "output_tokens": [4, 8], "slo_ttft_ms": 50, "min_goodput": 1,
        "target_qps": [2, 4]})
    assert settings.scenario_arguments() == {
        "scenario": "generate", "target_qps": [2.0, 4.0], "output_tokens": [4, 8],
        "slo_ttft_ms": 50.0, "slo_tpot_ms": None}
    assert settings.budgets == {"min_goodput": 1.0}


# --- gating on token metrics -------------------------------------------------------------------


def generate_report(tpot: float, tokens: float, goodput: float | None = None) -> dict[str, Any]:
    """A generate report with 10 windows around the given figures (1 % apart)."""
    spread = np.linspace(0.99, 1.01, 10)
    windows = {"output_tokens_per_s": list(tokens * spread), "ttft_ms_p99": list(20 * spread),
               "tpot_ms_p99": list(tpot * spread)}
    report: dict[str, Any] = {"status": "ok", "scenario": "generate", "batch_size": 1,
                              "n_models": 1, "workers_per_model": 1, "pipeline_size": 1,
                              "throughput_avg": 10.0, "latency_ms_p50": 100.0,
                              "latency_ms_p99": 120.0, "output_tokens_per_s": tokens,
                              "ttft_ms_p99": 20.0, "tpot_ms_p99": tpot, "windows": windows}
    if goodput is not None:
        report["goodput"] = goodput
        windows["goodput"] = list(goodput * spread)
    return report


def test_generate_reports_are_gated_on_token_metrics_only():
    assert gated_metrics(generate_report(5, 100)) == (
        "output_tokens_per_s", "ttft_ms_p99", "tpot_ms_p99")
    assert "goodput" in gated_metrics(generate_report(5, 100, goodput=3))
    assert gated_metrics({"status": "ok"}) == ("throughput", "latency_ms_p50", "latency_ms_p99")


def test_a_slower_time_per_token_is_regressed_against_the_baseline():
    entry = entry_from_report(generate_report(tpot=5.0, tokens=200.0))
    judgement = judge(generate_report(tpot=7.5, tokens=150.0), entry)
    assert judgement.verdict is Verdict.REGRESSED
    verdicts = {c.metric: c.verdict for c in judgement.comparisons}
    assert verdicts == {"output_tokens_per_s": Verdict.REGRESSED, "ttft_ms_p99": Verdict.PASS,
                        "tpot_ms_p99": Verdict.REGRESSED}
    assert judge(generate_report(5.0, 200.0), entry).verdict is Verdict.PASS


def test_token_budgets_are_absolute():
    report = generate_report(tpot=5.0, tokens=200.0, goodput=3.0)
    assert judge(report, None, budgets={"tpot_ms_p99": 6}).verdict is Verdict.NEW
    missed = judge(report, None, budgets={"tpot_ms_p99": 4, "min_goodput": 5})
    assert missed.verdict is Verdict.OVER_BUDGET
    assert {m.budget for m in missed.budget_misses} == {"tpot_ms_p99", "min_goodput"}


def paired_generate(head_tpot: float, base_tpot: float, pairs: int = 8,
                    rounds: int = 3) -> dict[str, Any]:
    """A paired generate report whose launch pairs put TPOT at these values (0.5 % noise)."""
    noise = np.random.default_rng(3).normal(1, 0.005, size=(pairs, 2, rounds))

    def values(pair: int) -> dict[str, dict[str, list[float]]]:
        return {name: {"tpot_ms_p99": list(tpot * noise[pair, i]),
                       "ttft_ms_p99": list(20 * noise[pair, i]),
                       "output_tokens_per_s": list(1000 / tpot * noise[pair, i])}
                for i, (name, tpot) in enumerate((("head", head_tpot), ("base", base_tpot)))}

    launches = [{"order": "head", "rounds": rounds, "values": values(pair)}
                for pair in range(pairs)]
    return {**generate_report(head_tpot, 1000 / head_tpot),
            "paired": {"base_status": "ok", "launches": launches, "pairs": pairs,
                       "planned_pairs": pairs}}


def test_the_paired_gate_judges_tpot_per_launch_pair():
    [slower] = paired_gate.judge_family([paired_generate(head_tpot=8.0, base_tpot=5.0)])
    assert slower is not None and slower.verdict is Verdict.REGRESSED
    assert {c.metric for c in slower.comparisons} == {
        "output_tokens_per_s", "ttft_ms_p99", "tpot_ms_p99"}
    [same] = paired_gate.judge_family([paired_generate(head_tpot=5.0, base_tpot=5.0)])
    assert same is not None and same.verdict is Verdict.PASS


def test_the_stopping_rule_looks_at_the_token_metrics_of_a_generate_run():
    rule = paired_gate.stop_rules(None)(1)
    for head_tpot, code in ((8.0, "regressed"), (5.0, "clear")):
        launches = paired_generate(head_tpot, base_tpot=5.0)["paired"]["launches"]
        assert rule({"scenario": "generate", "launches": launches}, 40).code == code
        # as a closed loop's it would find none of its metrics, and never stop on its own
        assert rule({"launches": launches}, 40).code == "continue"


def test_tune_ranks_generate_configurations_by_goodput():
    reports = [dict(generate_report(5, 100, goodput=g), workers_per_model=w, status="ok")
               for w, g in ((1, 2.0), (2, 3.5), (4, 0.0))]
    reports[1]["overloaded"] = False
    tuning = tuning_of(reports, None)
    assert tuning.best is reports[1]
    assert "deploy bs=1 n=1 w=2 p=1: goodput 3.500 requests/s" in format_tuning(tuning)


def test_tune_in_the_generate_scenario_needs_an_slo():
    with pytest.raises(ValueError, match="give slo_ttft_ms= and/or slo_tpot_ms="):
        npf.tune(Sleeper, [[1]], scenario="generate", output_tokens=4)


# --- measured, in model processes --------------------------------------------------------------


def test_an_iterator_model_is_timed_token_by_token():
    [report] = npf.benchmark(Sleeper, [[1, 2, 3]], scenario="generate", output_tokens=8,
                             slo_ttft_ms=1000, **QUICK)
    assert report["status"] == "ok", report["error"]
    assert report["scenario"] == "generate" and report["output_tokens_avg"] == 8
    # the model's sleeps are lower bounds (a loaded machine only adds to them)
    assert report["ttft_ms_p50"] >= FIRST_TOKEN_S * 1e3
    assert report["tpot_ms_p50"] >= TOKEN_S * 1e3
    assert report["itl_ms_p50"] >= TOKEN_S * 1e3 and report["requests"] >= 1
    assert report["goodput_ratio"] == 1.0 and report["prefill_tokens_per_s"] > 0
    # every token of the window is counted: tokens/s = requests/s x 8 up to the partial ones
    assert report["output_tokens_per_s"] > 0 and report["windows"]["tpot_ms_p99"]
    assert report["ttft_sketch"]["ms"] and report["tpot_sketch"]["ms"]


def test_a_batch_is_one_request_per_sequence(tmp_path, monkeypatch):
    log = tmp_path / "prompts.log"
    monkeypatch.setenv("PROMPT_LOG", str(log))
    [report] = npf.benchmark(TimesPrompt, [[1], [2], [3]], scenario="generate",
                             output_tokens=4, batch_sizes=2, **QUICK)
    assert report["status"] == "ok", report["error"]
    calls = log.read_text().splitlines()  # warm-up, then the window: both from the start
    assert calls[:3] == ["[(1,), (2,)]", "[(1,), (2,)]", "[(3,), (1,)]"]  # 2 at a time, wrapping
    assert report["requests"] % 2 == 0  # each call counts its two sequences


def test_the_open_loop_measures_from_the_scheduled_arrival():
    light, heavy = npf.benchmark(Sleeper, [[1]], scenario="generate", output_tokens=4,
                                 target_qps=[5, 2000], **{**QUICK, "duration": 0.5})
    assert light["status"] == heavy["status"] == "ok", (light["error"], heavy["error"])
    assert light["target_qps"] == 5 and not light["overloaded"]
    # 2000 requests/s against one ~12 ms request at a time: the queue only grows
    assert heavy["overloaded"] and heavy["unserved"] > 0
    assert heavy["ttft_ms_p99"] > light["ttft_ms_p99"]  # queueing counts from the arrival


BAD_MODELS = [
    ("YieldsNothing", "the model produced no token for prompt 0 (output_tokens=4)"),
    ("StopsEarly", "the model produced 2 of the 4 tokens asked for prompt 0"),
    ("ReturnsAList", "the model returned a list, not an iterator"),
]


@pytest.mark.parametrize(("name", "sentence"), BAD_MODELS)
def test_a_model_that_does_not_stream_its_tokens_is_an_error_in_one_sentence(name, sentence):
    import generate_models

    [report] = npf.benchmark(getattr(generate_models, name), [[1]], scenario="generate",
                             output_tokens=4, **QUICK)
    assert report["status"] == "error"
    headline = report["error"].splitlines()[0]
    assert headline.startswith("copy 0 failed while loading and warming up: " + sentence)


def test_ignore_eos_false_measures_outputs_of_any_length():
    from generate_models import StopsEarly

    [report] = npf.benchmark(StopsEarly, [[1]], scenario="generate", output_tokens=4,
                             ignore_eos=False, **QUICK)
    assert report["status"] == "ok" and report["output_tokens_avg"] == 2


def test_a_tiny_llama_generates_exactly_the_asked_tokens_at_batch_1_and_4():
    from llm_models import TinyLlamaStopsAtEos

    one, four = npf.benchmark(TinyLlamaStopsAtEos, [[5, 6, 7], [8, 9]], scenario="generate",
                              output_tokens=6, batch_sizes=[1, 4], **QUICK)
    for report in (one, four):
        assert report["status"] == "ok", report["error"]
        assert report["framework"] == "torch" and report["output_tokens_avg"] == 6
        assert report["requests"] % report["batch_size"] == 0
    # the model's every pick is its end-of-sequence token: without min_new_tokens it would stop
    [eos] = npf.benchmark(TinyLlamaStopsAtEos, [[5, 6, 7]], scenario="generate",
                          output_tokens=6, ignore_eos=False, **QUICK)
    assert eos["status"] == "ok" and eos["output_tokens_avg"] == 1


@pytest.mark.parametrize(("call", "message"), [
    ({"postprocess_fn": print}, "postprocess_fn does not apply to scenario='generate'"),
    ({"scenario": "server", "target_qps": 5, "slo_ttft_ms": 10}, "add scenario='generate'"),
    ({"scenario": "closed", "output_tokens": 4}, "output_tokens is the length"),
    ({"return_timers": True}, "return_timers does not apply"),
])
def test_library_refusals_before_any_process_starts(call, message):
    arguments = {"scenario": "generate", "output_tokens": 4, **QUICK, **call}
    with pytest.raises(ValueError, match=message):
        npf.benchmark(Sleeper, [[1]], **arguments)


# --- from pytest -----------------------------------------------------------------------------

PERF_TEST = """
import pytest
from generate_models import Sleeper


@pytest.mark.neuronperf(scenario="generate", output_tokens=6, n_models=1, workers_per_model=1,
                        duration=0.4, warmup=0, {keywords})
def test_tokens(neuronperf):
    [report] = neuronperf.benchmark(Sleeper, [[1, 2]])
    assert report["status"] == "ok", report["error"]
"""


def write_perf_test(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                    keywords: str) -> None:
    """The perf test above, able to import this directory's models."""
    pytester.makepyfile(test_tokens=PERF_TEST.format(keywords=keywords))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))


def test_slos_without_the_generate_scenario_are_a_usage_error_naming_the_test(pytester):
    pytester.makepyfile(test_slo="""
        import pytest

        @pytest.mark.neuronperf(slo_ttft_ms=200)
        def test_chat(neuronperf):
            pass
    """)
    result = pytester.runpytest("-p", "no:cacheprovider")  # refused before any process starts
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_slo.py::test_chat: neuronperf marker: slo_ttft_ms "
                                 "defines a good request of the generate scenario*"])


BUDGET_TEST = """

@pytest.mark.neuronperf(scenario="generate", output_tokens=6, n_models=1, workers_per_model=1,
                        duration=0.4, warmup=0, tpot_ms_p99=0.5, slo_tpot_ms=100,
                        min_goodput=0.1)
def test_budget(neuronperf):
    neuronperf.benchmark(Sleeper, [[1, 2]])
"""


def test_a_baseline_of_token_metrics_is_saved_and_gated_and_budgets_fail(pytester, monkeypatch):
    write_perf_test(pytester, monkeypatch, "slo_ttft_ms=1000")
    baseline = pytester.path / "baseline.json"
    html = pytester.path / "report.html"
    args = ("-p", "no:cacheprovider", f"--neuronperf-baseline={baseline}")
    saved = pytester.runpytest_subprocess(*args, "--neuronperf-save-baseline")
    saved.assert_outcomes(passed=1)
    entry = json.loads(baseline.read_text())["machines"]
    [tests] = [m["tests"] for m in entry.values()]
    [configs] = tests.values()
    [stored] = configs.values()
    assert {"output_tokens_per_s", "ttft_ms_p99", "tpot_ms_p99", "goodput"} <= set(
        stored["windows"])
    # profiled on saving, a call being a request: the model's generator is in its Python table
    python = stored["profile"]["tables"]["python"]
    assert any("Sleeper" in key for key in python["rows"]), python
    # compared with the baseline, tolerances off: a loaded machine can slow a run by 4x, and
    # whether a slowdown fails is test_a_slower_time_per_token_is_regressed_against_the_baseline's
    pytester.path.joinpath("test_tokens.py").write_text(
        pytester.path.joinpath("test_tokens.py").read_text() + BUDGET_TEST)
    result = pytester.runpytest_subprocess(
        *args, f"--neuronperf-html={html}", f"--junitxml={pytester.path / 'junit.xml'}",
        "--neuronperf-tolerance=tokens:off,ttft:off,tpot:off,goodput:off")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*tokens /s*base*TTFT p99 ms*base*TPOT p99 ms*goodput /s*",
                                 "*bs=1 n=1 w=1 p=1 * [+-]*% * [+-]*% * [+-]*% *PASS"])
    result.stdout.fnmatch_lines(["*OVER_BUDGET tpot * > tpot_ms_p99=0.5* at bs=1 n=1 w=1 p=1*"])
    junit = (pytester.path / "junit.xml").read_text()
    assert "tpot_ms_p99" in junit and "output_tokens_per_s" in junit
    page = html.read_text()
    assert "test_tokens.py::test_tokens" in page and page.count("data:image/png;base64") >= 2


def test_paired_mode_catches_a_kv_cache_turned_off_and_passes_identical_code():
    from llm_models import WideLlama, WideLlamaWithoutCache

    # without its cache each of the 16 steps recomputes the 32-token prompt and what follows
    # (about 2x per token here); the tolerances are wide, so that a loaded machine's noise
    # cannot fail identical code while a 2x slowdown is still far beyond them
    prompt = [list(range(3, 35))]
    options = {"scenario": "generate", "output_tokens": 16, "n_models": 1,
               "workers_per_model": 1, "duration": 1, "warmup": 0, "verbosity": 0,
               "tolerance": "tpot:25%,ttft:100%,tokens:25%"}
    [slower] = npf.compare(WideLlama, WideLlamaWithoutCache, prompt, **options)
    paired = slower["paired"]
    assert paired["verdict"] == "REGRESSED", paired
    assert paired["delta"]["tpot_ms_p99"] > 0.25 and paired["delta"]["output_tokens_per_s"] < 0
    assert all(len(launch["values"]["head"]["tpot_ms_p99"]) == paired["rounds"]
               for launch in paired["launches"])
    [same] = npf.compare(WideLlama, WideLlama, prompt, **options)
    assert not Verdict(same["paired"]["verdict"]).failing(), same["paired"]


def test_markdown_and_junit_properties_carry_the_token_metrics():
    from pytest_neuronperf.reporting.markdown import format_markdown
    from pytest_neuronperf.reporting.tables import headline_properties

    report = {**generate_report(tpot=5.0, tokens=200.0), "verdict": "NEW", "test": "t.py::t"}
    page = format_markdown([report])
    assert "tokens /s" in page and "TPOT p99 ms" in page and "throughput /s" not in page
    names = {name for name, _ in headline_properties(report)}
    assert "neuronperf[bs=1 n=1 w=1 p=1].tpot_ms_p99" in names
    assert "neuronperf[bs=1 n=1 w=1 p=1].throughput" not in names


def test_a_copy_in_this_process_generates_too():
    [report] = npf.benchmark(Sleeper, [[1]], scenario="generate", output_tokens=4,
                             multiprocess=False, **QUICK)
    assert report["status"] == "ok" and report["output_tokens_avg"] == 4


def test_tune_finds_the_configuration_with_the_most_goodput():
    tuning = npf.tune(Sleeper, [[1]], scenario="generate", output_tokens=4, slo_ttft_ms=1000,
                      workers_per_model=[1, 2], **{k: v for k, v in QUICK.items()
                                                    if k != "workers_per_model"})
    assert [r["status"] for r in tuning.reports] == ["ok", "ok"]
    assert tuning.best is not None and tuning.best["goodput"] == max(
        r["goodput"] for r in tuning.reports)
