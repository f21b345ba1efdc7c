"""xdist core shares per host: the registry, sealed partitions, slice locks, host identity."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import time
from pathlib import Path

import pytest
from projects import BENCHMARK_SLEEP, SLEEP_MODEL, perf_test

from pytest_neuronperf.plugin.options import RunOptions
from pytest_neuronperf.plugin.session import PerfSession
from pytest_neuronperf.plugin.shares import CoreShare, Host, HostRegistry, host_share, this_host
from pytest_neuronperf.plugin.xdist import plain_nodeid

BOX_A, BOX_B = Host("box-a", "aaaa"), Host("box-b", "bbbb")


def registry(directory: Path, host: Host, *workers: str) -> HostRegistry:
    """A run's registry seen from ``host``, with ``workers`` registered there."""
    reg = HostRegistry(directory, host)
    for worker in workers:
        reg.join(worker)
    return reg


def test_workers_on_one_host_split_its_cores(tmp_path):
    reg = registry(tmp_path, BOX_A, "gw0", "gw1")
    shares = [host_share([0, 1, 2, 3], worker, reg) for worker in ("gw1", "gw0")]
    assert [s.cores for s in shares] == [[2, 3], [0, 1]]
    assert shares[0].lock_path != shares[1].lock_path


def test_a_worker_alone_on_its_host_gets_every_core(tmp_path):
    # one run, two hosts that (here) see one temp dir: each host's worker counts only its own
    on_a, on_b = registry(tmp_path, BOX_A, "gw0"), registry(tmp_path, BOX_B, "gw1")
    assert host_share([0, 1, 2, 3], "gw0", on_a).cores == [0, 1, 2, 3]
    assert host_share([0, 1, 2, 3], "gw1", on_b).cores == [0, 1, 2, 3]
    assert host_share([0, 1, 2, 3], "gw0", on_a).lock_path != host_share(
        [0, 1, 2, 3], "gw1", on_b).lock_path


def test_more_workers_than_cores_queue_on_slice_locks(tmp_path):
    reg = registry(tmp_path, BOX_A, "gw0", "gw1", "gw2", "gw3")
    shares = [host_share([0, 1], f"gw{i}", reg) for i in range(4)]
    assert [s.cores for s in shares] == [[0], [1], [0], [1]]
    assert shares[0].lock_path == shares[2].lock_path != shares[1].lock_path


def test_a_late_worker_takes_a_sealed_slice_and_its_lock(tmp_path):
    reg = registry(tmp_path, BOX_A, "gw0", "gw1")
    first = host_share([0, 1, 2, 3], "gw0", reg)  # seals the host's partition: gw0, gw1
    reg.join("gw2")  # e.g. a worker restarted after a crash
    late = host_share([0, 1, 2, 3], "gw2", reg)
    assert late.cores == first.cores == [0, 1] and late.lock_path == first.lock_path
    assert host_share([0, 1, 2, 3], "gw1", reg).cores == [2, 3]  # the sealed list holds


def test_one_hosts_slices_are_equal_or_disjoint_whatever_the_join_order(tmp_path):
    """However workers interleave joining and first benchmarks, two overlapping slices are
    the same slice, held through the same lock."""
    cores = list(range(6))
    for case, order in enumerate(itertools.permutations(["gw0", "gw1", "gw2", "gw3"])):
        reg = HostRegistry(tmp_path / str(case), BOX_A)
        shares = []
        for position, worker in enumerate(order):
            reg.join(worker)
            if position % 2:  # every other worker benchmarks before the next one joins
                shares.append(host_share(cores, worker, reg))
        shares += [host_share(cores, worker, reg) for worker in order]
        for one, other in itertools.combinations(shares, 2):
            if set(one.cores) & set(other.cores):
                assert one.cores == other.cores and one.lock_path == other.lock_path, order


