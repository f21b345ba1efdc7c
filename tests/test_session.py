"""Session logic without processes: per-machine baseline sections, outputs, notes."""

from __future__ import annotations

import json

from pytest_neuronperf.gating import baseline as baseline_file
from pytest_neuronperf.gating.verdicts import Verdict
from pytest_neuronperf.plugin.options import RunOptions
from pytest_neuronperf.plugin.session import PerfSession


def report(machine: str, test: str, cpu: str) -> dict:
    """A gated report as a worker on ``machine`` would send it."""
    return {
        "status": "ok", "test": test, "machine": machine, "verdict": Verdict.NEW.value,
        "fingerprint": {"cpu": cpu, "cores": 2, "device_type": "cpu", "devices": []},
        "batch_size": 1, "n_models": 1, "workers_per_model": 1, "pipeline_size": 1,
        "throughput_avg": 10.0, "windows": {"throughput": [10.0] * 10},
    }


def test_results_from_other_hosts_land_in_their_own_machine_sections(tmp_path):
    path = tmp_path / "baseline.json"
    session = PerfSession(RunOptions(baseline=path, save_baseline=True), {}, {}, {},
                          lambda cores: None)
    session.merge({"version": 1, "results": [report("aaaa", "t.py::a", "CPU A")]}, "gw0")
    session.merge({"version": 1, "results": [report("bbbb", "t.py::b", "CPU B")]}, "gw1")
    assert session.save_baseline(path) == 2
    machines = json.loads(path.read_text())["machines"]
    assert set(machines) == {"aaaa", "bbbb"}
    assert list(machines["aaaa"]["tests"]) == ["t.py::a"]
    assert machines["bbbb"]["fingerprint"]["cpu"] == "CPU B"


def test_an_unwritable_output_loses_no_results(tmp_path, monkeypatch):
    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(baseline_file, "save_results", disk_full)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a directory should be")
    options = RunOptions(baseline=tmp_path / "baseline.json", save_baseline=True,
                         json_path=blocker / "r.json", csv_path=tmp_path / "ok" / "r.csv")
    session = PerfSession(options, {}, {}, {}, lambda cores: None)
    session.merge({"version": 1, "results": [report("aaaa", "t.py::a", "CPU A")]}, "gw0")
    lines, failed = session.write_outputs(tmp_path)
    assert failed
    errors = [line for line in lines if "ERROR could not write" in line]
    assert len(errors) == 2
    assert "--neuronperf-baseline" in errors[0] and "--neuronperf-json" in errors[1]
    assert (tmp_path / "ok" / "r.csv").exists()  # the other outputs are still written
    [rescue] = tmp_path.glob("neuronperf-unsaved-*.json")
    assert json.loads(rescue.read_text())["reports"][0]["test"] == "t.py::a"
    assert any(str(rescue) in line for line in lines)


def test_summary_notes_name_library_versions_changed_since_the_baseline(tmp_path):
    path = tmp_path / "baseline.json"
    old = report("aaaa", "t.py::a", "CPU A")
    old["fingerprint"] = {**old["fingerprint"], "torch": "2.12.0"}
    saving = PerfSession(RunOptions(baseline=path, save_baseline=True), {}, {}, {},
                         lambda cores: None)
    saving.merge({"version": 1, "results": [old]}, "gw0")
    saving.save_baseline(path)
    new = report("aaaa", "t.py::a", "CPU A")
    new["fingerprint"] = {**new["fingerprint"], "torch": "2.13.0"}
    comparing = PerfSession(RunOptions(baseline=path), {}, {}, {}, lambda cores: None)
    comparing.merge({"version": 1, "results": [new]}, "gw0")
    assert ("neuronperf: compared with a baseline from other library versions: "
            "torch 2.12.0 -> 2.13.0") in comparing.notes()
