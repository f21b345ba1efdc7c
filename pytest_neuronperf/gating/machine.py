"""Machine fingerprint (what a baseline was measured on) and the machine id baselines key on.

The id hashes only what decides speed (device kind and names, CPU model, usable cores), so a
library upgrade is still compared against the old baseline; ``version_changes`` names what
changed for the summary. Library versions come from package metadata: nothing here imports
torch or TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable, Mapping
from importlib import metadata
from typing import Any

from pytest_neuronperf.devices.cpu import cpu_model_name, usable_cpus

SPEED_KEYS = ("device_type", "devices", "cpu", "cores")
"""Fingerprint fields that decide speed: the machine id hashes these."""
LIBRARIES: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-intel"),
    "numpy": ("numpy",),
}
"""Library field -> the distributions that provide it, first installed one wins."""
OPTIONAL_LIBRARIES: dict[str, tuple[str, ...]] = {
    "torch-neuronx": ("torch-neuronx",),
    "torch-neuron": ("torch-neuron",),
    "tensorflow-neuron": ("tensorflow-neuron",),
    "neuronx-cc": ("neuronx-cc",),
    "neuron-cc": ("neuron-cc",),
}
"""Recorded only when installed: the Neuron stack changes speed as much as torch does."""
MACHINE_ID_LENGTH = 12


def fingerprint(
    device_type: str = "cpu", devices: Iterable[str] | None = None, cores: int | None = None
) -> dict[str, Any]:
    """What this machine is: device, CPU model, usable cores, Python and library versions."""
    fp: dict[str, Any] = {
        "cpu": cpu_model_name(),
        "cores": len(usable_cpus()) if cores is None else int(cores),
        "device_type": device_type,
        "devices": list(devices or []),
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
    }
    for field, dists in LIBRARIES.items():
        fp[field] = installed_version(dists)
    for field, dists in OPTIONAL_LIBRARIES.items():
        version = installed_version(dists)
        if version is not None:
            fp[field] = version
    return fp


def installed_version(distributions: Iterable[str]) -> str | None:
    """Version of the first installed distribution, read from metadata (no import), or None."""
    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def machine_id(fp: Mapping[str, Any], keys: Iterable[str] = SPEED_KEYS) -> str:
    """Short hex hash of the fingerprint fields that decide speed (not library versions)."""
    speed = {key: fp.get(key) for key in keys}
    devices = speed.get("devices")
    if isinstance(devices, list):
        speed["devices"] = sorted(str(d) for d in devices)
    text = json.dumps(speed, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:MACHINE_ID_LENGTH]


def identify(backend: Any, extra: Mapping[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """(machine id, fingerprint) of this machine with ``backend`` (a ``DeviceBackend``) as its
    device; ``extra`` fields (``pytest_neuronperf_fingerprint`` hooks) count in the id."""
    fp = fingerprint(backend.name, backend.fingerprint().get("devices") or [])
    fp.update(extra or {})
    return machine_id(fp, (*SPEED_KEYS, *(extra or {}))), fp


def describe(fp: Mapping[str, Any]) -> str:
    """``cpu, 2 cores, AMD EPYC``: what a fingerprint says about speed, in words."""
    return f"{fp.get('device_type')}, {fp.get('cores')} cores, {fp.get('cpu')}"


def mismatch_text(baseline: Any, machine_id: str, machines: Mapping[str, Mapping[str, Any]]
                  ) -> str:
    """The sentence for a baseline file with no results for this machine."""
    others = ", ".join(f"{mid} ({describe(fp)})" for mid, fp in machines.items()) or "none"
    return (f"baseline {baseline} has no results for this machine {machine_id}: every "
            f"configuration is NEW; it has: {others}")


def version_changes(old_fp: Mapping[str, Any], new_fp: Mapping[str, Any]) -> list[str]:
    """Versions that differ between two fingerprints, e.g. ``["torch 2.12.0 -> 2.13.0"]``."""
    libraries = [*LIBRARIES, *OPTIONAL_LIBRARIES]
    ordered = ["python", *libraries]
    extra = sorted((set(old_fp) | set(new_fp)) - set(ordered) - set(SPEED_KEYS))
    changes = []
    for key in [*ordered, *extra]:
        if key not in old_fp and key not in new_fp:
            continue
        old, new = old_fp.get(key), new_fp.get(key)
        if old != new:
            missing = "not installed" if key in libraries else "unset"
            before = _shown(old, missing) if key in old_fp else "not recorded"
            changes.append(f"{key} {before} -> {_shown(new, missing)}")
    return changes


def _shown(value: Any, missing: str) -> str:
    """A fingerprint value for the summary, ``missing`` when absent."""
    return missing if value is None else str(value)