def test_a_shared_slice_is_held_by_one_worker_at_a_time(tmp_path):
    reg = registry(tmp_path, BOX_A, "gw0", "gw1", "gw2")
    shares = [host_share([0], f"gw{i}", reg) for i in range(3)]
    assert {s.lock_path for s in shares} == {shares[0].lock_path}
    # processes (as xdist workers are) that share the slice never hold it at the same time
    context = multiprocessing.get_context("spawn")
    holders = [context.Process(target=hold_share, args=(share, tmp_path / f"held{i}"))
               for i, share in enumerate(shares)]
    for holder in holders:
        holder.start()
    for holder in holders:
        holder.join(timeout=60)
        assert holder.exitcode == 0
    spans = sorted(tuple(map(float, (tmp_path / f"held{i}").read_text().split()))
                   for i in range(3))
    assert all(end <= next_start
               for (_, end), (next_start, _) in zip(spans, spans[1:], strict=False))


def hold_share(share: CoreShare, record: Path) -> None:
    """In another process: hold the share for a while and write when (monotonic clock)."""
    with share.hold():
        start = time.monotonic()
        time.sleep(0.2)
        end = time.monotonic()
    record.write_text(f"{start} {end}")


def test_the_last_worker_out_removes_the_registry(tmp_path):
    run = tmp_path / "pytest-neuronperf-run"
    reg = registry(run, BOX_A, "gw0", "gw1")
    with host_share([0, 1], "gw0", reg).hold():
        pass
    reg.leave("gw0")
    assert run.is_dir() and reg.registered() == ["gw1"]
    reg.leave("gw1")
    assert not run.exists()


def test_hosts_are_told_apart_by_what_the_worker_sees(tmp_path, monkeypatch):
    monkeypatch.delenv("NEURONPERF_HOST_ID", raising=False)
    one, other = tmp_path / "boot-1", tmp_path / "boot-2"
    one.write_text("6f1c0e52-0000-4000-8000-000000000001\n")
    other.write_text("6f1c0e52-0000-4000-8000-000000000002\n")
    assert this_host(one) == this_host(one)
    assert this_host(one).key != this_host(other).key
    assert this_host(tmp_path / "no-boot-id").key  # no boot id: the host name stands in
    monkeypatch.setenv("NEURONPERF_HOST_ID", "rack-3")
    assert this_host(one).key == this_host(other).key == "rack-3"
    monkeypatch.setenv("NEURONPERF_HOST_ID", "../rack 3")
    with pytest.raises(pytest.UsageError, match="NEURONPERF_HOST_ID='../rack 3': a host id is"):
        this_host(one)


def gated(host: Host, worker: str, test: str, machine: str) -> dict:
    """A report as a worker on ``host`` sends it."""
    return {"status": "ok", "test": test, "machine": machine, "verdict": "NEW",
            "fingerprint": {"cpu": host.name, "cores": 2, "device_type": "cpu", "devices": []},
            "batch_size": 1, "n_models": 2, "workers_per_model": 1, "pipeline_size": 1,
            "throughput_avg": 10.0, "windows": {"throughput": [10.0] * 10},
            **host.fields(worker)}


def test_the_summary_says_which_host_measured_what(tmp_path):
    path = tmp_path / "baseline.json"
    session = PerfSession(RunOptions(baseline=path, save_baseline=True), {}, {}, {}, CoreShare)
    session.merge({"version": 1, "results": [gated(BOX_A, "gw0", "t.py::a", "m-inf2"),
                                             gated(BOX_A, "gw0", "t.py::b", "m-inf2")]}, "gw0")
    session.merge({"version": 1, "results": [gated(BOX_B, "gw1", "t.py::c", "m-cpu")]}, "gw1")
    notes = [line for line in session.notes() if "neuronperf: host" in line]
    assert notes == [
        "neuronperf: host box-a [aaaa] (workers gw0; baseline machine m-inf2) measured 2 "
        "configuration(s) of t.py::a, t.py::b",
        "neuronperf: host box-b [bbbb] (workers gw1; baseline machine m-cpu) measured 1 "
        "configuration(s) of t.py::c",
    ]
    session.save_baseline(path)
    machines = json.loads(path.read_text())["machines"]
    assert {m: sorted(v["tests"]) for m, v in machines.items()} == {
        "m-inf2": ["t.py::a", "t.py::b"], "m-cpu": ["t.py::c"]}


