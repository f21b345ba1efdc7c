"""The parent's one waiting loop over child processes (model copies, the compile process).

``next_messages`` blocks until some of the watched processes have sent a message, reads them,
and turns every way a process can be lost (deadline passed, exited, pipe closed, a frame that is
not of the protocol) into :class:`ProcessLost` with a sentence saying which and why; a process
that timed out first writes its threads' Python stacks to its log, which that sentence ends
with. What the
messages mean is the caller's business (``engine.runner.collect``,
``compiling.supervisor.supervise``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any

from pytest_neuronperf.engine.processes import ChildProcess
from pytest_neuronperf.protocol import messages

TIMEOUT_TAIL_LINES = 60
"""Output lines a timeout's error shows: room for the stack of every thread of the process."""


class ProcessLost(Exception):
    """A watched process timed out, died, closed its pipe or sent garbage; kill it."""

    def __init__(self, key: int, reason: str) -> None:
        super().__init__(reason)
        self.key = key
        """The process's key in the mapping given to :func:`next_messages`."""


@dataclass(frozen=True)
class Deadline:
    """A point on the monotonic clock, and the limit it came from (for the message)."""

    at: float
    limit_s: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        """The deadline ``seconds`` from now."""
        return cls(time.monotonic() + seconds, seconds)

    def remaining(self) -> float:
        """Seconds left (0 or less once passed)."""
        return self.at - time.monotonic()


def next_messages(
    procs: Mapping[int, ChildProcess], deadline: Deadline | None, phase: str
) -> list[tuple[int, messages.Message]]:
    """One message from each of ``procs`` that has one, as soon as any has (at least one).

    ``phase`` says what the processes are doing, for :class:`ProcessLost`'s message. A process
    that exited after writing its last message is read, not reported dead.
    """
    while True:
        remaining = None if deadline is None else max(0.0, deadline.remaining())
        if deadline is not None and deadline.remaining() <= 0:
            key, proc = next(iter(procs.items()))
            proc.dump_stacks()
            raise ProcessLost(key, f"{proc.label} timed out after {deadline.limit_s:g} s while "
                                   f"{phase}; it was killed (its Python stacks when it was "
                                   f"stopped end the output below)"
                                   + proc.formatted_tail(TIMEOUT_TAIL_LINES))
        by_conn: dict[Any, int] = {proc.conn: key for key, proc in procs.items()}
        by_sentinel = {proc.sentinel: key for key, proc in procs.items()}
        ready = wait([*by_conn, *by_sentinel], remaining)
        received = [(by_conn[obj], read(by_conn[obj], procs[by_conn[obj]], phase))
                    for obj in ready if not isinstance(obj, int)]
        if received:
            return received
        for key in (by_sentinel[obj] for obj in ready if isinstance(obj, int)):
            proc = procs[key]
            if not proc.conn.poll():  # else its last message is still to be read
                raise ProcessLost(key, f"{proc.label} died ({proc.exit_description()}) while "
                                       f"{phase}" + proc.formatted_tail())


def read(key: int, proc: ChildProcess, phase: str) -> messages.Message:
    """The next message from ``proc``, or :class:`ProcessLost`."""
    try:
        return messages.receive(proc.conn)
    except (EOFError, OSError) as exc:
        ended = proc.exit_description()
        how = "closed its pipe" if ended == "still running" else "died"
        raise ProcessLost(key, f"{proc.label} {how} ({ended}) while {phase}"
                          + proc.formatted_tail()) from exc
    except messages.ProtocolError as exc:
        raise ProcessLost(key, f"{proc.label} sent a bad message while {phase}: {exc}") from exc
