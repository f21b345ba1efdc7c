"""``multiprocess=False``: a model copy as a thread of the caller's process, for debugging.

The copy runs the same code as a model process (``child.main.run``) and talks to the runner
over the same pipe protocol, so a breakpoint or ``pdb`` in the model works. Its limits, by
construction: no CPU pinning and no per-copy environment (the placement is not applied); the
framework's thread pool size is set for the whole caller's process; several copies share one
interpreter (the GIL) and one framework runtime, so ``n_models > 1`` measures contention, not
scaling; the model's output goes to the caller's stdout; CPU and memory samples are those of
the whole caller's process; and a copy that hangs cannot be killed (the run's timeout still
reports it, but its thread stays until the process exits).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import traceback
from multiprocessing.connection import Connection

from pytest_neuronperf.child import main as child
from pytest_neuronperf.protocol import messages
from pytest_neuronperf.protocol.specs import WorkerSpec


class InProcessCopy:
    """A copy running in a thread here, with the parent end of its pipe (``ModelProcess``'s
    interface: ``conn``, ``sentinel``, ``spec``, ``kill``, ``exit_description``)."""

    role = "copy in the caller's process"

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.conn, child_conn = multiprocessing.Pipe(duplex=True)
        self._done_read, self._done_write = os.pipe()
        self._error: str | None = None
        self._thread = threading.Thread(target=self._run, args=(child_conn,), daemon=True,
                                        name=f"neuronperf-copy-{spec.placement.copy_index}")
        self._thread.start()

    def _run(self, conn: Connection) -> None:
        try:
            child.run(conn, self.spec, exit_with_parent=False)
        except BaseException:  # noqa: BLE001 - every failure must reach the runner as a message
            self._error = traceback.format_exc()
            with contextlib.suppress(OSError):
                messages.send(conn, messages.Failed(self._error))
        finally:
            os.close(self._done_write)

    @property
    def sentinel(self) -> int:
        """Becomes readable when the copy's thread ends."""
        return self._done_read

    @property
    def pid(self) -> int:
        """This process."""
        return os.getpid()

    def exit_description(self) -> str:
        """How the copy's thread ended."""
        if self._thread.is_alive():
            return "still running"
        return "raised" if self._error else "finished"

    @property
    def label(self) -> str:
        """How error messages name the copy."""
        return f"copy {self.spec.placement.copy_index}"

    def formatted_tail(self, lines: int = 0) -> str:
        """No separate output: the copy writes to this process's stdout and stderr."""
        return ""

    def dump_stacks(self) -> None:
        """Nothing to do: the copy's thread is in this process, whose stacks the caller has."""

    def kill(self, join_timeout: float = 5.0) -> None:
        """Close the pipe (an idle copy then stops) and wait for the thread a moment."""
        with contextlib.suppress(OSError):
            self.conn.close()
        self._thread.join(timeout=join_timeout)
        if not self._thread.is_alive():
            with contextlib.suppress(OSError):
                os.close(self._done_read)
