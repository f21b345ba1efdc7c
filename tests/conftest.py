"""Shared fixtures for the plugin's own tests."""

from __future__ import annotations

import os

import pytest

from pytest_neuronperf.devices.cpu import usable_cpus


@pytest.fixture
def cores() -> list[int]:
    """The logical CPUs available to this test process."""
    return usable_cpus()


@pytest.fixture
def two_cores(cores: list[int]) -> list[int]:
    """Two CPUs, or skip on a single-core machine."""
    if len(cores) < 2:
        pytest.skip("needs two cores")
    return cores[:2]


@pytest.fixture
def pid_dir(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """A directory where test models record the pids of their worker processes."""
    path = tmp_path / "pids"
    path.mkdir()
    monkeypatch.setenv("PID_DIR", str(path))
    return path


def alive(pid: int) -> bool:
    """True if ``pid`` runs and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False
    except OSError:
        return os.path.exists(f"/proc/{pid}")
