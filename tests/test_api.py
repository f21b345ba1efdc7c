"""NeuronPerf's documented API as its users call it: every benchmark/compile argument, datasets,
casts, instances, dynamic batching, resources, cost, evaluate and the model index tools.

Durations are short and nothing here asserts a speed: only behaviour.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from api_models import (
    Marked,
    OnlyBatchTwo,
    ReportsPrecision,
    Small,
    Threshold,
    WherePid,
    label_cast,
    pairs_loader,
    record_env_setup,
    record_setup,
    threshold_data,
)
from doc_blocks import stated
from engine_models import Noop
from torch_models import TinyMLP

import pytest_neuronperf as npf
from pytest_neuronperf.evaluation import aggregate, create, list_metrics, metric_names
from pytest_neuronperf.protocol.specs import ModelReferenceError

QUICK = {"duration": 0.3, "warmup": 0.05, "verbosity": 0, "n_models": 1, "workers_per_model": 1}
X = torch.rand(1, 4)


def bench(model, inputs=X, **kwargs):  # type: ignore[no-untyped-def]
    """``npf.torch.benchmark`` with the quick settings of these tests."""
    return npf.torch.benchmark(model, inputs, **{**QUICK, **kwargs})


# --- casts -------------------------------------------------------------------------------------


def test_cast_modes_are_a_grid_dimension_that_really_casts(pid_dir: Path) -> None:
    reports = bench(ReportsPrecision, cast_modes=["fp32", "fp16", "bf16", "mixed"],
                    setup_fn=label_cast)
    assert [(r["status"], r["cast_mode"]) for r in reports] == [
        ("ok", "fp32"), ("ok", "fp16"), ("ok", "bf16"), ("ok", "mixed")]
    from pytest_neuronperf.reports import config_key, config_label

    assert config_label(reports[0]) == "bs=1 n=1 w=1 p=1"  # fp32 keeps its old name
    assert config_label(reports[2]).endswith("cast=bf16")
    assert config_key(reports[2]).endswith(",cast=bf16")
    seen = {cast: json.loads((pid_dir / f"precision-{cast}.json").read_text())
            for cast in ("fp32", "fp16", "bf16", "mixed")}
    # fp16/bf16 convert the weights and the inputs; mixed keeps both and runs under autocast,
    # bfloat16 on CPU (docs/neuronperf-api.md, "Casts")
    assert {cast: (s["weight"], s["input"], s["autocast"]) for cast, s in seen.items()} == {
        "fp32": ("torch.float32", "torch.float32", False),
        "fp16": ("torch.float16", "torch.float16", False),
        "bf16": ("torch.bfloat16", "torch.bfloat16", False),
        "mixed": ("torch.float32", "torch.float32", True)}
    [on_cpu] = stated("neuronperf-api.md", r"`mixed`: (\w+) on CPU")
    assert seen["mixed"]["autocast_dtype"] == f"torch.{on_cpu}"


def test_unknown_cast_and_casts_that_cannot_apply_are_refused() -> None:
    with pytest.raises(ValueError, match="cast_modes must be among"):
        bench(Small, cast_modes="int8")
    with pytest.raises(ValueError, match="python framework has no notion of precision"):
        npf.cpu.benchmark(pairs_loader, np.zeros((1, 4)), cast_modes="bf16", framework="python")


def test_a_cast_that_loses_accuracy_shows_in_evaluate() -> None:
    data = threshold_data()
    [exact] = npf.torch.evaluate(Threshold, data, metrics=["accuracy", "f1"], batch_sizes=8)
    [lossy] = npf.torch.evaluate(Threshold, data, metrics="accuracy", batch_sizes=8,
                                 cast_modes="bf16")
    assert exact["status"] == "ok" and exact["accuracy"] == 1.0 and exact["f1"] == 1.0
    assert lossy["cast_mode"] == "bf16" and lossy["accuracy"] < 0.9
    assert exact["total_infs"] == 64  # one pass over the data


# --- per-copy hooks, process modes ---------------------------------------------------------------


def test_env_setup_fn_runs_before_load_and_setup_fn_after(pid_dir: Path) -> None:
    [report] = bench(Small, env_setup_fn=record_env_setup, setup_fn=record_setup,
                     cast_modes="bf16")
    assert report["status"] == "ok", report["error"]
    env = json.loads((pid_dir / "env-0.json").read_text())
    setup = json.loads((pid_dir / "setup-0.json").read_text())
    assert env["id"] == 0 and env["config"]["batch_size"] == 1
    assert env["config"]["cast_mode"] == "bf16" and env["config"]["multiprocess"] is True
    assert setup == {"id": 0, "cast_mode": "bf16", "model": "Small", "env_seen": "yes"}


def test_multiprocess_false_runs_in_this_process(pid_dir: Path) -> None:
    [report] = bench(WherePid, multiprocess=False, preprocess_fn=lambda x: x * 2)
    assert report["status"] == "ok", report["error"]
    assert [p.name for p in pid_dir.iterdir()] == [f"{os.getpid()}.pid"]


def test_multiinterpreter_starts_a_fresh_interpreter_per_copy(pid_dir: Path) -> None:
    [report] = bench(WherePid, multiinterpreter=True, duration=0.2)
    assert report["status"] == "ok", report["error"]
    [pid_file] = pid_dir.iterdir()
    assert int(pid_file.read_text()) != os.getpid()


def test_device_type_gpu_means_cuda() -> None:
    from pytest_neuronperf.engine.planning import DEVICE_ALIASES

    assert DEVICE_ALIASES["gpu"] == "cuda"
    if not torch.cuda.is_available():
        with pytest.raises((ValueError, ImportError), match="(?i)cuda"):
            bench(Small, device_type="gpu")


# --- resources, cost, names, timers --------------------------------------------------------------


def test_every_report_has_cpu_and_memory_and_cost_when_priced() -> None:
    [report] = bench(Small, n_models=1, stats_interval=0.05, cost_per_hour=3.6,
                     model_name="MyFancyModel")
    assert report["model_name"] == "MyFancyModel"
    assert report["cpu_percent_avg"] > 0 and report["memory_mb_peak"] > 10
    assert report["memory_mb_peak_per_copy"] == [report["memory_mb_peak"]]
    expected = 3.6 / 3600 / report["throughput_avg"] * 1e6
    assert report["cost_per_1m_inf"] == pytest.approx(expected)
    with pytest.raises(ValueError, match="stats_interval"):
        bench(Small, stats_interval=0)


def test_return_timers_gives_results_get_reports_turns_into_the_same_reports() -> None:
    results = bench(Small, return_timers=True, batch_sizes=[1, 2])
    assert all(isinstance(r, tuple) and len(r) == 2 for r in results)
    reports = npf.get_reports(results)
    [plain] = bench(Small)  # what benchmark returns without return_timers
    assert [(r["status"], r["batch_size"]) for r in reports] == [("ok", 1), ("ok", 2)]
    for report, (_, raw) in zip(reports, results, strict=True):
        assert set(report) == set(plain), set(report) ^ set(plain)
        # the figures are the timers': calls that ended inside the window, their latencies
        window_end = raw["start_ns"] + raw["measured_s"] * 1e9
        ends = [end for copy in raw["copies"] for thread in copy["end_ns"] for end in thread]
        inside = sum(end <= window_end for end in ends)
        assert 0 < inside < len(ends)  # each driver thread's last call ends after the window
        assert report["total_infs"] == inside * report["batch_size"]
        latencies = [ns for copy in raw["copies"] for thread in copy["latency_ns"]
                     for ns in thread]
        assert report["latency_ms_p100"] <= max(latencies) / 1e6
    with pytest.raises(TypeError, match="return_timers"):
        npf.get_reports([1, 2])


# --- NeuronPerf's positional order ---------------------------------------------------------------

API_PAGE = Path(__file__).resolve().parent.parent / "docs" / "neuronperf-api.md"


def documented_order(call: str) -> list[str]:
    """The argument names docs/neuronperf-api.md lists, in order, for ``benchmark``/``compile``."""
    found = re.search(rf"`{call}` takes[^`]*`([^`]+)`", API_PAGE.read_text())
    assert found is not None, f"docs/neuronperf-api.md no longer lists {call}'s arguments"
    return [name.strip() for name in found.group(1).split(",")]


def test_benchmark_takes_neuronperfs_arguments_positionally(pid_dir: Path) -> None:
    values = {"model": Small, "inputs": X, "batch_sizes": [2], "duration": 0.3, "n_models": 1,
              "pipeline_sizes": 1, "cast_modes": "bf16", "workers_per_model": 2,
              "env_setup_fn": record_env_setup, "setup_fn": record_setup,
              "preprocess_fn": None, "postprocess_fn": None, "dataset_loader_fn": None,
              "verbosity": 0, "multiprocess": True, "multiinterpreter": False,
              "return_timers": False, "stats_interval": 0.05, "device_type": "cpu",
              "cost_per_hour": 3.6, "model_name": "Positional"}
    order = documented_order("benchmark")
    assert sorted(order) == sorted(values)
    [report] = npf.torch.benchmark(*[values[name] for name in order], warmup=0.05)
    assert report["status"] == "ok", report["error"]
    assert (report["batch_size"], report["duration"], report["n_models"],
            report["pipeline_size"], report["cast_mode"], report["workers_per_model"],
            report["device_type"], report["model_name"]) == (
        2, 0.3, 1, 1, "bf16", 2, "cpu", "Positional")
    assert report["cost_per_1m_inf"] == pytest.approx(3.6 / 3600 / report["throughput_avg"] * 1e6)
    assert json.loads((pid_dir / "setup-0.json").read_text())["env_seen"] == "yes"


def test_compile_takes_neuronperfs_arguments_positionally(tmp_path: Path) -> None:
    values = {"model": TinyMLP, "inputs": torch.rand(1, 64), "batch_sizes": [1, 2],
              "pipeline_sizes": 1, "performance_levels": None, "models_dir": tmp_path / "models",
              "filename": "positional.json", "compiler_args": None, "verbosity": 0,
              "model_name": "positional"}
    order = documented_order("compile")
    assert sorted(order) == sorted(values)
    index = Path(npf.torch.compile(*[values[name] for name in order]))
    assert index.name == "positional.json" and index.parent == tmp_path / "models"
    data = json.loads(index.read_text())
    assert data["model_name"] == "positional"
    assert [(c["batch_size"], c["status"]) for c in data["model_configs"]] == [(1, "ok"),
                                                                               (2, "ok")]


# --- datasets ------------------------------------------------------------------------------------


def test_a_dataset_runs_once_per_copy_without_loop_dataset() -> None:
    reports = bench(Small, threshold_data(40), batch_sizes=[8], n_models=[1, 2],
                    loop_dataset=False, preprocess_fn=lambda b: b[0].repeat(1, 4))
    assert [r["status"] for r in reports] == ["ok", "ok"]
    assert [r["total_infs"] for r in reports] == [40, 80]  # each copy ran the whole data


def test_loop_dataset_repeats_the_data_for_the_duration() -> None:
    [report] = bench(Small, threshold_data(16), batch_sizes=4, loop_dataset=True,
                     preprocess_fn=lambda b: b[0].repeat(1, 4))
    assert report["status"] == "ok" and report["total_infs"] > 16


def test_any_iterable_and_a_dataset_loader_fn() -> None:
    samples = (torch.rand(4) for _ in range(12))  # a generator: materialised for the copies
    [report] = bench(Small, samples, batch_sizes=3, loop_dataset=False)
    assert report["status"] == "ok" and report["total_infs"] == 12
    data = [(torch.rand(4), 0) for _ in range(10)]
    [report] = bench(Small, data, batch_sizes=5, loop_dataset=False,
                     dataset_loader_fn=pairs_loader)
    assert report["status"] == "ok" and report["total_infs"] == 10
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.rand(6, 4)))
    [report] = bench(Small, loader, batch_sizes=2, loop_dataset=False,
                     preprocess_fn=lambda b: b[0])  # a DataLoader: its dataset, re-batched
    assert report["status"] == "ok" and report["total_infs"] == 6


def test_incomplete_batches_are_dropped() -> None:
    ten = torch.utils.data.TensorDataset(torch.rand(10, 4))
    [report] = bench(Small, ten, batch_sizes=4, loop_dataset=False, preprocess_fn=lambda b: b[0])
    assert report["status"] == "ok" and report["total_infs"] == 8  # two batches of 4; 2 left
    samples = (np.zeros(4, np.float32) for _ in range(10))  # NumPy stacking, not a DataLoader
    [report] = npf.cpu.benchmark(Noop, samples, batch_sizes=3, loop_dataset=False,
                                 framework="python", **QUICK)
    assert report["status"] == "ok" and report["total_infs"] == 9


def test_eval_metrics_need_a_dataset_and_known_names() -> None:
    with pytest.raises(ValueError, match="eval_metrics needs labelled data"):
        bench(Small, eval_metrics="accuracy")
    with pytest.raises(ValueError, match="unknown eval metric 'bleu'"):
        bench(Small, threshold_data(), eval_metrics=["bleu"])


def test_eval_metrics_during_a_timed_benchmark_cover_every_copy() -> None:
    [report] = bench(Threshold, threshold_data(32), batch_sizes=4, n_models=2,
                     loop_dataset=False, eval_metrics=["accuracy", "precision", "recall"])
    assert report["status"] == "ok", report["error"]
    assert report["accuracy"] == report["precision"] == report["recall"] == 1.0
    assert report["total_infs"] == 64


# --- metrics -------------------------------------------------------------------------------------


def test_metric_values_on_known_outputs() -> None:
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 2.0, 1.0], [0.0, 1.0, 2.0], [2.0, 0.0, 1.0]])
    target = np.array([0, 1, 1, 2])  # right, right, wrong (2 for 1), wrong (0 for 2)

    def value(name: str) -> float:
        metric = create(name)
        metric.update(logits, target)
        return aggregate(name, [metric.state()])

    assert value("accuracy") == 0.5
    assert value("top1") == 0.5
    assert value("top2") == 1.0  # both misses have the target second best
    assert value("precision") == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert value("recall") == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    binary = create("f1")
    binary.update(np.array([0.9, 0.2, 0.7, 0.1]), np.array([1, 0, 0, 1]))
    assert aggregate("f1", [binary.state()]) == pytest.approx(2 / (2 + 1 + 1))


def test_list_metrics_names_the_documented_ones() -> None:
    names = [name for name, _ in list_metrics()]
    assert {"accuracy", "precision", "recall", "f1", "topk"} <= set(names)
    assert "Description" in repr(list_metrics())
    assert metric_names(["Accuracy", "F1Score", "Recall", "top3"]) == (
        "accuracy", "f1", "recall", "top3")


# --- instances -----------------------------------------------------------------------------------


def trained() -> Marked:
    model = Marked()
    model.mark.fill_(7.0)
    return model


def test_an_instance_with_trained_weights_reaches_every_copy() -> None:
    [report] = bench(trained(), n_models=2)
    assert report["status"] == "ok", report["error"]
    [untrained] = bench(Marked)  # the class builds an untrained copy: its check fails
    assert untrained["status"] == "error" and "did not travel" in untrained["error"]


def test_an_instance_of_an_unimportable_class_is_refused() -> None:
    class Local(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    with pytest.raises(ModelReferenceError, match="inside a function"):
        bench(Local())


def test_compile_an_instance_and_benchmark_the_index(tmp_path: Path) -> None:
    index = npf.torch.compile(trained(), X, batch_sizes=[1, 2], models_dir=tmp_path,
                              model_name="marked", verbosity=0)
    data = json.loads(Path(index).read_text())
    assert data["model_name"] == "marked"
    assert [c["status"] for c in data["model_configs"]] == ["ok", "ok"]
    assert [r["status"] for r in bench(index)] == ["ok", "ok"]


# --- compile: casts and performance levels -------------------------------------------------------


def test_compile_cast_modes_record_the_cast_and_benchmark_filters_them(tmp_path: Path) -> None:
    index = npf.torch.compile(TinyMLP, torch.rand(1, 64), cast_modes=["fp32", "bf16"],
                              models_dir=tmp_path, verbosity=0)
    entries = json.loads(Path(index).read_text())["model_configs"]
    assert [(e["cast_mode"], e["status"]) for e in entries] == [("fp32", "ok"), ("bf16", "ok")]
    reports = bench(index, torch.rand(1, 64), cast_modes="bf16")
    assert [(r["status"], r["cast_mode"]) for r in reports] == [("ok", "bf16")]


def test_performance_levels_are_refused_off_neuron(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="performance_levels are Neuron compiler"):
        npf.torch.compile(TinyMLP, torch.rand(1, 64), performance_levels=[0, 3],
                          models_dir=tmp_path, verbosity=0)


# --- dynamic batching ----------------------------------------------------------------------------


def test_dynamic_batching_splits_user_batches_to_the_compiled_size(tmp_path: Path) -> None:
    # the compiled model runs batches of 2 only: batches of 4 and 6 run if they are split
    index = npf.torch.compile(OnlyBatchTwo, torch.rand(1, 4), batch_sizes=2, models_dir=tmp_path,
                              verbosity=0)
    reports = bench(index, torch.rand(1, 4), batch_sizes=[4, 6], dynamic_batch_size=True)
    assert [(r["status"], r["batch_size"]) for r in reports] == [("ok", 4), ("ok", 6)], [
        r["error"] for r in reports]
    assert reports[0]["total_infs"] % 4 == 0 and reports[1]["total_infs"] % 6 == 0
    with pytest.raises(ModelReferenceError, match=r"batch sizes \[3\] are not multiples"):
        bench(index, torch.rand(1, 4), batch_sizes=[3], dynamic_batch_size=True)
    with pytest.raises(ValueError, match="only a model index records"):
        bench(TinyMLP, torch.rand(1, 64), batch_sizes=[4], dynamic_batch_size=True)


# --- model index tools ---------------------------------------------------------------------------


def test_model_index_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_neuronperf import model_index

    monkeypatch.chdir(tmp_path)
    (tmp_path / "a").mkdir()
    for name in ("m1.pt", "m2.pt"):
        (tmp_path / "a" / name).write_bytes(b"artifact")
    one = model_index.create("a/m1.pt", batch_size=1)
    two = model_index.create("a/m2.pt", batch_size=2, pipeline_size=2)
    both = model_index.append(one, two, one)
    assert [c["batch_size"] for c in both["model_configs"]] == [1, 2]  # duplicate dropped
    saved = model_index.save(both, "idx.json", root_dir="a")
    stored = json.loads(Path(saved).read_text())
    assert [c["filename"] for c in stored["model_configs"]] == ["m1.pt", "m2.pt"]  # relative
    loaded = model_index.load(saved)
    assert Path(loaded["model_configs"][0]["filename"]).is_absolute()
    assert [c["batch_size"] for c in model_index.filter(saved, batch_sizes=[2])[
        "model_configs"]] == [2]

    copied = model_index.copy(saved, "b/idx.json", "b")
    assert (tmp_path / "b" / "m1.pt").exists() and (tmp_path / "a" / "m1.pt").exists()
    moved = model_index.move(copied, "c/idx.json", "c")
    assert (tmp_path / "c" / "m2.pt").exists() and not (tmp_path / "b" / "m2.pt").exists()
    assert not Path(copied).exists()
    model_index.delete(moved)
    assert not (tmp_path / "c" / "m1.pt").exists() and not Path(moved).exists()


def test_an_index_filename_that_escapes_its_folder_is_refused(tmp_path: Path) -> None:
    from pytest_neuronperf import model_index

    (tmp_path / "secret.pt").write_bytes(b"keep me")
    (tmp_path / "idx").mkdir()
    path = tmp_path / "idx" / "index.json"
    path.write_text(json.dumps({
        "format": "pytest-neuronperf-index", "version": 1, "model_name": "m",
        "model_configs": [{"filename": "../secret.pt", "batch_size": 1, "pipeline_size": 1,
                           "status": "ok", "compiler": "torchscript"}]}))
    for call in (model_index.load, model_index.delete):
        with pytest.raises(ModelReferenceError, match="outside the index's folder"):
            call(path)
    with pytest.raises(ModelReferenceError, match="outside the index's folder"):
        bench(str(path))
    assert (tmp_path / "secret.pt").exists()


# --- TensorFlow --------------------------------------------------------------------------------


def test_keras_casts_use_the_mixed_precision_policy_and_instances_travel() -> None:
    pytest.importorskip("tensorflow")
    from tf_models import small_keras_model

    x = np.zeros((1, 32), np.float32)
    reports = npf.tensorflow.benchmark(small_keras_model, x, cast_modes=["fp32", "mixed"],
                                       **QUICK)
    assert [(r["status"], r["cast_mode"]) for r in reports] == [("ok", "fp32"), ("ok", "mixed")]
    [report] = npf.tensorflow.benchmark(small_keras_model(), x, **QUICK)  # a built instance
    assert report["status"] == "ok", report["error"]