def test_one_local_host_needs_no_host_note():
    session = PerfSession(RunOptions(), {}, {}, {}, CoreShare)
    here = this_host()
    session.merge({"version": 1, "results": [gated(here, "gw0", "t.py::a", "m"),
                                             gated(here, "gw1", "t.py::b", "m")]}, "gw0")
    assert not [line for line in session.notes() if "neuronperf: host" in line]


TWO_HOSTS_CONFTEST = '''
import os


def pytest_neuronperf_fingerprint(config, fingerprint):
    # two simulated machines: as two hosts of two kinds would, they get two baseline sections
    return {"rack": os.environ.get("NEURONPERF_HOST_ID", "")}
'''

TWO_HOSTS_TESTS = SLEEP_MODEL + "import tempfile\nfrom pathlib import Path\n" + perf_test(
    "test_case", n_models="max", batch_sizes=None, duration=0.3,
    cases='[pytest.param(i, marks=pytest.mark.xdist_group(group))\n'
          '                                  for i, group in enumerate(["inf2", "inf2", "cpu", '
          '"cpu"])]',
    body="""\
registry = Path(tempfile.gettempdir()) / ("pytest-neuronperf-"
                                              + os.environ["PYTEST_XDIST_TESTRUNUID"])
    assert (registry / "workers" / os.environ["PYTEST_XDIST_WORKER"]).is_file()
    """ + BENCHMARK_SLEEP)


def run_two_workers(pytester: pytest.Pytester, host_ids: tuple[str, str]) -> tuple[dict, dict]:
    """Two popen workers reporting ``host_ids``; (JSON reports, baseline machines)."""
    pytest.importorskip("xdist")
    import tempfile
    import uuid

    pytester.makeconftest(TWO_HOSTS_CONFTEST)
    pytester.makepyfile(test_models=TWO_HOSTS_TESTS)
    uid = f"fleet-{uuid.uuid4().hex[:8]}"
    # named workers and groups run the pinning scheduler for real; where it lands each group is
    # not asserted: pytest 9.2 with pytest-xdist 3.8 drops xdist_group (xdist issue 1386), and
    # the pinning itself is tested above with fake nodes
    specs = [arg for worker, host_id in zip(("inf2", "cpu"), host_ids, strict=True)
             for arg in ("--tx", f"popen//id={worker}//env:NEURONPERF_HOST_ID={host_id}")]
    result = pytester.runpytest_subprocess(
        *specs, "--dist", "loadgroup", f"--testrunuid={uid}", "-p", "no:cacheprovider",
        "--neuronperf-baseline=baseline.json", "--neuronperf-save-baseline",
        "--neuronperf-json=r.json")
    result.assert_outcomes(passed=4)
    assert not (Path(tempfile.gettempdir()) / f"pytest-neuronperf-{uid}").exists()
    reports = json.loads((pytester.path / "r.json").read_text())["reports"]
    machines = json.loads((pytester.path / "baseline.json").read_text())["machines"]
    return {"stdout": result.stdout.str(), "reports": reports}, machines


def test_two_simulated_hosts_each_measure_on_all_their_cores(pytester: pytest.Pytester):
    from pytest_neuronperf.devices.cpu import usable_cpus

    run, machines = run_two_workers(pytester, ("rack-1", "rack-2"))
    by_worker: dict[str, list] = {}
    for report in run["reports"]:
        by_worker.setdefault(report["worker"], []).append(report)
    every = len(usable_cpus())
    for worker, reports in by_worker.items():
        assert {r["n_models"] for r in reports} == {every}, worker
    assert {r["host_id"] for r in run["reports"]} <= {"rack-1", "rack-2"}
    # each simulated machine's results in its own baseline section
    sections = {fp_tests["fingerprint"]["rack"]: sorted(fp_tests["tests"])
                for fp_tests in machines.values()}
    measured: dict[str, list] = {}
    for report in run["reports"]:
        measured.setdefault(report["host_id"], []).append(report["test"])
    assert sections == {host: sorted(tests) for host, tests in measured.items()}
    for host in measured:
        assert f"neuronperf: host {run['reports'][0]['host']} [{host}]" in run["stdout"]


