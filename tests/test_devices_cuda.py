"""The CUDA backend: GPU discovery without torch, per-copy GPUs and host CPU shares.

Discovery and placement run against a fake ``nvidia-smi`` on PATH; the benchmark at the end needs
a real GPU and is skipped without one.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from pytest_neuronperf.devices import cuda
from pytest_neuronperf.devices.cuda import (
    CudaBackend,
    parse_gpu_list,
    parse_gpu_names,
    parse_visible_devices,
    split_cpus,
    visible_tokens,
)

SMI_LIST = """GPU 0: NVIDIA A10G (UUID: GPU-5b1a9c2e-0000-1111-2222-333344445555)
GPU 1: NVIDIA A10G (UUID: GPU-7d3f0e4a-6666-7777-8888-999900001111)
"""
SMI_NAMES = """0, GPU-5b1a9c2e-0000-1111-2222-333344445555, NVIDIA A10G
1, GPU-7d3f0e4a-6666-7777-8888-999900001111, NVIDIA A10G
"""


@pytest.fixture
def fake_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake ``nvidia-smi`` with two A10G GPUs, first on PATH; no CUDA_VISIBLE_DEVICES."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "nvidia-smi"
    script.write_text(textwrap.dedent(f"""\
        #!/usr/bin/env python3
        import sys
        if sys.argv[1:] == ["-L"]:
            print({SMI_LIST!r}, end="")
        elif any(a.startswith("--query-gpu=") for a in sys.argv[1:]):
            print({SMI_NAMES!r}, end="")
        else:
            sys.exit(6)
        """))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    return script


@pytest.fixture
def four_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend the host has logical CPUs 0-3."""
    monkeypatch.setattr(cuda, "usable_cpus", lambda: [0, 1, 2, 3])


def test_parses_nvidia_smi_listing_and_names() -> None:
    assert parse_gpu_list(SMI_LIST + "No devices were found\n") == [0, 1]
    assert [name for _, _, name in parse_gpu_names(SMI_NAMES)] == ["NVIDIA A10G"] * 2


@pytest.mark.parametrize(("value", "tokens"), [
    ("0,1", ["0", "1"]), (" 2 , 3 ", ["2", "3"]), ("1,-1,2", ["1"]), ("", []),
    ("GPU-5b1a9c2e,GPU-7d3f0e4a", ["GPU-5b1a9c2e", "GPU-7d3f0e4a"]),
])
def test_reads_visible_devices_as_cuda_does(value: str, tokens: list[str]) -> None:
    assert parse_visible_devices(value) == tokens


def test_uuid_entries_are_numbered_by_position() -> None:
    assert visible_tokens({"CUDA_VISIBLE_DEVICES": "1,3"}) == {1: "1", 3: "3"}
    assert visible_tokens({"CUDA_VISIBLE_DEVICES": "GPU-a,GPU-b"}) == {0: "GPU-a", 1: "GPU-b"}
    assert visible_tokens({}) is None


@pytest.mark.parametrize(("cpus", "parts", "groups"), [
    ([0, 1, 2, 3], 2, [(0, 1), (2, 3)]),
    ([0, 1, 2, 3, 4], 2, [(0, 1, 2), (3, 4)]),
    ([0, 1, 2, 3], 1, [(0, 1, 2, 3)]),
    ([0], 2, [(0,), (0,)]),
])
def test_splits_host_cpus_into_disjoint_shares(
    cpus: list[int], parts: int, groups: list[tuple[int, ...]]
) -> None:
    assert split_cpus(cpus, parts) == groups


def test_gpus_come_from_nvidia_smi(fake_smi: Path) -> None:
    backend = CudaBackend()
    assert backend.cores() == [0, 1]
    assert backend.is_available()


