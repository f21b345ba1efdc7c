"""The benchmark engine as a library user drives it: reports, grid, inputs, faults, cleanup."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import alive
from engine_models import (
    Chatty,
    ChecksBatch,
    ExitsDuringCall,
    HangsOnCall,
    HangsOnLoad,
    Noop,
    RaisesOnCall,
    RaisesOnLoad,
    ReportsPlacement,
    Segfaults,
    Sleeper,
    Sum2,
    double,
    make_noop,
    shape_of,
)

import pytest_neuronperf as npf
from pytest_neuronperf.protocol.specs import ModelReferenceError

REQUIRED_KEYS = {
    "model_name", "model_filename", "device_type", "batch_size", "n_models",
    "workers_per_model", "pipeline_size", "duration", "total_infs", "throughput_avg",
    "throughput_peak", "latency_ms_p0", "latency_ms_p50", "latency_ms_p90", "latency_ms_p95",
    "latency_ms_p99", "latency_ms_p100", "latency_ms_avg", "load_avg_ms", "warmup_avg_ms",
    "status",
}
QUICK = {"duration": 0.3, "warmup": 0.05, "verbosity": 0}
X = np.zeros((1, 4), dtype=np.float32)


def bench(model, inputs=X, **kwargs):  # type: ignore[no-untyped-def]
    """benchmark with the quick settings of these tests."""
    return npf.cpu.benchmark(model, inputs, **{**QUICK, "n_models": 1,
                                               "workers_per_model": 1, **kwargs})


def test_report_has_every_neuronperf_key_and_consistent_figures():
    [report] = bench(Sleeper)
    assert REQUIRED_KEYS <= report.keys()
    assert report["status"] == "ok" and report["error"] is None
    assert report["model_name"] == "Sleeper"
    assert report["model_filename"] == "engine_models:Sleeper"
    assert report["device_type"] == "cpu"
    # throughput counts the work of calls cut by the window edges; total_infs whole calls only
    assert report["throughput_avg"] == pytest.approx(
        report["total_infs"] / report["duration"], rel=0.05)
    assert report["throughput_peak"] == max(report["windows"]["throughput"])  # the best window
    percentiles = [report[f"latency_ms_p{p}"] for p in (0, 50, 90, 95, 99, 100)]
    assert percentiles == sorted(percentiles)
    assert report["latency_ms_p50"] >= 2.0  # the model sleeps 2 ms: latency covers the call
    assert len(report["windows"]["throughput"]) == 10
    assert report["load_avg_ms"] >= 0 and report["warmup_avg_ms"] > 0


def test_configuration_grid_covers_every_combination(two_cores):
    reports = npf.cpu.benchmark(Noop, X, batch_sizes=[1, 3], n_models=[1, "max"],
                                workers_per_model=[1, 2], cores=two_cores, **QUICK)
    combos = [(r["batch_size"], r["n_models"], r["workers_per_model"]) for r in reports]
    assert combos == [(b, n, w) for b in (1, 3) for n in (1, 2) for w in (1, 2)]
    assert all(r["status"] == "ok" for r in reports)


def test_max_equals_one_is_deduplicated(cores):
    reports = bench(Noop, n_models=[1, "max"], cores=cores[:1])
    assert [r["n_models"] for r in reports] == [1]


def test_more_copies_than_cores_is_refused_before_starting(cores):
    with pytest.raises(ValueError, match="n_models=3 .* needs 3 cores, but only 1"):
        bench(Noop, n_models=3, cores=cores[:1])


def test_factory_and_tuple_inputs_and_batch_expansion(monkeypatch):
    assert bench(make_noop)[0]["model_name"] == "make_noop"
    pair = (np.zeros((1, 3)), np.ones((1, 3)))
    assert [r["status"] for r in bench(Sum2, pair, batch_sizes=[1, 4])] == ["ok", "ok"]
    monkeypatch.setenv("EXPECTED_BATCH", "5")
    assert bench(ChecksBatch, batch_sizes=5)[0]["status"] == "ok"


def test_one_input_per_batch_size():
    inputs = [np.zeros((2, 4)), np.zeros((6, 4))]
    reports = bench(Noop, inputs, batch_sizes=[2, 6])
    assert [r["batch_size"] for r in reports] == [2, 6]
    with pytest.raises(ValueError, match="list of 2 examples but there are 3 batch sizes"):
        bench(Noop, inputs, batch_sizes=[1, 2, 6])


def test_mismatched_leading_dimension_is_refused():
    with pytest.raises(ValueError, match="leading dimension 3.*batch size 2"):
        bench(Noop, np.zeros((3, 4)), batch_sizes=2)


class LocalToTests:
    """Defined at top level of the test module: importable, so accepted."""

    def __call__(self, x):  # type: ignore[no-untyped-def]
        return x


def test_models_a_worker_cannot_import_are_refused_with_advice():
    class Local:
        pass

    with pytest.raises(ModelReferenceError, match="lambda.*top level"):
        bench(lambda: Noop())
    with pytest.raises(ModelReferenceError, match="inside a function.*top level"):
        bench(Local)
    with pytest.raises(ModelReferenceError, match="inside a function.*top level"):
        bench(Local())  # an instance travels as a file, but its class must be importable
    assert bench(LocalToTests)[0]["status"] == "ok"


def test_instances_and_lambdas_travel_to_the_copies():
    """NeuronPerf users pass trained instances and ``preprocess_fn=lambda ...``: both work."""
    assert bench(Noop())[0]["status"] == "ok"
    assert bench(Noop, preprocess_fn=lambda x: x * 2)[0]["status"] == "ok"


def test_framework_must_be_spelled_out_when_nothing_tells():
    with pytest.raises(ValueError, match="framework='torch', 'tensorflow' or 'python'"):
        npf.benchmark(make_noop, X, **QUICK)


def test_preprocess_and_postprocess_are_inside_the_timed_call():
    [report] = bench(Noop, preprocess_fn=double, postprocess_fn=shape_of)
    assert report["status"] == "ok"


def test_a_failing_configuration_reports_error_and_the_others_still_run(monkeypatch):
    monkeypatch.setenv("EXPECTED_BATCH", "1")
    reports = bench(ChecksBatch, batch_sizes=[2, 1])
    assert [r["status"] for r in reports] == ["error", "ok"]
    assert "got batch 2, expected 1" in reports[0]["error"]
    assert reports[0]["throughput_avg"] is None


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (RaisesOnLoad, "weights are missing"),
        (RaisesOnCall, "shape mismatch inside RaisesOnCall"),
        (ExitsDuringCall, "exit code 7"),
        (Segfaults, "SIGSEGV"),
    ],
)
def test_worker_faults_become_error_reports(model, expected):
    [report] = bench(model)
    assert report["status"] == "error"
    assert expected in report["error"]


def test_crash_report_carries_the_stderr_tail():
    [report] = bench(ExitsDuringCall)
    assert "about to exit hard" in report["error"]
    [report] = bench(Segfaults)
    assert "Segmentation fault" in report["error"]


@pytest.mark.parametrize("model", [HangsOnLoad, HangsOnCall])
def test_hung_worker_is_killed_at_the_timeout(model, pid_dir):
    started = time.monotonic()
    [report] = bench(model, timeout=3)
    assert report["status"] == "error" and "timed out" in report["error"]
    assert time.monotonic() - started < 30
    pids = [int(p.name) for p in pid_dir.iterdir()]
    assert pids and not any(alive(pid) for pid in pids)


def test_model_output_never_reaches_the_parent(capfd):
    [report] = bench(Chatty)
    assert report["status"] == "ok"
    out, err = capfd.readouterr()
    assert "chatty model output" not in out + err


def test_each_copy_is_pinned_to_its_own_cores(tmp_path, monkeypatch, two_cores):
    monkeypatch.setenv("PLACEMENT_DIR", str(tmp_path))
    reports = bench(ReportsPlacement, n_models="max", cores=two_cores)
    assert reports[0]["status"] == "ok" and reports[0]["n_models"] == 2
    seen = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    assert sorted(tuple(s["affinity"]) for s in seen) == [(two_cores[0],), (two_cores[1],)]
    assert all(s["omp"] == "1" for s in seen)
    # a plain callable that uses torch is capped too (torch preloaded or imported by the model)
    assert all(s["torch_threads"] == 1 for s in seen)
    for path in tmp_path.glob("*.json"):
        path.unlink()
    reports = bench(ReportsPlacement, pipeline_sizes=2, n_models=1, cores=two_cores)
    [seen_one] = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    assert seen_one["affinity"] == sorted(two_cores) and seen_one["omp"] == "2"


def test_reports_round_trip_through_json_and_csv(tmp_path, capsys):
    reports = bench(Noop, batch_sizes=[1, 2])
    path = npf.write_json(reports, tmp_path / "r.json")
    assert npf.get_reports(path) == json.loads(json.dumps(reports))
    csv_path = Path(npf.write_csv(reports, tmp_path / "r.csv"))
    header = csv_path.read_text().splitlines()[0].split(",")
    assert REQUIRED_KEYS <= set(header) and "windows.throughput" in header
    assert "latency_sketch.ms" in header and not any("{" in cell for cell in header)
    npf.print_reports(reports)
    printed = capsys.readouterr().out
    assert "throughput_avg" in printed and "latency_ms_p99" in printed


def test_report_files_take_any_iterable_and_odd_values(tmp_path, capsys):
    reports = [{"batch_size": 1, "status": "ok", "throughput_avg": np.float64(2.5),
                "windows": {"latency_ms_p50": [1.0, float("nan")], "x": [float("inf")]}},
               {"batch_size": 2, "status": "error", "throughput_avg": None}]
    csv_path = Path(npf.write_csv(iter(reports), tmp_path / "r.csv"))
    rows = csv_path.read_text().splitlines()
    assert rows[0].split(",") == ["batch_size", "status", "throughput_avg",
                                  "windows.latency_ms_p50", "windows.x"]
    assert rows[1].split(",") == ["1", "ok", "2.5", "1.0;", ""]  # NaN and inf are empty
    json_path = npf.write_json((r for r in reports), tmp_path / "r.json")
    assert npf.get_reports(json_path)[0]["throughput_avg"] == 2.5
    with pytest.raises(TypeError, match="list of report dicts, not a dict"):
        npf.write_json({"a": 1}, tmp_path / "x.json")
    npf.print_reports(reports, cols="throughput_avg", sort_by="status")
    # the column it sorts by is shown too (first), so the order can be seen
    assert capsys.readouterr().out.splitlines()[0].split() == ["status", "throughput_avg"]
    npf.print_reports(reports, cols=["batch_size"], sort_by="throughput_avg", reverse=True)
    assert capsys.readouterr().out.split() == ["throughput_avg", "batch_size", "2.500", "1",
                                               "-", "2"]  # missing values stay last
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize(
    ("document", "message"),
    [({"format": "pytest-neuronperf-reports", "version": "2", "reports": []}, "not a number"),
     ({"format": "pytest-neuronperf-reports", "version": 1, "reports": None}, "no \"reports\""),
     ([1, 2], "not of report objects")],
)
def test_unreadable_report_file_is_refused(tmp_path, document, message):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match=message):
        npf.get_reports(path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"batch_sizes": 0}, "batch_sizes must be positive integers, got 0"),
     ({"batch_sizes": []}, "batch_sizes must not be empty"),
     ({"pipeline_sizes": 0}, "pipeline_sizes must be positive integers, got 0"),
     ({"n_models": []}, "n_models must not be empty"),
     ({"cores": [0, 0], "n_models": 2}, "lists a unit twice"),
     ({"framework": "tensorflow", "model": "torch"},
      "is a torch model but framework='tensorflow'")],
)
def test_odd_arguments_are_refused_not_reinterpreted(kwargs, message):
    model = Noop
    if kwargs.pop("model", None) == "torch":
        from torch_models import TinyMLP as model  # noqa: N813
    with pytest.raises(ValueError, match=message):
        bench(model, **kwargs)


def test_importing_the_package_imports_no_framework():
    code = ("import sys, pytest_neuronperf, pytest_neuronperf.plugin, pytest_neuronperf.torch;"
            "print([m for m in ('torch', 'tensorflow') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


INTERRUPT_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
import numpy as np
import pytest_neuronperf as npf
from engine_models import HangsOnCall

if __name__ == "__main__":
    npf.cpu.benchmark(HangsOnCall, np.zeros((1, 4)), n_models="max", workers_per_model=2,
                      duration=60, warmup=0.05, verbosity=0)
"""


def test_ctrl_c_leaves_no_process_behind(tmp_path, pid_dir):
    script = tmp_path / "interrupted.py"
    script.write_text(textwrap.dedent(INTERRUPT_SCRIPT.format(tests=str(Path(__file__).parent))))
    proc = subprocess.Popen([sys.executable, str(script)], env=os.environ.copy(),
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any(pid_dir.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert "KeyboardInterrupt" in err
    pids = [int(p.name) for p in pid_dir.iterdir()]
    assert pids
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in pids)
