"""The pytest projects the plugin's own tests run with ``pytester``; readers of what they write.

A project is source text for ``pytester.makepyfile``. Most use the sleep model: its latency is a
sleep, which hardly depends on CPU load, so the verdicts in those tests are about the plugin, not
about this machine's noise. ``$SLOWDOWN`` scales the sleep; :data:`SLOWER` is a slowdown far
beyond any tolerance and any noise (a 1.5x slowdown of a 0.6 s run is not: load can fake it).
The fixtures that write these projects and run pytest on them are in ``conftest.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

SLEEP_MODEL = '''
import os
import time

import numpy as np
import pytest


class SleepModel:
    def __init__(self):
        self.delay = 0.002 * float(os.environ.get("SLOWDOWN", "1"))

    def __call__(self, x):
        time.sleep(self.delay)
        return x


X = np.zeros((1, 4), dtype=np.float32)
'''

Run = Callable[..., pytest.RunResult]
"""The ``run`` fixture: ``run(*args)`` runs pytest in a subprocess in the pytester folder."""

SLOWER = "5"
"""``$SLOWDOWN`` of a regressed run: 5x the sleep, -80 % throughput, far beyond tolerance."""

SLEEP_MARKER: dict[str, Any] = {"batch_sizes": [1, 2], "n_models": 1, "workers_per_model": 1,
                                "duration": 0.6, "warmup": 0.05}
"""The sleep test's marker keywords: two configurations, ten windows each."""

BENCHMARK_SLEEP = '''reports = neuronperf.benchmark(SleepModel, X, framework="python")
    assert all(r["status"] == "ok" for r in reports), [r["error"] for r in reports]'''

PLAIN_TEST = '''

def test_not_perf():
    assert True
'''


ONE_CORE_DEVICE = '''
from pytest_neuronperf.devices.base import Placement
from pytest_neuronperf.devices.cpu import usable_cpus


class OneCoreDevice:
    """A custom backend: pretends the machine has one core, and marks its copies' env."""

    name = "onecore"

    def is_available(self):
        return True

    def cores(self):
        return usable_cpus()[:1]

    def placements(self, cores, n_models, pipeline_size):
        return [Placement(device_type="onecore", copy_index=i, cores=(cores[i],),
                          env={"ONECORE": "yes"}, cpu_affinity=(cores[i],))
                for i in range(n_models)]

    def fingerprint(self):
        return {"device_type": "onecore", "devices": ["imaginary accelerator"]}


def pytest_neuronperf_add_devices(config):
    return {"onecore": OneCoreDevice()}
'''
"""A conftest registering the ``onecore`` device backend (one core, an imaginary device)."""


class Code(str):
    """A marker value written as code, not as a literal: ``Code('os.environ["DEVICE"]')``."""

    def __repr__(self) -> str:
        return str(self)


def perf_test(name: str = "test_sleep", *, body: str = BENCHMARK_SLEEP, cases: int | str = 0,
              **keywords: Any) -> str:
    """A perf test function: ``SLEEP_MARKER`` updated with ``keywords`` (None drops one),
    parametrized over ``case`` when ``cases`` is given (a count, or the values' source)."""
    marker = {**SLEEP_MARKER, **keywords}
    arguments = ", ".join(f"{key}={value!r}" for key, value in marker.items()
                          if value is not None)
    values = f"range({cases})" if isinstance(cases, int) else cases
    parametrize = f'@pytest.mark.parametrize("case", {values})\n' if cases else ""
    return f'''

{parametrize}@pytest.mark.neuronperf({arguments})
def {name}(neuronperf{", case" if cases else ""}):
    {body}
'''


def sleep_tests(*, plain: bool = True, **keywords: Any) -> str:
    """A test module: the sleep model, ``test_sleep`` (see :func:`perf_test`) and, if ``plain``,
    ``test_not_perf``."""
    return SLEEP_MODEL + perf_test(**keywords) + (PLAIN_TEST if plain else "")


def load_json(path: Path) -> Any:
    """A JSON file's content."""
    return json.loads(Path(path).read_text())


def reports_of(path: Path) -> list[dict[str, Any]]:
    """The reports of a ``--neuronperf-json`` file."""
    reports: list[dict[str, Any]] = load_json(path)["reports"]
    return reports


def baseline_entries(path: Path) -> dict[str, dict[str, Any]]:
    """The baseline file's only machine section: test id -> configuration key -> entry."""
    [machine] = load_json(path)["machines"].values()
    tests: dict[str, dict[str, Any]] = machine["tests"]
    return tests
