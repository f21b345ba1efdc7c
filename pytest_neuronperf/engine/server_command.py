"""Start a server command for a test, wait until it answers, and stop it with everything it
started: ``start_server`` (and the ``neuronperf_server`` fixture, which stops it at teardown).

The command runs under a small supervisor process (``child.server_supervisor``) in a session
of its own, so Ctrl-C at the terminal reaches pytest only, and the supervisor, a subreaper tied
to this process by the kernel, keeps every process of the server in its tree. Stopping sends
the supervisor SIGTERM (it SIGTERMs the server's processes and SIGKILLs those left after
``stop_grace``), then SIGKILLs the session's group and every descendant still there
(``processes.kill_tree``). If this process dies without stopping it, even by SIGKILL, the
kernel tells the supervisor, which ends the server's tree the same way.

``{port}`` in the command is replaced by a free port on 127.0.0.1 (the server must bind it);
the server is ready when ``GET {url}{ready_path}`` answers with any status below 500.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from pytest_neuronperf.engine.processes import descendants_of, kill_tree

POLL_S = 0.05
OUTPUT_TAIL_LINES = 30
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
SUPERVISOR = ("import sys; sys.path.insert(0, sys.argv.pop(1)); "
              "from pytest_neuronperf.child.server_supervisor import main; "
              "sys.exit(main(sys.argv[1:]))")
"""The supervisor imports this copy of the plugin, whatever the server's environment says."""


class ServerFailed(RuntimeError):
    """The server did not start, or stopped answering before it was ready: the message says
    why, with the tail of its output."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class Server:
    """A running server command: ``url`` (``http://127.0.0.1:PORT``), ``port``, ``pid`` (its
    supervisor), :meth:`processes`, :meth:`output`, :meth:`stop` (also as a context manager)."""

    def __init__(self, command: Sequence[str], *, ready_path: str = "/v1/models",
                 timeout: float = 120.0, env: dict[str, str] | None = None,
                 cwd: str | os.PathLike[str] | None = None, log_dir: Path | None = None,
                 stop_grace: float = 3.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [str(part).replace("{port}", str(self.port)) for part in command]
        if not self.command:
            raise ValueError("start_server needs a command, e.g. ['vllm', 'serve', MODEL, "
                             "'--port', '{port}']")
        self.stop_grace = stop_grace
        self._own_log = log_dir is None
        """A log in the temporary folder is removed when the server stops (its tail is in any
        error message); one in ``log_dir`` is the caller's to keep."""
        directory = Path(log_dir) if log_dir is not None else Path(tempfile.gettempdir())
        handle, name = tempfile.mkstemp(prefix="neuronperf-server-", suffix=".log",
                                        dir=directory)
        self.log_path = Path(name)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", SUPERVISOR, PACKAGE_ROOT, str(os.getpid()),
                 str(stop_grace), "--", *self.command],
                stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True)
        finally:
            os.close(handle)
        atexit.register(self.stop)  # a script that forgets: stopped when it exits
        try:
            self.wait_until_ready(ready_path, timeout)
        except BaseException:  # not ready, or Ctrl-C while waiting: nothing is left running
            self.stop()
            raise

    @property
    def pid(self) -> int:
        """The supervisor's process id (the server is its child)."""
        return int(self.process.pid)

    def processes(self) -> list[psutil.Process]:
        """The supervisor and every live process under it."""
        try:
            return [psutil.Process(self.pid), *descendants_of(self.pid)]
        except psutil.Error:
            return []

    def output(self, lines: int = OUTPUT_TAIL_LINES) -> str:
        """The last lines the server wrote (stdout and stderr together)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])

    def wait_until_ready(self, ready_path: str, timeout: float) -> None:
        """Poll ``GET {url}{ready_path}`` until it answers, the server exits, or ``timeout``."""
        import httpx

        deadline = time.monotonic() + timeout
        target = self.url + ready_path
        while True:
            code = self.process.poll()
            if code is not None:
                raise ServerFailed(f"the server command exited ({describe_exit(code)}) before "
                                   f"it answered {target}: {' '.join(self.command)}"
                                   + self.formatted_output())
            try:
                if httpx.get(target, timeout=1.0).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise ServerFailed(f"the server did not answer {target} within {timeout:g} s "
                                   f"(stopped): {' '.join(self.command)}"
                                   + self.formatted_output())
            time.sleep(POLL_S)

    def formatted_output(self) -> str:
        """The server's last output as a message suffix (empty when it wrote nothing)."""
        tail = self.output()
        return f"\n--- last output of the server ---\n{tail}" if tail else ""

    def stop(self) -> None:
        """Stop the server and everything it started (module docstring); idempotent."""
        atexit.unregister(self.stop)
        everything = self.processes()  # listed before anything dies: orphans move
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=self.stop_grace + 2.0)
        if self.process.poll() is None:  # the supervisor hangs: its group and tree, by force
            kill_tree(self.pid)
        for proc in everything[1:]:  # psutil checks each is still the process it listed
            with contextlib.suppress(psutil.Error):
                proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5.0)
        if self._own_log:
            self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def describe_exit(code: int) -> str:
    """``exit code 1`` or ``killed by SIGKILL``."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def start_server(command: Sequence[str], *, ready_path: str = "/v1/models",
                 timeout: float = 120.0, env: dict[str, str] | None = None,
                 cwd: str | os.PathLike[str] | None = None, log_dir: Path | None = None,
                 stop_grace: float = 3.0) -> Server:
    """Start ``command`` (``{port}`` becomes a free port) and return once it answers
    ``ready_path``; ``with start_server(...) as server:`` stops it and all it started."""
    return Server(command, ready_path=ready_path, timeout=timeout, env=env, cwd=cwd,
                  log_dir=log_dir, stop_grace=stop_grace)
