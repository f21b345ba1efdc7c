"""AWS Neuron backends: each model copy owns a consecutive range of NeuronCores.

``neuron`` drives Inf1 through ``torch_neuron``; ``neuronx`` drives Inf2/Trn1 through
``torch_neuronx``. Both find NeuronCores with ``neuron-ls --json-output`` (or the driver's sysfs
tree when the tool is missing), restricted to a ``NEURON_RT_VISIBLE_CORES`` the parent already
has, and give copy *i* ``NEURON_RT_VISIBLE_CORES=start-end`` for its slice. The parent never
imports a Neuron runtime: only model processes do, after their cores are set.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_neuronperf.devices.base import Placement, format_cores, slice_cores
from pytest_neuronperf.devices.cpu import thread_env

SYSFS_ROOT = Path("/sys/devices/virtual/neuron_device")
NEURON_LS = "neuron-ls"
NEURON_LS_FALLBACK = Path("/opt/aws/neuron/bin/neuron-ls")
NEURON_LS_TIMEOUT_S = 20.0
VISIBLE_CORES = "NEURON_RT_VISIBLE_CORES"
NUM_CORES = "NEURON_RT_NUM_CORES"
INSPECT_ENABLE = "NEURON_RT_INSPECT_ENABLE"
INSPECT_OUTPUT_DIR = "NEURON_RT_INSPECT_OUTPUT_DIR"
PROFILE_DIR_INF1 = "NEURON_PROFILE"
"""The runtimes' profile capture variables, set only in a profile run's copies (never in a
measured one: the capture must start with the process)."""
HOST_THREADS = 1
"""Host-side threads per copy: the NeuronCores do the work, the host only feeds them."""


@dataclass(frozen=True)
class NeuronDevice:
    """One Neuron device (chip) and the global ids of its NeuronCores."""

    index: int
    core_ids: tuple[int, ...]
    name: str | None = None


@dataclass(frozen=True)
class Inventory:
    """What ``neuron-ls`` or sysfs reports about this machine."""

    devices: tuple[NeuronDevice, ...]
    instance_type: str | None = None
    source: str = "none"
    """``neuron-ls``, ``sysfs`` or ``none``."""

    @property
    def cores(self) -> list[int]:
        """Every NeuronCore id, in device order."""
        return [core for device in self.devices for core in device.core_ids]


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _first(mapping: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if mapping.get(key) is not None:
            return mapping[key]
    return None


def _device_entries(data: Any) -> tuple[list[Any], Mapping[str, Any]]:
    """The per-device records and the top-level object (empty when the output is a list)."""
    if isinstance(data, list):
        return data, {}
    if isinstance(data, dict):
        for key in ("neuron_devices", "devices"):
            if isinstance(data.get(key), list):
                return data[key], data
    raise ValueError("neuron-ls JSON is neither a list of devices nor an object holding one")


def parse_neuron_ls(text: str) -> Inventory:
    """Devices and NeuronCore ids from ``neuron-ls --json-output``.

    The documented shape is a list of device objects (``neuron_device``, ``nc_count``, and on
    recent tools ``neuroncore_ids``); an object wrapping that list under ``neuron_devices`` with
    ``instance_type`` beside it is accepted too. Without ``neuroncore_ids``, cores are numbered
    consecutively in device order, as the runtime numbers them.
    """
    entries, top = _device_entries(json.loads(text))
    records = [entry for entry in entries if isinstance(entry, dict)]
    records.sort(key=lambda r: _as_int(r.get("neuron_device")) or 0)
    devices: list[NeuronDevice] = []
    next_core = 0
    for position, record in enumerate(records):
        index = _as_int(record.get("neuron_device"))
        ids = record.get("neuroncore_ids")
        if isinstance(ids, list) and ids and all(_as_int(i) is not None for i in ids):
            core_ids = tuple(int(i) for i in ids)
        else:
            count = _as_int(_first(record, "nc_count", "neuroncore_count", "core_count")) or 0
            core_ids = tuple(range(next_core, next_core + count))
        if core_ids:
            next_core = max(core_ids) + 1
        name = _first(record, "device_name", "name", "model")
        devices.append(NeuronDevice(
            index=position if index is None else index,
            core_ids=core_ids,
            name=str(name) if name is not None else None,
        ))
    instance = _first(top, "instance_type", "instance-type")
    return Inventory(tuple(devices), str(instance) if instance else None, "neuron-ls")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def read_sysfs(root: Path = SYSFS_ROOT) -> Inventory:
    """Devices from the driver's sysfs tree (``neuronN/core_count``), numbered consecutively."""
    try:
        names = [p.name for p in root.iterdir() if p.name.startswith("neuron")]
    except OSError:
        return Inventory(())
    indexed = sorted((int(n[6:]), n) for n in names if n[6:].isdigit())
    devices: list[NeuronDevice] = []
    instance_type: str | None = None
    next_core = 0
    for index, name in indexed:
        count = _as_int(_read(root / name / "core_count") or "") or 0
        arch = root / name / "info" / "architecture"
        devices.append(NeuronDevice(index, tuple(range(next_core, next_core + count)),
                                    _read(arch / "device_name")))
        instance_type = instance_type or _read(arch / "instance_type")
        next_core += count
    return Inventory(tuple(devices), instance_type, "sysfs" if devices else "none")


