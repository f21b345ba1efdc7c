"""pytest entry point (options, marker, fixture, hook wiring)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "neuronperf(**kwargs): benchmark configuration")
