"""Live progress of a perf test at a terminal: one line, rewritten as configurations start
(``neuronperf test_mlp: configuration 2 of 4, bs=8 n=1 w=1 p=1, ~9 s left``). Nothing at all
when the output is not a terminal or in a pytest-xdist worker."""

from __future__ import annotations

import time
from typing import Any

import pytest

from pytest_neuronperf.engine.progress import Progress


class TerminalProgress:
    """Draws one test's progress on pytest's terminal reporter with ``rewrite``."""

    def __init__(self, reporter: Any, test: str) -> None:
        self._reporter = reporter
        self._test = test
        self._shown = False
        self._started = time.monotonic()
        self.what = ""
        """Set by the caller around extra measurements (``recheck``, ``repeat``)."""

    def __call__(self, progress: Progress) -> None:
        if not self._shown:
            self._reporter.ensure_newline()
            self._shown = True
        what = f" {self.what}" if self.what else ""
        self._reporter.rewrite(
            f"neuronperf {self._test}{what}: configuration {progress.index} of {progress.total}, "
            f"{progress.label}, ~{progress.seconds_left:.0f} s left", yellow=True)

    def finish(self) -> None:
        """Leave a last line that says how long the test measured (pytest writes on after it)."""
        if self._shown:
            self._reporter.rewrite(
                f"neuronperf {self._test}: measured in {time.monotonic() - self._started:.0f} s")
            self._shown = False


def terminal_progress(config: pytest.Config, test: str) -> TerminalProgress | None:
    """A progress line for ``test``, or None where none should be drawn."""
    if getattr(config, "workerinput", None) is not None:
        return None
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or not reporter.isatty():
        return None
    return TerminalProgress(reporter, test)