def find_neuron_ls() -> str | None:
    """``neuron-ls`` on PATH, else where the Neuron tools package installs it."""
    found = shutil.which(NEURON_LS)
    if found:
        return found
    return str(NEURON_LS_FALLBACK) if NEURON_LS_FALLBACK.is_file() else None


def query_neuron_ls(executable: str) -> Inventory | None:
    """Run ``neuron-ls --json-output``; None when it fails or prints something unreadable."""
    try:
        done = subprocess.run(
            [executable, "--json-output"], capture_output=True, text=True,
            timeout=NEURON_LS_TIMEOUT_S, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0 or not done.stdout.strip():
        return None
    try:
        return parse_neuron_ls(done.stdout)
    except ValueError:  # json.JSONDecodeError is a ValueError
        return None


def discover(neuron_ls: str | None = None, sysfs_root: Path = SYSFS_ROOT) -> Inventory:
    """This machine's Neuron devices: ``neuron-ls`` first, the sysfs tree when that fails."""
    executable = neuron_ls or find_neuron_ls()
    sysfs = read_sysfs(sysfs_root)
    if executable:
        inventory = query_neuron_ls(executable)
        if inventory is not None and inventory.cores:
            return with_sysfs_names(inventory, sysfs)
    return sysfs


def with_sysfs_names(inventory: Inventory, sysfs: Inventory) -> Inventory:
    """Fill device and instance names ``neuron-ls`` left out from the sysfs tree."""
    names = {device.index: device.name for device in sysfs.devices}
    devices = tuple(
        device if device.name else NeuronDevice(device.index, device.core_ids,
                                                 names.get(device.index))
        for device in inventory.devices
    )
    return Inventory(devices, inventory.instance_type or sysfs.instance_type, inventory.source)


def parse_visible_cores(spec: str) -> list[int]:
    """NeuronCore ids in a ``NEURON_RT_VISIBLE_CORES`` value: ``3``, ``0-3`` or ``0,2``."""
    cores: list[int] = []
    for part in spec.replace(" ", "").split(","):
        if not part:
            continue
        first, sep, last = part.partition("-")
        if not first.isdigit() or (sep and not last.isdigit()):
            raise ValueError(
                f"{VISIBLE_CORES}={spec!r} is not a core id, range or list (e.g. 3, 0-3, 0,2)"
            )
        start, end = int(first), int(last) if sep else int(first)
        if end < start:
            raise ValueError(f"{VISIBLE_CORES}={spec!r} has a descending range {part!r}")
        cores.extend(range(start, end + 1))
    return list(dict.fromkeys(cores))


def restrict_to_environment(cores: list[int], environ: Mapping[str, str]) -> list[int]:
    """The cores the parent may hand out, given its own ``NEURON_RT_*`` settings.

    ``NEURON_RT_VISIBLE_CORES`` selects cores by id; without it, ``NEURON_RT_NUM_CORES`` caps
    how many are used (the first ones).
    """
    visible = environ.get(VISIBLE_CORES, "").strip()
    if visible:
        allowed = set(parse_visible_cores(visible))
        return [core for core in cores if core in allowed]
    count = _as_int(environ.get(NUM_CORES, "").strip())
    if count is not None and count > 0:
        return cores[:count]
    return cores


def core_range(cores: tuple[int, ...]) -> str:
    """``start-end`` for a consecutive slice, the form ``NEURON_RT_VISIBLE_CORES`` takes."""
    ordered = sorted(cores)
    if ordered != list(range(ordered[0], ordered[0] + len(ordered))):
        raise ValueError(
            f"NeuronCores {format_cores(ordered)} are not consecutive, but a model copy needs a "
            f"range (start-end): choose a pipeline size that divides each consecutive group, or "
            f"set {VISIBLE_CORES} to a single range"
        )
    return f"{ordered[0]}-{ordered[-1]}"


class NeuronBackendBase:
    """Shared logic of the Neuron backends; subclasses name the device and its runtime."""

    name = "neuron"
    runtime_module = "torch_neuron"
    tensorflow_runtime_module = "tensorflow_neuron"

    def __init__(self, neuron_ls: str | None = None, sysfs_root: Path = SYSFS_ROOT) -> None:
        self._neuron_ls = neuron_ls
        self._sysfs_root = sysfs_root
        self._inventory: Inventory | None = None

    def inventory(self) -> Inventory:
        """The devices on this machine (queried once per backend instance)."""
        if self._inventory is None:
            self._inventory = discover(self._neuron_ls, self._sysfs_root)
        return self._inventory

    def runtime_installed(self) -> bool:
        """True when a runtime module (torch or TensorFlow) can be imported (not imported here)."""
        for module in (self.runtime_module, self.tensorflow_runtime_module):
            try:
                if importlib.util.find_spec(module) is not None:
                    return True
            except (ImportError, ValueError):
                continue
        return False

    def is_available(self) -> bool:
        return self.runtime_installed() and bool(self.cores())

    def cores(self) -> list[int]:
        return restrict_to_environment(self.inventory().cores, os.environ)

    def placements(self, cores: list[int], n_models: int, pipeline_size: int) -> list[Placement]:
        env = thread_env(HOST_THREADS)
        if NUM_CORES in os.environ:
            # Copies inherit the parent's environment; a core count that disagrees with the
            # visible range would make the runtime refuse to start, so it is made to agree.
            env[NUM_CORES] = str(pipeline_size)
        return [
            Placement(
                device_type=self.name,
                copy_index=index,
                cores=slice_,
                env={**env, VISIBLE_CORES: core_range(slice_)},
                cpu_affinity=None,
                intra_op_threads=HOST_THREADS,
                torch_device="cpu",
                runtime_imports=(self.runtime_module,),
                framework_runtime_imports={"tensorflow": (self.tensorflow_runtime_module,)},
            )
            for index, slice_ in enumerate(slice_cores(cores, n_models, pipeline_size))
        ]

    def fingerprint(self) -> dict[str, Any]:
        inventory = self.inventory()
        usable = set(self.cores())
        fallback = inventory.instance_type or self.name
        devices = [
            device.name or fallback
            for device in inventory.devices
            if usable.intersection(device.core_ids)
        ]
        found: dict[str, Any] = {"device_type": self.name, "devices": devices,
                                 "count": len(usable)}
        if inventory.instance_type:
            found["instance_type"] = inventory.instance_type
        return found


class NeuronBackend(NeuronBackendBase):
    """Inf1 NeuronCores, driven through ``torch_neuron``."""

    name = "neuron"
    runtime_module = "torch_neuron"

    def profiler_env(self, directory: str) -> dict[str, str]:
        """The Inf1 runtime's documented capture (TensorBoard's Neuron plugin reads it): raw
        profiles go to ``NEURON_PROFILE``, a folder that must exist before the model runs."""
        os.makedirs(directory, exist_ok=True)
        return {PROFILE_DIR_INF1: directory}


class NeuronxBackend(NeuronBackendBase):
    """Inf2 / Trn1 NeuronCores, driven through ``torch_neuronx``."""

    name = "neuronx"
    runtime_module = "torch_neuronx"
    tensorflow_runtime_module = "tensorflow_neuronx"

    def profiler_env(self, directory: str) -> dict[str, str]:
        """The Neuron runtime's documented environment-variable capture (any framework; Neuron
        Explorer and ``neuron-profile`` open its NEFF/NTFF files): system profile of the run,
        device profile of each model's first execution."""
        os.makedirs(directory, exist_ok=True)
        return {INSPECT_ENABLE: "1", INSPECT_OUTPUT_DIR: directory}
