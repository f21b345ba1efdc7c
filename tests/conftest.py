"""Shared fixtures for the plugin's own tests."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
from projects import sleep_tests

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


@pytest.fixture
def run(pytester: pytest.Pytester) -> Callable[..., pytest.RunResult]:
    """``run(*args)``: pytest in a subprocess in the pytester folder, as a user runs it."""

    def run_pytest(*args: str, **kwargs: Any) -> pytest.RunResult:
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, **kwargs)

    return run_pytest


@pytest.fixture
def perf_project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A project with one perf test of the sleep model (two configurations) and a plain test."""
    pytester.makepyfile(test_models=sleep_tests())
    return pytester