def test_visible_devices_in_the_parent_win(
    fake_smi: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert CudaBackend().cores() == [1]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert not CudaBackend().is_available()


def test_no_gpu_without_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert CudaBackend().cores() == []
    assert not CudaBackend().is_available()


def test_each_copy_gets_one_gpu_and_its_own_cpus(fake_smi: Path, four_cpus: None) -> None:
    placements = CudaBackend().placements([0, 1], 2, 1)
    assert [p.env["CUDA_VISIBLE_DEVICES"] for p in placements] == ["0", "1"]
    assert [p.cpu_affinity for p in placements] == [(0, 1), (2, 3)]
    for placement in placements:
        assert placement.device_type == "cuda"
        assert placement.torch_device == "cuda:0"
        assert placement.synchronize == "cuda"
        assert placement.intra_op_threads == 2
        assert placement.env["OMP_NUM_THREADS"] == "2"
        assert placement.env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"


def test_uuid_visible_devices_are_passed_on(
    fake_smi: Path, four_cpus: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-7d3f0e4a,GPU-5b1a9c2e")
    backend = CudaBackend()
    placements = backend.placements(backend.cores(), 2, 1)
    assert [p.env["CUDA_VISIBLE_DEVICES"] for p in placements] == ["GPU-7d3f0e4a", "GPU-5b1a9c2e"]
    assert all("CUDA_DEVICE_ORDER" not in p.env for p in placements)


def test_a_pipelined_copy_sees_several_gpus(fake_smi: Path, four_cpus: None) -> None:
    (placement,) = CudaBackend().placements([0, 1], 1, 2)
    assert placement.env["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert placement.cpu_affinity == (0, 1, 2, 3)


def test_fingerprint_names_the_gpus(fake_smi: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert CudaBackend().fingerprint() == {
        "device_type": "cuda", "devices": ["NVIDIA A10G", "NVIDIA A10G"], "count": 2,
    }
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-7d3f0e4a")
    assert CudaBackend().fingerprint()["devices"] == ["NVIDIA A10G"]


@pytest.mark.skipif(not CudaBackend().is_available(), reason="needs an NVIDIA GPU and torch")
def test_benchmarks_on_a_real_gpu() -> None:
    import torch
    from fakes.neuron.neuron_models import TinyNet

    import pytest_neuronperf as npf

    reports = npf.benchmark(TinyNet, torch.rand(1, 8), device_type="cuda", n_models=1,
                            workers_per_model=1, duration=0.3, warmup=0.05, verbosity=0)
    assert [(r["status"], r["device_type"]) for r in reports] == [("ok", "cuda")]


@pytest.mark.skipif(not CudaBackend().is_available(), reason="needs an NVIDIA GPU and torch")
def test_generates_on_a_real_gpu() -> None:
    from llm_models import TinyLlama

    import pytest_neuronperf as npf

    [report] = npf.benchmark(TinyLlama, [[1, 2, 3]], scenario="generate", output_tokens=8,
                             device_type="cuda", n_models=1, workers_per_model=1,
                             duration=0.5, warmup=0, verbosity=0)
    assert (report["status"], report["device_type"], report["output_tokens_avg"]) == (
        "ok", "cuda", 8), report["error"]


@pytest.mark.skipif(not CudaBackend().is_available(), reason="needs an NVIDIA GPU and torch")
def test_mixed_runs_under_the_documented_autocast_dtype_on_a_gpu(pid_dir: Path) -> None:
    import json

    import torch
    from api_models import ReportsPrecision, label_cast
    from doc_blocks import stated

    import pytest_neuronperf as npf

    [on_cuda] = stated("neuronperf-api.md", r"`mixed`: \w+ on CPU, (\w+) on CUDA")
    [report] = npf.torch.benchmark(ReportsPrecision, torch.rand(1, 4), cast_modes="mixed",
                                   setup_fn=label_cast, device_type="cuda", n_models=1,
                                   workers_per_model=1, duration=0.3, warmup=0.05, verbosity=0)
    assert report["status"] == "ok", report["error"]
    seen = json.loads((pid_dir / "precision-mixed.json").read_text())
    assert seen["autocast"] is True and seen["autocast_dtype"] == f"torch.{on_cuda}"
