"""Hostile inputs from issue 21: each is refused in one sentence naming what is wrong (before any
process starts where the input shows it), or now behaves correctly. Base isolation (case 1) is
in ``test_base_isolation.py``."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import pytest_neuronperf as npf
from pytest_neuronperf import model_index
from pytest_neuronperf.cli import main as cli
from pytest_neuronperf.engine import limits

pytest_plugins = ["pytester"]


class Echo:
    """Returns its input (top level: model processes import it by name)."""

    def __call__(self, x: Any) -> Any:
        return x


class Logits:
    """Returns its input as the logits (for accuracy on known outputs)."""

    def __call__(self, x: Any) -> Any:
        return x


def git(directory: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
                   cwd=directory, check=True, capture_output=True)


# -- 2 and 7: the server scenario is not paired ------------------------------------------------

def test_compare_refuses_the_server_scenario_before_anything_starts(cores: list[int]) -> None:
    for rate in (100.0, "max"):
        with pytest.raises(ValueError, match=r"compare\(\) measures closed-loop runs only: "
                                             r"scenario='server' \(target_qps="):
            npf.compare(Echo, Echo, np.ones((1, 4)), framework="python", scenario="server",
                        target_qps=rate, p99_ms=50, duration=0.3, cores=cores[:1])


SERVER_TESTS = textwrap.dedent("""
    import numpy as np
    import pytest


    class Echo:
        def __call__(self, x):
            return x


    @pytest.mark.neuronperf(n_models=1, workers_per_model=1, duration=0.5, scenario="server",
                            target_qps="max", p99_ms=50)
    def test_max(neuronperf):
        neuronperf.benchmark(Echo, np.ones((1, 4)), framework="python")


    @pytest.mark.neuronperf(n_models=1, workers_per_model=1, duration=0.3, scenario="server",
                            target_qps=50)
    def test_fixed(neuronperf):
        neuronperf.benchmark(Echo, np.ones((1, 4)), framework="python")
