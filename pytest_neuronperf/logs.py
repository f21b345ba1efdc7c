"""The library's console output: its ``pytest_neuronperf`` log records on stderr, at the
verbosity a ``benchmark`` or ``compile`` call asked for (0 warnings, 1 progress, 2 debug),
and ``printable``: text read from files made safe to show at a terminal."""

from __future__ import annotations

import contextlib
import logging
import sys
import unicodedata
from collections.abc import Iterator
from typing import Any

LOGGER = "pytest_neuronperf"
VERBOSITY_LEVELS = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}


@contextlib.contextmanager
def console(verbosity: int) -> Iterator[logging.Logger]:
    """The library logger at ``verbosity`` for one call.

    When nothing in the program has configured logging (no handler on the logger or the root),
    a stderr handler is attached for the call only, so progress is seen; otherwise records go
    where the program sends them (under pytest: its log capture).
    """
    log = logging.getLogger(LOGGER)
    level = VERBOSITY_LEVELS.get(verbosity, logging.DEBUG)
    previous = log.level
    log.setLevel(level)
    handler = None
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("neuronperf: %(message)s"))
        log.addHandler(handler)
    try:
        yield log
    finally:
        log.setLevel(previous)
        if handler is not None:
            log.removeHandler(handler)


def printable(text: Any) -> str:
    """``text`` safe to print: control and format characters (terminal escape sequences,
    newlines, bidirectional overrides) shown as ``\\x1b``-style escapes. For text read from
    files (baselines, report files, model indexes) before it reaches a terminal."""
    text = str(text)
    if text.isprintable():
        return str(text)
    return "".join(
        ch if unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp") else
        (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        for ch in text
    )
