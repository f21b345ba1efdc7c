"""Device backends: built-ins by name, plus any registered through the plugin's hooks."""

from __future__ import annotations

import importlib

from pytest_neuronperf.devices.base import DeviceBackend, Placement, format_cores, slice_cores

BUILTIN_BACKENDS: dict[str, str] = {
    "cpu": "pytest_neuronperf.devices.cpu:CpuBackend",
    "cuda": "pytest_neuronperf.devices.cuda:CudaBackend",
    "neuron": "pytest_neuronperf.devices.neuron:NeuronBackend",
    "neuronx": "pytest_neuronperf.devices.neuron:NeuronxBackend",
}
AUTO_ORDER = ("neuronx", "neuron", "cuda", "cpu")

__all__ = ["DeviceBackend", "Placement", "format_cores", "slice_cores", "get_backend"]


def _builtin(name: str) -> DeviceBackend:
    module_name, _, attr = BUILTIN_BACKENDS[name].partition(":")
    backend: DeviceBackend = getattr(importlib.import_module(module_name), attr)()
    return backend


def get_backend(name: str, extra: dict[str, DeviceBackend] | None = None) -> DeviceBackend:
    """The backend called ``name`` (``auto``: the first available accelerator, else ``cpu``)."""
    extra = extra or {}
    if name == "auto":
        for candidate in (*extra, *AUTO_ORDER):
            try:
                backend = extra.get(candidate) or _builtin(candidate)
            except ImportError:
                continue
            if backend.is_available():
                return backend
        return _builtin("cpu")
    if name in extra:
        return extra[name]
    if name not in BUILTIN_BACKENDS:
        known = ", ".join(["auto", *BUILTIN_BACKENDS, *extra])
        raise ValueError(f"unknown device {name!r}: choose one of {known}")
    backend = _builtin(name)
    if not backend.is_available():
        raise ValueError(f"device {name!r} is not available on this machine")
    return backend
