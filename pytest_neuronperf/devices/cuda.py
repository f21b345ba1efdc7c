"""CUDA backend: each model copy owns GPUs (usually one) and a disjoint share of the host CPUs.

GPUs are found without importing torch in the parent: from ``CUDA_VISIBLE_DEVICES`` when it is
set, else from ``nvidia-smi -L``. A copy sees only its own GPUs through ``CUDA_VISIBLE_DEVICES``,
so inside it the model always runs on ``cuda:0``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any

from pytest_neuronperf.devices.base import Placement, slice_cores
from pytest_neuronperf.devices.cpu import thread_env, usable_cpus

VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"
DEVICE_ORDER = "CUDA_DEVICE_ORDER"
NVIDIA_SMI = "nvidia-smi"
NVIDIA_SMI_TIMEOUT_S = 20.0
GPU_LINE = re.compile(r"^GPU (\d+):")


def run_nvidia_smi(*args: str) -> str | None:
    """``nvidia-smi`` output, or None when it is missing or fails."""
    executable = shutil.which(NVIDIA_SMI)
    if executable is None:
        return None
    try:
        done = subprocess.run([executable, *args], capture_output=True, text=True,
                              timeout=NVIDIA_SMI_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def parse_gpu_list(text: str) -> list[int]:
    """GPU indices from ``nvidia-smi -L`` (``GPU 0: NVIDIA A10G (UUID: GPU-...)``)."""
    return [int(m.group(1)) for line in text.splitlines() if (m := GPU_LINE.match(line.strip()))]


def parse_visible_devices(value: str) -> list[str]:
    """The entries of ``CUDA_VISIBLE_DEVICES``, up to the first invalid one (as CUDA reads it)."""
    tokens: list[str] = []
    for raw in value.split(","):
        token = raw.strip()
        if not token or token.startswith("-"):
            break
        tokens.append(token)
    return tokens


def visible_tokens(environ: Mapping[str, str]) -> dict[int, str] | None:
    """Core id -> the ``CUDA_VISIBLE_DEVICES`` entry a copy gets, or None when unset.

    Integer entries keep their own ids; when any entry is a UUID (``GPU-...``, ``MIG-...``),
    ids are positions in the list and copies get the UUIDs.
    """
    if VISIBLE_DEVICES not in environ:
        return None
    tokens = parse_visible_devices(environ[VISIBLE_DEVICES])
    if all(token.isdigit() for token in tokens):
        return {int(token): token for token in dict.fromkeys(tokens)}
    return dict(enumerate(tokens))


def parse_gpu_names(text: str) -> list[tuple[str, str, str]]:
    """``(index, uuid, name)`` rows of ``nvidia-smi --query-gpu=index,uuid,name``."""
    rows = []
    for line in text.splitlines():
        parts = [part.strip() for part in line.split(",", 2)]
        if len(parts) == 3 and parts[0].isdigit():
            rows.append((parts[0], parts[1], parts[2]))
    return rows


def split_cpus(cpus: list[int], parts: int) -> list[tuple[int, ...]]:
    """``parts`` disjoint, near-equal consecutive groups of ``cpus``.

    With fewer CPUs than parts, copies take one CPU each, round robin (sharing is unavoidable).
    """
    if parts < 1:
        return []
    if len(cpus) < parts:
        return [(cpus[i % len(cpus)],) for i in range(parts)] if cpus else [()] * parts
    size, extra = divmod(len(cpus), parts)
    groups = []
    start = 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        groups.append(tuple(cpus[start:end]))
        start = end
    return groups


class CudaBackend:
    """Gives each copy its own GPU(s) via ``CUDA_VISIBLE_DEVICES`` and its own host CPUs."""

    name = "cuda"

    def is_available(self) -> bool:
        try:
            has_torch = importlib.util.find_spec("torch") is not None
        except (ImportError, ValueError):
            has_torch = False
        return has_torch and bool(self.cores())

    def cores(self) -> list[int]:
        tokens = visible_tokens(os.environ)
        if tokens is not None:
            return list(tokens)
        listing = run_nvidia_smi("-L")
        return parse_gpu_list(listing) if listing else []

    def placements(self, cores: list[int], n_models: int, pipeline_size: int) -> list[Placement]:
        gpus = slice_cores(cores, n_models, pipeline_size)
        tokens = visible_tokens(os.environ) or {}
        base_env: dict[str, str] = {}
        if VISIBLE_DEVICES not in os.environ and DEVICE_ORDER not in os.environ:
            base_env[DEVICE_ORDER] = "PCI_BUS_ID"  # CUDA numbers GPUs as nvidia-smi does
        placements = []
        for index, (slice_, cpus) in enumerate(zip(gpus, split_cpus(usable_cpus(), n_models),
                                                   strict=True)):
            threads = max(1, len(cpus))
            placements.append(Placement(
                device_type=self.name,
                copy_index=index,
                cores=slice_,
                env={**base_env, **thread_env(threads),
                     VISIBLE_DEVICES: ",".join(tokens.get(gpu, str(gpu)) for gpu in slice_)},
                cpu_affinity=cpus or None,
                intra_op_threads=threads,
                torch_device="cuda:0",
                synchronize="cuda",
            ))
        return placements

    def fingerprint(self) -> dict[str, Any]:
        cores = self.cores()
        tokens = visible_tokens(os.environ) or {}
        table = run_nvidia_smi("--query-gpu=index,uuid,name", "--format=csv,noheader")
        rows = parse_gpu_names(table or "")
        names = [gpu_name(tokens.get(gpu, str(gpu)), rows) for gpu in cores]
        return {"device_type": self.name, "devices": names, "count": len(cores)}


def gpu_name(token: str, rows: list[tuple[str, str, str]]) -> str:
    """The name of the GPU a ``CUDA_VISIBLE_DEVICES`` entry (index or UUID prefix) refers to."""
    for index, uuid, name in rows:
        if token == index or (not token.isdigit() and uuid.startswith(token)):
            return name
    return "unknown GPU"