class FakeNode:
    """What xdist's scheduler sees of a worker: its id, and the tests it is sent."""

    def __init__(self, worker: str) -> None:
        self.gateway = type("Gateway", (), {"id": worker})()
        self.sent: list[int] = []
        self.shutting_down = False

    def send_runtest_some(self, indices: list[int]) -> None:
        self.sent.extend(indices)

    def shutdown(self) -> None:
        self.shutting_down = True


PINNED_COLLECTION = [
    "t.py::test_bert[1]@inf2", "t.py::test_bert[8]@inf2", "t.py::test_resnet@inf2",
    "t.py::test_mlp[1]@cpu", "t.py::test_mlp[8]@cpu", "t.py::test_free",
]


def scheduled(pytester: pytest.Pytester, workers: list[str]) -> dict[str, list[str]]:
    """The tests each worker is sent under ``--dist loadgroup`` with ``--tx ...//id=``."""
    pytest.importorskip("xdist")
    from pytest_neuronperf.plugin.xdist_pinning import make_scheduler

    config = pytester.parseconfig(*[f"--tx=popen//id={w}" for w in workers], "--dist=loadgroup")
    scheduler = make_scheduler(config, None)
    assert scheduler is not None
    nodes = [FakeNode(w) for w in workers]
    for node in nodes:
        scheduler.add_node(node)
        scheduler.add_node_collection(node, PINNED_COLLECTION)
    scheduler.schedule()
    done: set[tuple[str, int]] = set()
    while any((n.gateway.id, i) not in done for n in nodes for i in n.sent):
        for node in nodes:  # workers finish what they were sent, and are sent more
            for index in list(node.sent):
                if (node.gateway.id, index) not in done:
                    done.add((node.gateway.id, index))
                    scheduler.mark_test_complete(node, index)
    return {n.gateway.id: [PINNED_COLLECTION[i] for i in n.sent] for n in nodes}


def test_loadgroup_pins_a_group_to_the_workers_named_after_it(pytester):
    # the CPU workers come up first: xdist's own loadgroup would hand them the biggest group
    sent = scheduled(pytester, ["cpu", "spare", "inf2-a"])
    assert sorted(sent["inf2-a"]) == sorted(t for t in PINNED_COLLECTION if t.endswith("@inf2"))
    assert sorted(sent["cpu"]) == sorted(t for t in PINNED_COLLECTION if t.endswith("@cpu"))
    assert sent["spare"] == ["t.py::test_free"]  # outside any group: anywhere
    assert sorted(t for tests in sent.values() for t in tests) == sorted(PINNED_COLLECTION)


def test_more_workers_than_groups_never_drops_a_pinned_worker(pytester):
    sent = scheduled(pytester, ["cpu", "other-1", "other-2", "other-3", "other-4", "inf2"])
    assert sorted(sent["inf2"]) == sorted(t for t in PINNED_COLLECTION if t.endswith("@inf2"))
    assert sorted(sent["cpu"]) == sorted(t for t in PINNED_COLLECTION if t.endswith("@cpu"))


class GroupedItem:
    """An item as xdist's loadgroup leaves it on a worker: its node id ends in ``@group``."""

    def __init__(self, nodeid: str, *groups: str) -> None:
        self.nodeid = nodeid
        self.groups = groups

    def iter_markers(self, name: str) -> list:
        return [pytest.mark.xdist_group(group).mark for group in self.groups]


def test_a_test_keeps_its_baseline_key_under_loadgroup():
    assert plain_nodeid(GroupedItem("t.py::test_bert[8]@inf2", "inf2")) == "t.py::test_bert[8]"
    assert plain_nodeid(GroupedItem("t.py::test_x@a_b", "b", "a")) == "t.py::test_x"
    assert plain_nodeid(GroupedItem("t.py::test_bert[8]", "inf2")) == "t.py::test_bert[8]"
    assert plain_nodeid(GroupedItem("dir@inf2/t.py::test_y")) == "dir@inf2/t.py::test_y"
