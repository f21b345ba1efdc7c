"""Claims the README makes, each checked by a test that fails if the claim breaks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from claim_models import PRE_POST_SLEEP_S, Identity, ReportsThreadCaps, slow_postprocess
from claim_models import slow_preprocess as slow_pre
from doc_blocks import stated
from projects import SLEEP_MODEL, Code, Run, perf_test, reports_of

import pytest_neuronperf as npf
from pytest_neuronperf.devices.cpu import cgroup_cpu_limit
from pytest_neuronperf.engine.grid import default_workers
from pytest_neuronperf.protocol import messages

X = np.zeros((1, 4), dtype=np.float32)
QUICK = {"duration": 0.3, "warmup": 0.05, "verbosity": 0, "n_models": 1, "workers_per_model": 1}


def bench(model, **kwargs):  # type: ignore[no-untyped-def]
    return npf.cpu.benchmark(model, X, **{**QUICK, **kwargs})


# --- what is timed ------------------------------------------------------------------------------


def test_preprocess_and_postprocess_time_is_inside_the_latency() -> None:
    [plain] = bench(Identity)
    [wrapped] = bench(Identity, preprocess_fn=slow_pre, postprocess_fn=slow_postprocess)
    assert plain["status"] == wrapped["status"] == "ok"
    # a sleep never returns early: both steps' sleeps are a floor under every timed call
    floor_ms = 2 * PRE_POST_SLEEP_S * 1e3
    assert wrapped["latency_ms_p0"] >= floor_ms * 0.99
    assert plain["latency_ms_p50"] < floor_ms / 2


def test_auto_warmup_runs_until_stable_and_fixed_warmup_runs_its_time() -> None:
    [auto] = bench(Identity, warmup="auto")
    [fixed] = bench(Identity, warmup=0.4)
    assert auto["status"] == fixed["status"] == "ok"
    # "auto" compares at least the last few blocks before it may stop (docs/measuring.md)
    block_ms, blocks = stated("measuring.md", r"in (\d+) ms blocks until the call rates of the "
                                              r"last (\d+) blocks agree")
    assert auto["warmup_avg_ms"] >= float(block_ms) * float(blocks) * 0.99
    assert fixed["warmup_avg_ms"] >= 400 * 0.99


def test_return_timers_gives_every_calls_latency() -> None:
    results = bench(Identity, return_timers=True, batch_sizes=2)
    [(config, raw)] = results
    [copy] = raw["copies"]
    [per_thread] = copy["latency_ns"]
    [report] = npf.get_reports(results)  # the same report benchmark would have returned
    assert config["batch_size"] == report["batch_size"] == 2
    # total_infs counts the calls that finished inside the window, the timers every call made
    assert len(per_thread) * 2 >= report["total_infs"] > 0
    assert min(per_thread) / 1e6 == pytest.approx(report["latency_ms_p0"], rel=1e-6)


# --- defaults -------------------------------------------------------------------------------------


def test_workers_per_model_default_is_one_and_two() -> None:
    reports = npf.cpu.benchmark(Identity, X, duration=0.3, warmup=0.05, verbosity=0, n_models=1)
    assert [r["workers_per_model"] for r in reports] == [1, 2]
    assert default_workers(3) == [2]


# --- placement ----------------------------------------------------------------------------------


def test_every_thread_pool_is_capped_at_the_slice_size(tmp_path, monkeypatch, two_cores):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CAPS_DIR", str(tmp_path))
    [report] = bench(ReportsThreadCaps, n_models=1, pipeline_sizes=2, cores=two_cores)
    assert report["status"] == "ok"
    [seen] = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    assert seen["affinity"] == sorted(two_cores)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                 "TF_NUM_INTRAOP_THREADS"):
        assert seen["env"][name] == "2", name
    assert seen["torch_threads"] == 2


def test_cgroup_quota_trims_the_usable_cores(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_limit(tmp_path) == 1
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(tmp_path) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("300000")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert cgroup_cpu_limit(v1) == 3


# --- the pipe -----------------------------------------------------------------------------------


def test_a_message_of_another_protocol_version_is_refused() -> None:
    import multiprocessing

    left, right = multiprocessing.Pipe()
    left.send_bytes(json.dumps({"protocol": messages.PROTOCOL_VERSION + 1,
                                "kind": "ready"}).encode())
    with pytest.raises(messages.ProtocolError, match="protocol version"):
        messages.receive(right)
    left.send_bytes(b"\x00 not json")
    with pytest.raises(messages.ProtocolError, match="not a protocol message"):
        messages.receive(right)


# --- the plugin as a user runs it ---------------------------------------------------------------

PERF = SLEEP_MODEL + perf_test(batch_sizes=None, duration=0.4,
                              device=Code('os.environ.get("MARKER_DEVICE", "auto")'))


def test_header_names_device_cores_and_machine(pytester: pytest.Pytester, run: Run) -> None:
    pytester.makepyfile(test_perf=PERF)
    result = run("--collect-only")
    result.stdout.fnmatch_lines(["neuronperf: device cpu, cores *(*), machine * (*)*",
                                 "neuronperf: no baseline*"])


def test_forced_device_wins_over_the_marker(pytester: pytest.Pytester, run: Run,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(test_perf=PERF)
    monkeypatch.setenv("MARKER_DEVICE", "cuda")  # no GPU here: only the forced cpu can run
    result = run("--neuronperf-device=cpu", "--neuronperf-json=r.json")
    result.assert_outcomes(passed=1)
    [report] = reports_of(pytester.path / "r.json")
    assert report["device_type"] == "cpu"
    # every gated report names its machine and each copy's cores
    assert report["machine"] and report["fingerprint"]["device_type"] == "cpu"
    assert len(report["cores"]) == report["n_models"] == 1


def test_saving_measures_twice_and_summary_notes_improved_and_versions(
    pytester: pytest.Pytester, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_perf=PERF)
    baseline = pytester.path / "perf.json"
    monkeypatch.setenv("SLOWDOWN", "4")
    run(f"--neuronperf-baseline={baseline}", "--neuronperf-save-baseline",
        "--neuronperf-json=saved.json").assert_outcomes(passed=1)
    [saved] = reports_of(pytester.path / "saved.json")
    assert saved["repeat"]["status"] == "ok"  # the second measurement
    data = json.loads(baseline.read_text())
    [section] = data["machines"].values()
    [entry] = section["tests"]["test_perf.py::test_sleep"].values()
    assert len(entry["windows"]["throughput"]) == 20  # two runs of 10 windows
    # the baseline was recorded with another torch: the header and the summary say so
    section["fingerprint"]["torch"] = "0.0.1"
    baseline.write_text(json.dumps(data))
    monkeypatch.setenv("SLOWDOWN", "1")
    result = run(f"--neuronperf-baseline={baseline}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "neuronperf: baseline *perf.json, machine *; changed since: torch 0.0.1 -> *",
        "*IMPROVED*",
        "*compared with a baseline from other library versions: torch 0.0.1 -> *",
        "*configuration(s) IMPROVED beyond tolerance: consider re-saving the baseline*",
    ])


def test_inconclusive_is_rechecked_and_noted(pytester: pytest.Pytester, run: Run) -> None:
    pytester.makepyfile(test_perf=PERF)
    baseline = pytester.path / "perf.json"
    run(f"--neuronperf-baseline={baseline}",
        "--neuronperf-save-baseline").assert_outcomes(passed=1)
    data = json.loads(baseline.read_text())
    [section] = data["machines"].values()
    [entry] = section["tests"]["test_perf.py::test_sleep"].values()
    for series in entry["windows"].values():
        del series[2:]  # two windows cannot decide anything: INCONCLUSIVE
    baseline.write_text(json.dumps(data))
    result = run(f"--neuronperf-baseline={baseline}", "--neuronperf-json=r.json")
    result.assert_outcomes(passed=1)
    [report] = reports_of(pytester.path / "r.json")
    assert report["verdict"] == "INCONCLUSIVE"
    assert report["recheck"]["status"] == "ok"  # measured once more before it stood
    result.stdout.fnmatch_lines(["*INCONCLUSIVE (too noisy to decide)*"])


CUSTOM_HOOKS = '''
from pytest_neuronperf.devices.base import Placement
from pytest_neuronperf.devices.cpu import thread_env, usable_cpus


class MarkedCpu:
    name = "markedcpu"

    def is_available(self):
        return True

    def cores(self):
        return usable_cpus()[:1]

    def placements(self, cores, n_models, pipeline_size):
        return [Placement(device_type="markedcpu", copy_index=i, cores=(cores[i],),
                          env={**thread_env(1), "CUSTOM_BACKEND_VAR": f"copy{i}"},
                          cpu_affinity=(cores[i],))
                for i in range(n_models)]

    def fingerprint(self):
        return {"device_type": "markedcpu", "devices": []}


def pytest_neuronperf_add_devices(config):
    return {"markedcpu": MarkedCpu()}


def pytest_neuronperf_add_frameworks(config):
    return {"doubling": "doubling_adapter:DoublingAdapter"}


def pytest_neuronperf_fingerprint(config, fingerprint):
    import os
    return {"instance_type": os.environ.get("INSTANCE_TYPE", "m5.large")}
'''

DOUBLING_ADAPTER = '''
from pytest_neuronperf.frameworks.python import PythonAdapter


class DoublingAdapter(PythonAdapter):
    """A custom framework adapter: the python adapter, with inputs doubled."""

    def prepare_inputs(self, inputs, batch_size, placement):
        import os
        from pathlib import Path
        Path(os.environ["CAPS_DIR"], f"adapter-{os.getpid()}").write_text("used")
        return super().prepare_inputs(inputs, batch_size, placement)
'''

HOOKED_TEST = '''
import numpy as np
import pytest
from claim_models import ReportsThreadCaps


@pytest.mark.neuronperf(n_models=1, workers_per_model=1, duration=0.3, warmup=0.05,
                        device="markedcpu")
def test_hooked(neuronperf):
    neuronperf.benchmark(ReportsThreadCaps, np.zeros((1, 4), np.float32), framework="doubling")
'''


def test_custom_backend_env_adapter_and_fingerprint_hooks(
    pytester: pytest.Pytester, run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeconftest(CUSTOM_HOOKS)
    pytester.makepyfile(doubling_adapter=DOUBLING_ADAPTER, test_hooked=HOOKED_TEST)
    (pytester.path / "claim_models.py").write_text(
        (Path(__file__).parent / "claim_models.py").read_text())
    caps = tmp_path / "caps"
    caps.mkdir()
    monkeypatch.setenv("CAPS_DIR", str(caps))
    run("--neuronperf-json=a.json").assert_outcomes(passed=1)
    [seen] = [json.loads(p.read_text()) for p in caps.glob("*.json")]
    assert seen["env"]["CUSTOM_BACKEND_VAR"] == "copy0"  # the backend's env reached the copy
    assert list(caps.glob("adapter-*"))  # the registered adapter ran in the copy
    [first] = reports_of(pytester.path / "a.json")
    assert first["fingerprint"]["instance_type"] == "m5.large"
    monkeypatch.setenv("INSTANCE_TYPE", "c6i.xlarge")
    run("--neuronperf-json=b.json").assert_outcomes(passed=1)
    [second] = reports_of(pytester.path / "b.json")
    # an extra fingerprint field describes the machine, so it enters the machine id
    assert second["machine"] != first["machine"]


# --- TensorFlow ---------------------------------------------------------------------------------


def test_tensorflow_thread_pools_are_capped(tmp_path, monkeypatch, two_cores):  # type: ignore[no-untyped-def]
    pytest.importorskip("tensorflow")
    from claim_models import ReportsTensorflowThreads

    monkeypatch.setenv("CAPS_DIR", str(tmp_path))
    [report] = bench(ReportsTensorflowThreads, framework="tensorflow", pipeline_sizes=2,
                     cores=two_cores)
    assert report["status"] == "ok", report["error"]
    [seen] = [json.loads(p.read_text()) for p in tmp_path.glob("tf-*.json")]
    assert (seen["intra"], seen["inter"], seen["affinity"]) == (2, 1, sorted(two_cores))


def test_framework_is_inferred_from_keras_classes_and_tensorflow_tensors() -> None:
    tf = pytest.importorskip("tensorflow")
    from tf_models import keras_model_class, small_keras_model

    from pytest_neuronperf.frameworks import infer_framework

    assert infer_framework(keras_model_class(), None) == "tensorflow"
    assert infer_framework(small_keras_model, tf.constant([[1.0]])) == "tensorflow"
    assert infer_framework(small_keras_model, np.zeros(1)) is None  # NumPy says nothing


# --- the compile cache ----------------------------------------------------------------------------


def test_cache_dir_from_the_environment_and_cache_false(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    from torch_models import TinyMLP

    shared = tmp_path / "shared-from-env"
    monkeypatch.setenv("NEURONPERF_CACHE_DIR", str(shared))
    first = npf.compile(TinyMLP, torch.rand(1, 64), compiler="torchscript",
                        models_dir=tmp_path / "a", verbosity=0)
    [made] = json.loads(Path(first).read_text())["model_configs"]
    assert not made["cached"] and (shared / made["filename"]).is_file()
    second = npf.compile(TinyMLP, torch.rand(1, 64), compiler="torchscript",
                         models_dir=tmp_path / "b", verbosity=0)
    [hit] = json.loads(Path(second).read_text())["model_configs"]
    assert hit["cached"] and hit["compile_s"] == 0  # served by $NEURONPERF_CACHE_DIR
    again = npf.compile(TinyMLP, torch.rand(1, 64), compiler="torchscript",
                        models_dir=tmp_path / "b", cache=False, verbosity=0)
    [fresh] = json.loads(Path(again).read_text())["model_configs"]
    assert not fresh["cached"] and fresh["compile_s"] > 0  # cache=False compiles again


def test_all_copies_measure_one_common_window_after_the_barrier(tmp_path, monkeypatch,  # type: ignore[no-untyped-def]
                                                                 two_cores):
    from claim_models import BarrierProbe

    monkeypatch.setenv("PROBE_DIR", str(tmp_path))
    results = bench(BarrierProbe, n_models=2, cores=two_cores, warmup=0.05, duration=0.5,
                    return_timers=True)
    [report] = npf.get_reports(results)
    assert report["status"] == "ok", report["error"]
    slow_loaded = int((tmp_path / "slow-loaded").read_text())
    [(_, raw)] = results
    measured = [sum(len(thread) for thread in copy["latency_ns"]) for copy in raw["copies"]]
    after = [sum(int(t) > slow_loaded for t in path.read_text().split())
             for path in tmp_path.glob("calls-*")]
    # the fast copy finished warming up a second before the slow one had even loaded: had it
    # not waited at the barrier, most of its measured calls would come before that moment
    assert len(after) == 2 and min(after) >= min(measured) and sum(after) >= sum(measured)


def test_copies_fork_from_a_server_that_never_started_a_runtime(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    from claim_models import ReportsForkParent

    monkeypatch.setenv("CAPS_DIR", str(tmp_path))
    for _ in range(2):  # the second configuration forks from the same server, after the first ran
        [report] = npf.torch.benchmark(ReportsForkParent, np.zeros((1, 4), np.float32),
                                       framework="python", **QUICK)
        assert report["status"] == "ok", report["error"]
    seen = [json.loads(p.read_text()) for p in tmp_path.glob("fork-*.json")]
    assert len(seen) == 2
    for info in seen:
        assert "forkserver" in info["cmdline"]
        # a thread pool or device runtime started in the server would show as more threads
        assert info["parent_threads"] == 1
