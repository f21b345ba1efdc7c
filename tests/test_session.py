"""Session logic without processes: xdist core shares and per-machine baseline sections."""

from __future__ import annotations

import json
import threading
import time

from pytest_neuronperf.gating import Verdict
from pytest_neuronperf.session import PerfSession, RunOptions, xdist_share


def test_each_xdist_worker_gets_a_disjoint_slice():
    cores = [0, 1, 2, 3]
    shares = [xdist_share(cores, f"gw{i}", 2, "run") for i in range(2)]
    assert [s.cores for s in shares] == [[0, 1], [2, 3]]
    assert all(s.lock_path is None for s in shares)
    assert xdist_share(cores, None, 1, "run").cores == cores  # no xdist: everything


def test_more_workers_than_cores_share_slices_through_a_lock(tmp_path):
    shares = [xdist_share([0, 1], f"gw{i}", 4, "run-a") for i in range(4)]
    assert [s.cores for s in shares] == [[0], [1], [0], [1]]
    assert shares[0].lock_path == shares[2].lock_path != shares[1].lock_path
    # the two workers on slice 0 never hold it at the same time
    inside, overlaps = [], []

    def hold() -> None:
        with shares[0].hold():
            inside.append(1)
            overlaps.append(len(inside))
            time.sleep(0.05)
            inside.pop()

    threads = [threading.Thread(target=hold) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == [1, 1, 1]


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
