"""The baseline file: format, validation, merge, atomic and concurrent saves."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest

from pytest_neuronperf import safe_files
from pytest_neuronperf.gating import baseline as baseline_module
from pytest_neuronperf.gating.baseline import (
    FORMAT,
    FORMAT_VERSION,
    BaselineError,
    load_baseline,
    result_key,
    save_results,
)
from pytest_neuronperf.reports import config_key

FP = {"cpu": "AMD EPYC", "cores": 2, "device_type": "cpu", "devices": [], "python": "3.11"}


def entry(throughput: float) -> dict[str, Any]:
    """A baseline entry with a recognisable throughput."""
    return {
        "metrics": {"throughput_avg": throughput, "latency_ms_p99": 1.5},
        "windows": {"throughput": [throughput] * 10, "latency_ms_p99": [1.5] * 9 + [math.nan]},
    }


def report(**overrides: Any) -> dict[str, Any]:
    """The configuration keys of a report."""
    return {"batch_size": 1, "n_models": 2, "workers_per_model": 1, "pipeline_size": 1, **overrides}


def test_config_key_is_stable_and_readable() -> None:
    assert config_key(report()) == "bs=1,n_models=2,workers=1,pipeline=1"
    assert config_key(report(batch_size=8)) != config_key(report())


def test_result_key_adds_the_benchmark_name() -> None:
    assert result_key("tests/test_a.py::test_mlp") == "tests/test_a.py::test_mlp"
    assert result_key("tests/test_a.py::test_mlp", "fp16") == "tests/test_a.py::test_mlp::fp16"


def test_missing_file_is_no_baseline(tmp_path: Path) -> None:
    assert load_baseline(tmp_path / "baseline.json") is None


def test_save_creates_the_documented_shape(tmp_path: Path) -> None:
    path = tmp_path / "perf" / "baseline.json"
    save_results(path, "m1", FP, {"t::a": {"bs=1": entry(100.0)}})
    data = json.loads(path.read_text())
    assert data["format"] == FORMAT and data["version"] == FORMAT_VERSION
    machine = data["machines"]["m1"]
    assert machine["fingerprint"] == FP
    stored = machine["tests"]["t::a"]["bs=1"]
    assert stored["metrics"] == {"throughput_avg": 100.0, "latency_ms_p99": 1.5}
    assert stored["windows"]["latency_ms_p99"][-1] is None  # NaN is stored as null


def test_saved_file_is_strict_json_with_one_line_windows(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    save_results(path, "m1", FP, {"t::a": {"bs=1": entry(100.0)}})
    text = path.read_text()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in the file"))
    assert '"throughput": [100.0, 100.0' in text
    assert text.endswith("\n")


def test_lookup_and_machines(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    save_results(path, "m1", FP, {"t::a": {"bs=1": entry(100.0)}})
    loaded = load_baseline(path)
    assert loaded is not None
    assert loaded.has_machine("m1") and not loaded.has_machine("m2")
    assert loaded.machines() == {"m1": FP}
    assert loaded.fingerprint("m1") == FP
    found = loaded.lookup("m1", "t::a", "bs=1")
    assert found is not None and found["metrics"]["throughput_avg"] == 100.0
    assert loaded.lookup("m1", "t::a", "bs=8") is None
    assert loaded.lookup("m1", "t::b", "bs=1") is None
    assert loaded.lookup("m2", "t::a", "bs=1") is None


def test_merge_replaces_only_the_configurations_that_ran(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    save_results(
        path, "m1", FP, {"t::a": {"bs=1": entry(1), "bs=8": entry(8)}, "t::b": {"x": entry(2)}}
    )
    save_results(path, "m2", {**FP, "cores": 4}, {"t::a": {"bs=1": entry(40)}})
    save_results(path, "m1", {**FP, "torch": "2.13"}, {"t::a": {"bs=1": entry(11)}})

    loaded = load_baseline(path)
    assert loaded is not None

    def throughput(machine: str, test: str, config: str) -> float:
        found = loaded.lookup(machine, test, config)
        assert found is not None
        return float(found["metrics"]["throughput_avg"])

    assert throughput("m1", "t::a", "bs=1") == 11  # replaced
    assert throughput("m1", "t::a", "bs=8") == 8  # other config of the same test kept
    assert throughput("m1", "t::b", "x") == 2  # other test kept
    assert throughput("m2", "t::a", "bs=1") == 40  # other machine kept
    assert loaded.machines()["m1"]["torch"] == "2.13"  # fingerprint updated


def test_saved_floats_are_rounded_for_small_diffs(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    save_results(path, "m1", FP, {"t": {"c": entry(1234.56789012345)}})
    loaded = load_baseline(path)
    assert loaded is not None
    assert loaded.lookup("m1", "t", "c")["metrics"]["throughput_avg"] == 1234.57  # type: ignore[index]


def test_new_file_is_readable_by_others(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    save_results(path, "m1", FP, {})
    assert path.stat().st_mode & 0o777 == baseline_module.NEW_FILE_MODE


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"format": "pytest-neuronperf-baseline", "version": 1, "machines": {', "not valid JSON"),
        (b"\xff\xfe garbage", "not valid JSON"),
        (b'{"format": "something-else", "version": 1, "machines": {}}', "not a pytest-neuronperf"),
        (b"[1, 2, 3]", "not a pytest-neuronperf"),
        (b'{"format": "pytest-neuronperf-baseline", "version": 99, "machines": {}}', "newer"),
        (b'{"format": "pytest-neuronperf-baseline", "version": "1", "machines": {}}', "version"),
        (b'{"format": "pytest-neuronperf-baseline", "version": 1, "machines": []}', "machines"),
    ],
)
def test_unusable_file_is_an_error_and_left_untouched(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "baseline.json"
    path.write_bytes(content)
    with pytest.raises(BaselineError, match=message) as error:
        load_baseline(path)
    assert str(path) in str(error.value)
    with pytest.raises(BaselineError, match=message):
        save_results(path, "m1", FP, {"t": {"c": entry(1)}})
    assert path.read_bytes() == content
    assert not list(tmp_path.glob(".baseline.json.*"))


@pytest.mark.parametrize(
    ("bad_entry", "message"),
    [
        ({"metrics": {}, "windows": {"throughput": "fast"}}, "windows 'throughput' is not a list"),
        ({"metrics": {}, "windows": {"throughput": ["1", "2"]}}, "not a list of numbers"),
        ({"metrics": {"throughput_avg": "x"}, "windows": {}}, "metric 'throughput_avg' is 'x'"),
        ({"metrics": {}, "windows": {"throughput": [5.0, -3.0]}}, "negative values"),
        ({"metrics": [], "windows": {}}, "'metrics' is not an object"),
    ],
)
def test_hand_edited_entry_with_bad_numbers_is_an_error_naming_it(
    tmp_path: Path, bad_entry: dict[str, Any], message: str
) -> None:
    path = tmp_path / "baseline.json"
    save_results(path, "m1", FP, {"t.py::test_a": {"bs=1": entry(1)}})
    data = json.loads(path.read_text())
    data["machines"]["m1"]["tests"]["t.py::test_a"]["bs=1"] = bad_entry
    path.write_text(json.dumps(data))
    with pytest.raises(BaselineError, match=message) as error:
        load_baseline(path)
    assert str(path) in str(error.value) and "'t.py::test_a'" in str(error.value)
    assert "'bs=1'" in str(error.value)


def test_newer_version_says_to_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps({"format": FORMAT, "version": FORMAT_VERSION + 1, "machines": {}}))
    with pytest.raises(BaselineError, match="newer pytest-neuronperf.*Upgrade"):
        load_baseline(path)


def test_baseline_error_is_a_value_error() -> None:
    assert issubclass(BaselineError, ValueError)


def test_interrupted_write_leaves_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "baseline.json"
    save_results(path, "m1", FP, {"t": {"c": entry(1)}})
    before = path.read_bytes()

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safe_files.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_results(path, "m1", FP, {"t": {"c": entry(2), "d": entry(3)}})
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".baseline.json.*"))
    save_results(path, "m1", FP, {"t": {"d": entry(3)}})  # the lock was released
    loaded = load_baseline(path)
    assert loaded is not None and loaded.lookup("m1", "t", "d") is not None


def test_interrupt_before_rename_leaves_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "baseline.json"
    save_results(path, "m1", FP, {"t": {"c": entry(1)}})
    before = path.read_bytes()

    def interrupted(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(safe_files.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_results(path, "m1", FP, {"t": {"c": entry(2)}})
    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".baseline.json.*"))


def _save_many(path: str, worker: int, saves: int) -> None:
    """One concurrent writer: ``saves`` saves, each of its own configuration."""
    for index in range(saves):
        machine = f"m{worker % 2}"
        results = {
            "tests/test_shared.py::test_x": {f"w{worker}-{index}": entry(worker * 100 + index)}
        }
        save_results(path, machine, FP, results)


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    workers, saves = 4, 10
    context = multiprocessing.get_context("fork")
    processes = [
        context.Process(target=_save_many, args=(str(path), worker, saves))
        for worker in range(workers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0

    loaded = load_baseline(path)
    assert loaded is not None
    stored = {
        config
        for machine in ("m0", "m1")
        for config in loaded.tests(machine)["tests/test_shared.py::test_x"]
    }
    assert stored == {f"w{w}-{i}" for w in range(workers) for i in range(saves)}
    assert not list(tmp_path.glob(".baseline.json.*"))


def test_saving_through_a_symlink_keeps_the_link(tmp_path: Path) -> None:
    real = tmp_path / "shared" / "baseline.json"
    real.parent.mkdir()
    link = tmp_path / "baseline.json"
    link.symlink_to(real)
    save_results(link, "m1", FP, {"t": {"c": entry(1)}})
    assert link.is_symlink()
    assert load_baseline(real) is not None


def test_no_lock_file_is_left_beside_the_baseline(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    save_results(path, "m1", FP, {})
    assert not os.path.exists(f"{path}.lock")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".neuronperf-locks", "baseline.json"]
    assert (tmp_path / ".neuronperf-locks" / "baseline.json.lock").exists()


def _baseline_with(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "baseline.json"
    path.write_text(text)
    return path


@pytest.mark.parametrize("fingerprint", ['"abc"', "5", "[1, 2]"])
def test_fingerprint_that_is_not_an_object_is_an_error_naming_the_file(
    tmp_path: Path, fingerprint: str
) -> None:
    path = _baseline_with(tmp_path, f'{{"format": "{FORMAT}", "version": 1, "machines": '
                                    f'{{"m1": {{"fingerprint": {fingerprint}, "tests": {{}}}}}}}}')
    before = path.read_bytes()
    with pytest.raises(BaselineError, match="machine 'm1' has a 'fingerprint' that is not an obj"):
        load_baseline(path)
    with pytest.raises(BaselineError, match=str(path)):
        save_results(path, "m1", FP, {})
    assert path.read_bytes() == before


@pytest.mark.parametrize("depth", [40, 100_000])
def test_deeply_nested_file_is_an_error_not_a_recursion_error(tmp_path: Path, depth: int) -> None:
    nested = "[" * depth + "]" * depth
    path = _baseline_with(tmp_path, f'{{"format": "{FORMAT}", "version": 1, "machines": {{"m1": '
                                    f'{{"fingerprint": {{"x": {nested}}}, "tests": {{}}}}}}}}')
    before = path.read_bytes()
    with pytest.raises(BaselineError, match=f"{path} nests objects or lists deeper than 32"):
        load_baseline(path)
    with pytest.raises(BaselineError, match="deeper"):
        save_results(path, "m1", FP, {})
    assert path.read_bytes() == before


def test_read_only_baseline_is_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    save_results(path, "m1", FP, {"t": {"c": entry(1)}})
    path.chmod(0o444)
    before = path.read_bytes()
    with pytest.raises(BaselineError, match=r"read-only \(mode 0444\); it was left untouched"):
        save_results(path, "m1", FP, {"t": {"c": entry(2)}})
    assert path.read_bytes() == before
    assert stat_mode(path) == 0o444


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_link_into_a_missing_folder_is_refused_naming_link_and_target(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = tmp_path / "project" / "baseline.json"
    link.parent.mkdir()
    link.symlink_to(elsewhere / "missing" / "baseline.json")
    with pytest.raises(BaselineError) as error:
        save_results(link, "m1", FP, {"t": {"c": entry(1)}})
    message = str(error.value)
    assert str(link) in message and str(elsewhere / "missing" / "baseline.json") in message
    assert "does not exist" in message
    assert list(elsewhere.iterdir()) == []
    assert link.is_symlink() and sorted(p.name for p in link.parent.iterdir()) == ["baseline.json"]


def test_dangling_link_whose_folder_exists_is_followed(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    link = tmp_path / "baseline.json"
    link.symlink_to(tmp_path / "shared" / "baseline.json")
    assert baseline_module.link_target(link) == tmp_path / "shared" / "baseline.json"
    saved = save_results(link, "m1", FP, {"t": {"c": entry(1)}})
    assert saved.path == tmp_path / "shared" / "baseline.json"
    assert link.is_symlink() and load_baseline(link) is not None


def _hold_baseline_lock(path: str, ready: Any, release: Any) -> None:
    with safe_files.locked(Path(path)):
        ready.set()
        release.wait(30)


def test_held_lock_says_who_holds_it_then_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    save_results(path, "m1", FP, {"t": {"c": entry(1)}})
    before = path.read_bytes()
    context = multiprocessing.get_context("fork")
    ready, release = context.Event(), context.Event()
    holder = context.Process(target=_hold_baseline_lock, args=(str(path), ready, release))
    holder.start()
    said: list[str] = []
    try:
        assert ready.wait(30)
        with pytest.raises(safe_files.LockTimeout) as error:
            save_results(path, "m1", FP, {"t": {"c": entry(2)}}, on_wait=said.append,
                         lock_notice_s=0.2, lock_limit_s=0.6)
    finally:
        release.set()
        holder.join(30)
    assert said and f"held by process {holder.pid}" in said[0] and str(path) in said[0]
    assert f"held by process {holder.pid}" in str(error.value)
    assert path.read_bytes() == before
    save_results(path, "m1", FP, {"t": {"c": entry(2)}}, lock_limit_s=10)  # released: saves


def test_a_saver_killed_mid_write_leaves_the_file_whole_and_its_temp_is_cleared(
    tmp_path: Path,
) -> None:
    import signal
    import subprocess
    import sys

    path = tmp_path / "baseline.json"
    save_results(path, "m1", FP, {"t": {"c": entry(1)}})
    before = path.read_bytes()
    saver = subprocess.Popen(
        [sys.executable, "-c", (
            "import os, time\n"
            "from pytest_neuronperf.gating.baseline import save_results\n"
            "real_fsync = os.fsync\n"
            "def stalled(fd):\n"
            f"    if os.readlink(f'/proc/self/fd/{{fd}}').startswith({str(tmp_path)!r} + '/.b'):\n"
            "        print('writing', flush=True)\n"
            "        time.sleep(60)\n"
            "    real_fsync(fd)\n"
            "os.fsync = stalled\n"
            f"save_results({str(path)!r}, 'm1', {{}}, {{'t': {{'c': {{'metrics': {{}}}}}}}})\n")],
        stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert saver.stdout is not None and saver.stdout.readline().strip() == "writing"
    finally:
        saver.send_signal(signal.SIGKILL)
        saver.wait(10)
    assert path.read_bytes() == before
    assert len(list(tmp_path.glob(".baseline.json.*.tmp"))) == 1  # what SIGKILL leaves
    save_results(path, "m1", FP, {"t": {"d": entry(2)}}, lock_limit_s=10)  # lock was released
    assert not list(tmp_path.glob(".baseline.json.*.tmp"))
    loaded = load_baseline(path)
    assert loaded is not None and loaded.lookup("m1", "t", "c") is not None
