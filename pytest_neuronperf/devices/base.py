"""The device-backend protocol and the placement record it hands to each model copy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Placement:
    """Where one model copy runs, as plain data the worker process applies before loading.

    The parent computes it with a :class:`DeviceBackend`; the worker applies it without importing
    any device module, so a custom backend only has to describe its placement.
    """

    device_type: str
    copy_index: int
    cores: tuple[int, ...]
    """The units this copy owns: logical CPUs, GPU indices or NeuronCore indices."""
    env: dict[str, str] = field(default_factory=dict)
    """Environment variables set in the worker before any framework runtime starts."""
    cpu_affinity: tuple[int, ...] | None = None
    """Logical CPUs the worker process is pinned to (``sched_setaffinity``); None leaves it."""
    intra_op_threads: int = 1
    """Thread count for torch / TensorFlow intra-op pools and OpenMP/MKL."""
    torch_device: str = "cpu"
    """Device string torch models and inputs are moved to (``cuda:0`` for a GPU copy)."""
    runtime_imports: tuple[str, ...] = ()
    """Modules imported before loading, e.g. ``torch_neuronx`` to register Neuron ops."""
    framework_runtime_imports: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Per-framework replacement of ``runtime_imports`` (``tensorflow`` -> its Neuron module)."""
    synchronize: str | None = None
    """``"cuda"``: the worker synchronises its stream before stopping each call's clock."""


@runtime_checkable
class DeviceBackend(Protocol):
    """A kind of device that model copies can be pinned to.

    A backend whose runtime captures profiles by itself may also define
    ``profiler_env(directory) -> dict[str, str]``: the variables that turn the capture on in a
    profile run's copies (``pytest_neuronperf.profiling``; the Neuron backends do)."""

    name: str

    def is_available(self) -> bool:
        """True when this machine has the device and its runtime."""
        ...

    def cores(self) -> list[int]:
        """The units (CPUs, GPUs, NeuronCores) this process may use, in order."""
        ...

    def placements(self, cores: list[int], n_models: int, pipeline_size: int) -> list[Placement]:
        """One placement per model copy, each on a disjoint slice of ``pipeline_size`` units."""
        ...

    def fingerprint(self) -> dict[str, Any]:
        """What decides speed on this device: its name and count (machine fingerprint fields)."""
        ...


def slice_cores(cores: list[int], n_models: int, pipeline_size: int) -> list[tuple[int, ...]]:
    """Cut ``cores`` into ``n_models`` disjoint consecutive slices of ``pipeline_size`` units."""
    if pipeline_size < 1:
        raise ValueError(f"pipeline size must be at least 1, got {pipeline_size}")
    needed = n_models * pipeline_size
    if needed > len(cores):
        raise ValueError(
            f"{n_models} model copies x pipeline size {pipeline_size} need {needed} cores, "
            f"but only {len(cores)} are available ({format_cores(cores)})"
        )
    return [
        tuple(cores[i * pipeline_size : (i + 1) * pipeline_size]) for i in range(n_models)
    ]


def format_cores(cores: list[int] | tuple[int, ...]) -> str:
    """Render core ids compactly: ``0-3,6``."""
    if not cores:
        return "none"
    ids = sorted(cores)
    parts: list[str] = []
    start = prev = ids[0]
    for core in [*ids[1:], None]:
        if core is not None and core == prev + 1:
            prev = core
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if core is not None:
            start = prev = core
    return ",".join(parts)
