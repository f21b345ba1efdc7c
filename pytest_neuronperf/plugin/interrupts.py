"""SIGTERM ends a pytest run as Ctrl-C does, so every cleanup runs (model copies are killed,
temporary log folders removed, the summary printed), instead of the process just vanishing."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any


def sigterm_as_interrupt() -> Callable[[], None]:
    """Make SIGTERM raise KeyboardInterrupt in the main thread; returns what undoes it.

    A handler someone else installed is left alone, except coverage.py's (see
    :func:`only_saves_coverage`).
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL and not only_saves_coverage(previous):
        return lambda: None
    signal.signal(signal.SIGTERM, _interrupt)

    def restore() -> None:
        if signal.getsignal(signal.SIGTERM) is _interrupt:
            signal.signal(signal.SIGTERM, previous)

    return restore


def only_saves_coverage(handler: Any) -> bool:
    """True for coverage.py's SIGTERM handler (its ``sigterm = true`` setting): it saves the
    measurement and kills the process again, skipping every cleanup. Replacing it loses
    nothing, since the orderly exit after the interrupt saves the measurement too."""
    owner = getattr(handler, "__self__", None)
    return type(owner).__module__.startswith("coverage") and handler.__name__ == "_on_sigterm"


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"{signal.Signals(signum).name} received")
