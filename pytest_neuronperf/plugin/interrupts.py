"""SIGTERM ends a pytest run as Ctrl-C does, so every cleanup runs (model copies are killed,
temporary log folders removed, the summary printed), instead of the process just vanishing."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType


def sigterm_as_interrupt() -> Callable[[], None]:
    """Make SIGTERM raise KeyboardInterrupt in the main thread; returns what undoes it.

    A handler someone else installed is left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return lambda: None
    signal.signal(signal.SIGTERM, _interrupt)

    def restore() -> None:
        if signal.getsignal(signal.SIGTERM) is _interrupt:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    return restore


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"{signal.Signals(signum).name} received")
