"""pytest-neuronperf's own hooks (added with ``pytest_addhooks``); implement them in a conftest
or a plugin."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_neuronperf.devices.base import DeviceBackend
    from pytest_neuronperf.gating.verdicts import Judgement, Verdict
    from pytest_neuronperf.reports import Report


def pytest_neuronperf_add_devices(config: pytest.Config) -> dict[str, DeviceBackend] | None:
    """Return device backends to register, by name (usable as ``device=`` and on the command
    line). Each implements ``pytest_neuronperf.devices.base.DeviceBackend``."""


def pytest_neuronperf_add_frameworks(config: pytest.Config) -> dict[str, str] | None:
    """Return framework adapters to register: ``name -> "module:attribute"`` of a class that
    implements ``pytest_neuronperf.frameworks.base.FrameworkAdapter`` (imported in workers)."""


def pytest_neuronperf_fingerprint(
    config: pytest.Config, fingerprint: dict[str, Any]
) -> dict[str, Any] | None:
    """Return extra machine-fingerprint fields (e.g. an EC2 instance type). They are stored with
    the baseline and, since they describe the machine, enter its machine id."""


@pytest.hookspec(firstresult=True)
def pytest_neuronperf_verdict(
    config: pytest.Config, report: Report, judgement: Judgement
) -> Verdict | str | None:
    """Return a verdict to replace the computed one for this report (or None to keep it)."""