""")


def test_against_measures_the_server_scenario_on_the_head_alone(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_server=SERVER_TESTS)
    git(pytester.path, "init", "-q")
    git(pytester.path, "add", ".")
    git(pytester.path, "commit", "-qm", "base")
    result = pytester.runpytest_subprocess("--neuronperf-against=HEAD",
                                           "--neuronperf-json=out.json")
    outcomes = result.parseoutcomes()  # no protocol error, no closed loop in disguise
    assert "error" not in outcomes and outcomes.get("passed", 0) >= 1, outcomes
    # (test_max may miss its p99 budget on a loaded machine: OVER_BUDGET is a verdict, not a
    # fault; what matters is that the max search ran and was not paired)
    result.stdout.fnmatch_lines(["*not compared with their base: not paired: scenario='server' "
                                 "is measured on the head alone*"])
    reports = {r["test"].split("::")[-1]: r
               for r in json.loads((pytester.path / "out.json").read_text())["reports"]}
    assert reports["test_max"]["status"] == "ok" and reports["test_max"]["max_qps"] > 0
    assert reports["test_max"]["paired"]["base_status"] == "unpaired"
    assert reports["test_fixed"]["achieved_qps"] > 0
    assert reports["test_fixed"]["verdict"] == "NEW"


# -- 3: a user's file is never replaced by a model index ---------------------------------------

def test_compile_and_save_never_replace_a_file_that_is_not_a_model_index(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    from torch_models import TinyMLP

    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("my notes")
    (tmp_path / "settings.json").write_text('{"theme": "dark"}')
    (tmp_path / "models").mkdir()
    for filename, models_dir, match in (
            ("notes.txt", None, "must end in .json"),
            ("settings.json", None, "not a pytest-neuronperf model index.*would be replaced"),
            ("../settings.json", "models", "not a pytest-neuronperf model index")):
        with pytest.raises(ValueError, match=match):
            npf.compile(TinyMLP, torch.rand(1, 64), filename=filename, models_dir=models_dir)
    index = {"format": model_index.INDEX_FORMAT, "version": model_index.INDEX_VERSION,
             "model_name": "echo", "model_configs": []}
    with pytest.raises(ValueError, match="settings.json.*would be replaced"):
        model_index.save(index, filename="../settings.json", root_dir=tmp_path / "models")
    assert (tmp_path / "notes.txt").read_text() == "my notes"
    assert (tmp_path / "settings.json").read_text() == '{"theme": "dark"}'
    saved = model_index.save(index, filename="index.json")  # a free path, then an index: fine
    assert model_index.save(index, filename="index.json") == saved


# -- 5 and 6: sizes bounded by the memory available -------------------------------------------

def endless_gigabytes() -> Any:
    """An endless generator of samples that each say they hold 1 GiB (broadcast views: they
    hold a few bytes), so the bound is reached without using the memory."""
    one = np.zeros(1, np.float32)
    while True:
        yield (np.broadcast_to(one, (2**28,)), 0)


def test_an_endless_dataset_is_refused_at_the_memory_budget(cores: list[int]) -> None:
    budget = limits.memory_budget()
    with pytest.raises(ValueError, match=r"inputs yielded \d+ samples holding more than .* "
                                         r"\(half the memory available now\) and had not ended"):
        npf.benchmark(Echo, endless_gigabytes(), framework="python", duration=0.2,
                      cores=cores[:1])
    assert budget > 0


def test_rates_and_rounds_that_cannot_fit_are_refused_before_anything_starts(
        cores: list[int]) -> None:
    # the arrivals of 1e9 queries/s for 3 s exceed any machine's budget: 1e9 * 5 s * 48 bytes
    assert 1e9 * 5 * 48 > limits.memory_budget()
    with pytest.raises(ValueError, match=r"target_qps=1e\+09 for duration=3 s means "
                                         r"pre-generating about .* arrivals .* more than half "
                                         r"the memory available now"):
        npf.benchmark(Echo, np.ones((1, 4)), framework="python", scenario="server",
                      target_qps=1e9, duration=3, cores=cores[:1])
    # refused by name before anything starts (the launch-pair schedule bounds it per pair too)
    with pytest.raises(ValueError, match=r"paired_rounds(=1000000000 is too many| must be)"):
        npf.compare(Echo, Echo, np.ones((1, 4)), framework="python", duration=3,
                    paired_rounds=10**9, cores=cores[:1])


def test_a_paired_run_refuses_copies_in_this_process(cores: list[int]) -> None:
    with pytest.raises(ValueError, match="paired runs need model processes: "
                                         "multiprocess=False"):
        npf.compare(Echo, Echo, np.ones((1, 4)), framework="python", duration=0.2,
                    multiprocess=False, cores=cores[:1])


# -- 8 and 9: start-up refusals ----------------------------------------------------------------

def test_an_unusable_cache_and_an_unknown_paired_metric_are_usage_errors(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_perf="def test_nothing():\n    pass\n")
    git(pytester.path, "init", "-q")
    git(pytester.path, "add", ".")
    git(pytester.path, "commit", "-qm", "base")
    (pytester.path / ".neuronperf-cache").write_text("not a directory")
    blocked = pytester.runpytest_subprocess("--neuronperf-against=HEAD")
    assert blocked.ret == pytest.ExitCode.USAGE_ERROR
    blocked.stderr.fnmatch_lines(["*--neuronperf-against=HEAD: *.neuronperf-cache is a file, "
                                  "not a directory; * remove or rename that file*"])
    assert "Traceback" not in blocked.stderr.str()
    memory = pytester.runpytest_subprocess("--neuronperf-paired-tolerance=memory:5%")
    assert memory.ret == pytest.ExitCode.USAGE_ERROR
    memory.stderr.fnmatch_lines(["*--neuronperf-paired-tolerance / neuronperf_paired_tolerance: "
                                 "'memory' is not compared by the paired gate, which compares "
                                 "throughput, p50, p99*"])
    with pytest.raises(ValueError, match="'memory' is not compared by the paired gate"):
        npf.compare(Echo, Echo, np.ones((1, 4)), framework="python", tolerance="memory:5%")


# -- 10: the compare command's exit codes ------------------------------------------------------

def report(**changes: Any) -> dict[str, Any]:
    """One measured report as --neuronperf-json writes it (the keys compare reads)."""
    base = {"test": "test_m.py::test_m", "model_name": "M", "batch_size": 1, "n_models": 1,
            "workers_per_model": 1, "pipeline_size": 1, "status": "ok", "duration": 1.0,
            "throughput_avg": 100.0, "latency_ms_p50": 1.0, "latency_ms_p99": 2.0,
            "windows": {"throughput": [100.0] * 10, "latency_ms_p50": [1.0] * 10,
                        "latency_ms_p99": [2.0] * 10}}
    return {**base, **changes}


def write(path: Path, reports: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"format": "pytest-neuronperf-reports", "version": 1,
                                "reports": reports}))
    return path


@pytest.mark.parametrize(("damage", "says"), [
    ("non-numeric windows", "windows['throughput'] is not a list of numbers"),
    ("non-numeric metric", "throughput_avg is 'fast', not a number"),
    ("nested brackets", "nests brackets too deeply to read"),
    ("binary junk", "is not a text file (byte 0 is not UTF-8)"),
    ("every metric lost", "carries none of the gated metrics"),
    ("nothing in common", "so nothing was compared"),
    ("no reports", "has no reports, so nothing was compared"),
])
def test_compare_command_exits_2_on_bad_or_incomparable_input(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str, says: str) -> None:
    old = write(tmp_path / "old.json", [report()])
    new = tmp_path / "new.json"
    if damage == "non-numeric windows":
        write(new, [report(windows={"throughput": ["a"] * 10})])
    elif damage == "non-numeric metric":
        write(new, [report(throughput_avg="fast")])
    elif damage == "nested brackets":
        new.write_text("[" * 100_000 + "]" * 100_000)
    elif damage == "binary junk":
        new.write_bytes(bytes([0xFF, 0xFE]) + bytes(range(256)) * 4096)
    elif damage == "every metric lost":
        write(new, [{k: v for k, v in report().items()
                     if k not in ("throughput_avg", "latency_ms_p50", "latency_ms_p99")}])
    elif damage == "no reports":
        write(new, [])
    else:
        write(new, [report(test="test_other.py::test_other")])
    assert cli(["compare", str(old), str(new)]) == 2
    err = capsys.readouterr().err
    assert says in err and "new.json" in err and "Traceback" not in err


def test_compare_command_still_exits_0_and_1_for_what_it_compared(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = write(tmp_path / "old.json", [report()])
    same = write(tmp_path / "same.json", [report()])
    slower = write(tmp_path / "slower.json", [report(
        throughput_avg=50.0, windows={"throughput": [50.0] * 10, "latency_ms_p50": [2.0] * 10,
                                      "latency_ms_p99": [4.0] * 10},
        latency_ms_p50=2.0, latency_ms_p99=4.0)])
    assert cli(["compare", str(old), str(same)]) == 0
    assert cli(["compare", str(old), str(slower)]) == 1
    capsys.readouterr()


# -- 11 and one-hot labels: accuracy -----------------------------------------------------------

def test_evaluate_reads_a_tuple_of_arrays_as_columns_and_refuses_other_data() -> None:
    x = np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0, 1, 2, 3]]  # logits: class i for row i
    y = np.array([0, 1, 2, 3, 0, 1, 2, 0])  # the last one is wrong
    [result] = npf.evaluate(Logits, (x, y), framework="python", batch_sizes=4)
    assert result["status"] == "ok", result.get("error")
    assert result["accuracy"] == pytest.approx(7 / 8)
    with pytest.raises(ValueError, match=r"evaluate: dataset is a tuple of 2 items, read as "
                                         r"columns .* their lengths differ"):
        npf.evaluate(Logits, (x, y[:3]), framework="python")
    with pytest.raises(ValueError, match="evaluate needs labelled data, got a ndarray"):
        npf.evaluate(Logits, x, framework="python")


def test_one_hot_labels_give_per_sample_accuracy() -> None:
    # decided (docs/accuracy.md): one-hot targets are class indices, so 7 of 8 samples right
    # is 7/8, not the per-element 30/32 that comparing every entry gave
    x = np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0, 1, 2, 3]]
    one_hot = np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0, 1, 2, 0]]
    [result] = npf.evaluate(Logits, (x, one_hot), framework="python", batch_sizes=4)
    assert result["accuracy"] == pytest.approx(7 / 8)
