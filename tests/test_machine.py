"""Machine fingerprint and machine id."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pytest_neuronperf.gating import machine
from pytest_neuronperf.gating.machine import fingerprint, machine_id, version_changes

BASE = {
    "cpu": "AMD EPYC",
    "cores": 2,
    "device_type": "cpu",
    "devices": [],
    "python": "3.11",
    "torch": "2.12.0",
    "tensorflow": None,
    "numpy": "2.4.6",
}


def test_fingerprint_describes_this_machine() -> None:
    fp = fingerprint()
    assert fp["device_type"] == "cpu"
    assert fp["devices"] == []
    assert isinstance(fp["cpu"], str) and fp["cpu"]
    assert fp["cores"] >= 1
    assert fp["python"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert fp["numpy"] is not None
    assert {"torch", "tensorflow"} <= fp.keys()


def test_fingerprint_takes_devices_and_cores() -> None:
    fp = fingerprint("cuda", ["NVIDIA A10G", "NVIDIA A10G"], cores=8)
    assert fp["device_type"] == "cuda"
    assert fp["devices"] == ["NVIDIA A10G", "NVIDIA A10G"]
    assert fp["cores"] == 8


def test_missing_library_reads_as_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(machine.LIBRARIES, "torch", ("surely-not-an-installed-dist",))
    assert fingerprint()["torch"] is None


def test_fingerprint_does_not_import_frameworks() -> None:
    code = (
        "import sys; from pytest_neuronperf.gating.machine import fingerprint; fingerprint(); "
        "print('torch' in sys.modules, 'tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_machine_id_ignores_library_versions() -> None:
    upgraded = {**BASE, "torch": "2.13.0", "numpy": "2.5.0", "python": "3.12"}
    assert machine_id(upgraded) == machine_id(BASE)


@pytest.mark.parametrize(
    "change",
    [{"cores": 4}, {"cpu": "Intel Xeon"}, {"device_type": "cuda"}, {"devices": ["NVIDIA A10G"]}],
)
def test_machine_id_changes_with_what_decides_speed(change: dict[str, object]) -> None:
    assert machine_id({**BASE, **change}) != machine_id(BASE)


def test_machine_id_is_short_hex_and_ignores_device_order() -> None:
    one = machine_id({**BASE, "devices": ["a", "b"]})
    assert one == machine_id({**BASE, "devices": ["b", "a"]})
    assert len(one) == machine.MACHINE_ID_LENGTH and int(one, 16) >= 0


def test_version_changes_name_what_moved() -> None:
    new = {**BASE, "torch": "2.13.0", "tensorflow": "2.15.0"}
    assert version_changes(BASE, new) == [
        "torch 2.12.0 -> 2.13.0",
        "tensorflow not installed -> 2.15.0",
    ]
    assert version_changes(BASE, BASE) == []


def test_version_changes_include_extra_fields_but_not_speed_fields() -> None:
    old = {**BASE, "neuronx-cc": "2.14"}
    new = {**BASE, "cores": 4, "kernel": "6.1"}
    assert version_changes(old, new) == [
        "neuronx-cc 2.14 -> not installed",
        "kernel not recorded -> 6.1",
    ]
