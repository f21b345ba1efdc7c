"""The Neuron backends: NeuronCore discovery, placements, and what each model process gets.

The contract tests run real benchmarks against fake ``torch_neuron`` / ``torch_neuronx`` packages
and a fake ``neuron-ls`` (tests/fakes/neuron); the fakes log, per model process, which runtime it
imported and the ``NEURON_RT_VISIBLE_CORES`` it saw.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fakes import neuron_support
from fakes.neuron_support import FakeNeuron

import pytest_neuronperf as npf
from pytest_neuronperf.devices import get_backend
from pytest_neuronperf.devices.neuron import (
    NeuronBackend,
    NeuronxBackend,
    discover,
    parse_neuron_ls,
    parse_visible_cores,
    read_sysfs,
    restrict_to_environment,
)

TRN1_2XLARGE = """[{"neuron_device": 0, "bdf": "0000:00:1e.0", "cpu_affinity": "0-7",
  "numa_node": "-1", "connected_to": null, "nc_count": 2, "memory_size": 34359738368,
  "neuroncore_ids": [0, 1], "neuron_processes": []}]"""


@pytest.fixture
def fake_neuron(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNeuron]:
    """A machine with 2 fake Neuron devices x 2 NeuronCores and both fake runtimes installed."""
    yield from neuron_support.install(tmp_path, monkeypatch)


def neuron_ls_json(*core_counts: int, with_ids: bool = True) -> str:
    """``neuron-ls --json-output`` for devices with the given NeuronCore counts."""
    devices, start = [], 0
    for index, count in enumerate(core_counts):
        device = {"neuron_device": index, "bdf": f"0000:00:{index:02x}.0", "nc_count": count,
                  "memory_size": 8 << 30, "connected_to": None, "neuron_processes": []}
        if with_ids:
            device["neuroncore_ids"] = list(range(start, start + count))
        devices.append(device)
        start += count
    return json.dumps(devices)


def fake_sysfs(root: Path, *core_counts: int, name: str = "Inferentia2") -> Path:
    """A ``/sys/devices/virtual/neuron_device`` tree with one ``neuronN`` per device."""
    for index, count in enumerate(core_counts):
        arch = root / f"neuron{index}" / "info" / "architecture"
        arch.mkdir(parents=True)
        (root / f"neuron{index}" / "core_count").write_text(f"{count}\n")
        (arch / "device_name").write_text(f"{name}\n")
        (arch / "instance_type").write_text("inf2.24xlarge\n")
    return root


def tiny_torchscript(path: Path) -> str:
    """Save a small traced model and return its path."""
    from fakes.neuron.neuron_models import TinyNet

    torch.jit.save(torch.jit.trace(TinyNet().eval(), torch.rand(1, 8)), str(path))
    return str(path)


# --- parsing ---------------------------------------------------------------------------------

def test_parses_real_neuron_ls_output() -> None:
    inventory = parse_neuron_ls(TRN1_2XLARGE)
    assert inventory.cores == [0, 1]
    assert [d.index for d in inventory.devices] == [0]


def test_numbers_cores_consecutively_from_nc_count_without_ids() -> None:
    inventory = parse_neuron_ls(neuron_ls_json(4, 4, with_ids=False))
    assert inventory.cores == list(range(8))
    assert inventory.devices[1].core_ids == (4, 5, 6, 7)


def test_accepts_an_object_wrapping_the_device_list() -> None:
    text = json.dumps({"instance_type": "trn1.32xlarge",
                       "neuron_devices": json.loads(neuron_ls_json(2, 2))})
    inventory = parse_neuron_ls(text)
    assert inventory.cores == [0, 1, 2, 3]
    assert inventory.instance_type == "trn1.32xlarge"


@pytest.mark.parametrize("text", ["not json", '{"unexpected": 1}', "42"])
def test_rejects_output_that_is_not_a_device_list(text: str) -> None:
    with pytest.raises(ValueError):
        parse_neuron_ls(text)


@pytest.mark.parametrize(("spec", "cores"), [
    ("3", [3]), ("0-3", [0, 1, 2, 3]), ("0,2", [0, 2]), ("0-1, 4", [0, 1, 4]), ("2-2", [2]),
])
def test_parses_visible_cores(spec: str, cores: list[int]) -> None:
    assert parse_visible_cores(spec) == cores


@pytest.mark.parametrize("spec", ["a", "3-1", "1-x", "-2"])
def test_rejects_malformed_visible_cores(spec: str) -> None:
    with pytest.raises(ValueError, match="NEURON_RT_VISIBLE_CORES"):
        parse_visible_cores(spec)


def test_parent_visible_cores_restrict_and_num_cores_caps() -> None:
    cores = list(range(8))
    assert restrict_to_environment(cores, {"NEURON_RT_VISIBLE_CORES": "2-3,6"}) == [2, 3, 6]
    assert restrict_to_environment(cores, {"NEURON_RT_NUM_CORES": "3"}) == [0, 1, 2]
    assert restrict_to_environment(cores, {}) == cores


def test_reads_devices_from_sysfs(tmp_path: Path) -> None:
    inventory = read_sysfs(fake_sysfs(tmp_path, 2, 2))
    assert inventory.cores == [0, 1, 2, 3]
    assert [d.name for d in inventory.devices] == ["Inferentia2", "Inferentia2"]
    assert inventory.instance_type == "inf2.24xlarge"
    assert read_sysfs(tmp_path / "missing").cores == []


def test_falls_back_to_sysfs_when_neuron_ls_fails(tmp_path: Path) -> None:
    broken = tmp_path / "neuron-ls"
    broken.write_text("#!/bin/sh\necho 'failed to discover Neuron devices' >&2\nexit 1\n")
    broken.chmod(0o755)
    inventory = discover(str(broken), fake_sysfs(tmp_path / "sys", 4))
    assert (inventory.source, inventory.cores) == ("sysfs", [0, 1, 2, 3])


# --- the backends with the fake neuron-ls ----------------------------------------------------

def test_cores_come_from_neuron_ls(fake_neuron: FakeNeuron) -> None:
    backend = NeuronxBackend()
    assert backend.cores() == [0, 1, 2, 3]
    assert backend.is_available()


def test_honours_visible_cores_set_in_the_parent(
    fake_neuron: FakeNeuron, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEURON_RT_VISIBLE_CORES", "1-2")
    backend = NeuronxBackend()
    assert backend.cores() == [1, 2]
    assert [p.env["NEURON_RT_VISIBLE_CORES"] for p in backend.placements([1, 2], 2, 1)] == [
        "1-1", "2-2",
    ]


def test_unavailable_without_cores_or_without_the_runtime(
    fake_neuron: FakeNeuron, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FAKE_NEURON_DEVICES", "0")
    assert not NeuronxBackend(sysfs_root=tmp_path / "no-sysfs").is_available()
    monkeypatch.setenv("FAKE_NEURON_DEVICES", "2")

    class NoRuntime(NeuronxBackend):
        runtime_module = "torch_neuronx_is_not_installed"

    assert not NoRuntime().is_available()
    assert NeuronxBackend().is_available()


def test_auto_picks_neuronx_when_its_runtime_and_cores_are_there(fake_neuron: FakeNeuron) -> None:
    assert get_backend("auto").name == "neuronx"
    assert isinstance(get_backend("neuron"), NeuronBackend)


def test_each_copy_gets_its_own_core_range() -> None:
    backend = NeuronxBackend()
    one = backend.placements([0, 1, 2, 3], 4, 1)
    assert [p.env["NEURON_RT_VISIBLE_CORES"] for p in one] == ["0-0", "1-1", "2-2", "3-3"]
    two = backend.placements([0, 1, 2, 3], 2, 2)
    assert [p.env["NEURON_RT_VISIBLE_CORES"] for p in two] == ["0-1", "2-3"]
    assert [p.cores for p in two] == [(0, 1), (2, 3)]
    for placement in one + two:
        assert placement.device_type == "neuronx"
        assert placement.runtime_imports == ("torch_neuronx",)
        assert placement.torch_device == "cpu"
        assert placement.cpu_affinity is None
        assert placement.intra_op_threads == 1
        assert "NEURON_RT_NUM_CORES" not in placement.env


def test_inf1_copies_import_torch_neuron() -> None:
    (placement,) = NeuronBackend().placements([0, 1, 2, 3], 1, 4)
    assert placement.runtime_imports == ("torch_neuron",)
    assert placement.env["NEURON_RT_VISIBLE_CORES"] == "0-3"


def test_an_inherited_core_count_is_made_to_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEURON_RT_NUM_CORES", "4")
    placements = NeuronxBackend().placements([0, 1, 2, 3], 2, 2)
    assert {p.env["NEURON_RT_NUM_CORES"] for p in placements} == {"2"}


def test_refuses_a_copy_on_non_consecutive_cores() -> None:
    with pytest.raises(ValueError, match="not consecutive"):
        NeuronxBackend().placements([0, 2], 1, 2)


def test_too_many_copies_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="need 6 cores"):
        NeuronxBackend().placements([0, 1, 2, 3], 3, 2)


def test_fingerprint_names_devices_and_counts_cores(
    fake_neuron: FakeNeuron, tmp_path: Path
) -> None:
    found = NeuronxBackend(sysfs_root=fake_sysfs(tmp_path / "sys", 2, 2)).fingerprint()
    assert found == {"device_type": "neuronx", "devices": ["Inferentia2", "Inferentia2"],
                     "count": 4, "instance_type": "inf2.24xlarge"}
    bare = NeuronBackend(sysfs_root=tmp_path / "none").fingerprint()
    assert bare == {"device_type": "neuron", "devices": ["neuron", "neuron"], "count": 4}


# --- contract: real benchmarks, fake runtime -------------------------------------------------

def run(model: str, **overrides: object) -> list[dict[str, object]]:
    """A short benchmark, one worker thread per copy."""
    options: dict[str, object] = {"n_models": "max", "workers_per_model": 1, "duration": 0.3,
                                  "warmup": 0.05, "verbosity": 0}
    options.update(overrides)
    return npf.benchmark(model, torch.rand(1, 8), **options)  # type: ignore[arg-type]


def test_every_copy_imports_torch_neuronx_on_its_own_core(
    fake_neuron: FakeNeuron, tmp_path: Path
) -> None:
    reports = run(tiny_torchscript(tmp_path / "tiny.pt"), device_type="neuronx")
    assert [(r["status"], r["device_type"], r["n_models"]) for r in reports] == [
        ("ok", "neuronx", 4)
    ]
    assert fake_neuron.worker_cores("torch_neuronx") == ["0-0", "1-1", "2-2", "3-3"]
    assert len({e["pid"] for e in fake_neuron.worker_imports("torch_neuronx")}) == 4
    assert fake_neuron.worker_imports("torch_neuron") == []


def test_pipelined_copies_get_consecutive_ranges(fake_neuron: FakeNeuron, tmp_path: Path) -> None:
    reports = run(tiny_torchscript(tmp_path / "tiny.pt"), device_type="neuronx", pipeline_sizes=2)
    assert [(r["status"], r["n_models"], r["pipeline_size"]) for r in reports] == [("ok", 2, 2)]
    assert fake_neuron.worker_cores("torch_neuronx") == ["0-1", "2-3"]


def test_inf1_copies_import_torch_neuron_instead(fake_neuron: FakeNeuron, tmp_path: Path) -> None:
    reports = run(tiny_torchscript(tmp_path / "tiny.pt"), device_type="neuron", n_models=2)
    assert [(r["status"], r["device_type"]) for r in reports] == [("ok", "neuron")]
    assert fake_neuron.worker_cores("torch_neuron") == ["0-0", "1-1"]
    assert fake_neuron.worker_imports("torch_neuronx") == []


def test_a_generative_model_streams_its_tokens_on_its_own_neuroncores(
    fake_neuron: FakeNeuron
) -> None:
    import transformers.models.llama.modeling_llama  # noqa: F401 - preloaded for the copies
    from neuron_models import tiny_nxd_llama

    [report] = npf.benchmark(tiny_nxd_llama, [[1, 2, 3]], scenario="generate", output_tokens=4,
                             device_type="neuronx", n_models=2, workers_per_model=1,
                             duration=0.3, warmup=0, verbosity=0)
    assert report["status"] == "ok", report["error"]
    assert (report["device_type"], report["n_models"], report["output_tokens_avg"]) == (
        "neuronx", 2, 4)
    loads = [e for e in fake_neuron.events("load", "neuronx_distributed_inference")
             if e["pid"] != os.getpid()]
    assert sorted(e["visible_cores"] for e in loads) == ["0-0", "1-1"]
    assert fake_neuron.worker_cores("torch_neuronx") == ["0-0", "1-1"]
    generated = fake_neuron.events("generate", "neuronx_distributed_inference")
    assert generated and {(e["streamer"], e["max_new_tokens"], e["min_new_tokens"])
                          for e in generated} == {("StampStreamer", 4, 4)}
    assert {e["visible_cores"] for e in generated} == {"0-0", "1-1"}
