"""Live progress of a perf test at a terminal: one line, rewritten as configurations start
(``neuronperf test_mlp: configuration 2 of 4, bs=8 n=1 w=1 p=1, ~9 s left``). Nothing at all
when the output is not a terminal or in a pytest-xdist worker."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import pytest

from pytest_neuronperf.engine.progress import Progress


class TerminalProgress:
    """Draws one test's progress on pytest's terminal reporter with ``rewrite``."""

    def __init__(self, reporter: Any, test: str, capture: Any = None, nodeid: str = "") -> None:
        self._reporter = reporter
        self._nodeid = nodeid
        self._capture = capture
        """pytest's capture manager: output capture is paused while the line is drawn (as
        pytest's live logging does), or the line would land in the test's captured output."""
        self._test = test
        self._shown = False
        self._started = time.monotonic()
        self.what = ""
        """Set by the caller around extra measurements (``recheck``, ``repeat``)."""

    def __call__(self, progress: Progress) -> None:
        what = f" {self.what}" if self.what else ""
        with self._uncaptured():
            if not self._shown:
                self._reporter.ensure_newline()
                self._shown = True
            self._reporter.rewrite(
                f"neuronperf {self._test}{what}: configuration {progress.index} of "
                f"{progress.total}, {progress.label}, ~{progress.seconds_left:.0f} s left",
                yellow=True, erase=True)

    def finish(self) -> None:
        """Leave a last line that says how long the test measured (pytest writes on after it)."""
        if self._shown:
            with self._uncaptured():
                self._reporter.rewrite(f"neuronperf {self._test}: measured in "
                                       f"{time.monotonic() - self._started:.0f} s", erase=True)
                if self._nodeid and self._reporter.verbosity <= 0:
                    # pytest writes the test's result letter where its line left off: start
                    # a new line with the file name, as pytest does for a new file
                    self._reporter.write_fspath_result(self._nodeid, "")
            self._shown = False

    def _uncaptured(self) -> contextlib.AbstractContextManager[Any]:
        if self._capture is None:
            return contextlib.nullcontext()
        disabled: contextlib.AbstractContextManager[Any] = (
            self._capture.global_and_fixture_disabled())
        return disabled


def terminal_progress(config: pytest.Config, test: str, nodeid: str = ""
                      ) -> TerminalProgress | None:
    """A progress line for ``test``, or None where none should be drawn."""
    if getattr(config, "workerinput", None) is not None:
        return None
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or not reporter.isatty():
        return None
    return TerminalProgress(reporter, test, config.pluginmanager.get_plugin("capturemanager"),
                            nodeid)
