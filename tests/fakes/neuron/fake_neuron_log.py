"""Shared by the fake Neuron runtimes: append one JSON line per event to the contract log.

The log path comes from a file named ``FAKE_NEURON_LOG`` in any directory on ``sys.path``
(tests put a per-test directory there), else from the ``FAKE_NEURON_LOG`` environment variable.
The file wins because model processes get the parent's ``sys.path`` with every process they
start, whereas their environment may be that of a forkserver started by an earlier test.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

SIDECAR = "FAKE_NEURON_LOG"
PROFILE_VARIABLES = {"inspect": "NEURON_RT_INSPECT_ENABLE",
                     "inspect_dir": "NEURON_RT_INSPECT_OUTPUT_DIR",
                     "profile_dir": "NEURON_PROFILE"}
"""The runtimes' documented profile capture variables, logged with every event."""


def log_path() -> str | None:
    """Where events go, looked up afresh on every call (tests change it between runs)."""
    for entry in sys.path:
        sidecar = Path(entry or ".") / SIDECAR
        if sidecar.is_file():
            return sidecar.read_text().strip() or None
    return os.environ.get(SIDECAR) or None


def record(event: str, module: str, **fields: Any) -> None:
    """Append ``{"event", "module", "pid", "visible_cores", ...}`` as one JSON line."""
    path = log_path()
    if path is None:
        return
    line = {
        "event": event,
        "module": module,
        "pid": os.getpid(),
        "visible_cores": os.environ.get("NEURON_RT_VISIBLE_CORES"),
        **{name: os.environ.get(variable) for name, variable in PROFILE_VARIABLES.items()},
        **fields,
    }
    with open(path, "a") as log:
        log.write(json.dumps(line, default=repr) + "\n")


def describe(value: Any) -> Any:
    """A JSON-friendly description of a trace argument (tensors become their shapes)."""
    if isinstance(value, tuple | list):
        return [describe(v) for v in value]
    shape = getattr(value, "shape", None)
    if shape is not None:
        return {"shape": list(shape)}
    return repr(value)


def capture() -> None:
    """What the runtime does when its profile capture is on: write files where it is told
    (``NEURON_RT_INSPECT_OUTPUT_DIR``: a per-process folder of NEFF and NTFF files, as the
    Neuron runtime names them; ``NEURON_PROFILE``: Inf1's raw profile)."""
    if os.environ.get("NEURON_RT_INSPECT_ENABLE") == "1":
        folder = Path(os.environ.get("NEURON_RT_INSPECT_OUTPUT_DIR", "./output"))
        folder = folder / f"i-fake_pid_{os.getpid()}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "neff_1.neff").write_bytes(b"fake neff")
        (folder / "1_instid_0_vnc_0.ntff").write_bytes(b"fake ntff")
    if os.environ.get("NEURON_PROFILE"):
        Path(os.environ["NEURON_PROFILE"], f"fake_{os.getpid()}.profile").write_bytes(b"fake")
