"""Top-level models the engine tests hand to worker processes (workers import them by name)."""

from __future__ import annotations

import ctypes
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


class Noop:
    """Returns its input: measures the harness itself."""

    def __call__(self, x: Any) -> Any:
        return x


class Sum2:
    """A two-input model: checks tuple inputs are unpacked."""

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        assert a.shape[0] == b.shape[0]
        return a + b


class ChecksBatch:
    """Fails unless every input's leading dimension equals the batch size in BATCH_CHECK."""

    def __call__(self, x: np.ndarray) -> np.ndarray:
        expected = int(os.environ["EXPECTED_BATCH"])
        if x.shape[0] != expected:
            raise AssertionError(f"got batch {x.shape[0]}, expected {expected}")
        return x


class Sleeper:
    """Sleeps 2 ms per call: a latency the harness must report faithfully."""

    def __call__(self, x: Any) -> Any:
        time.sleep(0.002)
        return x


class RaisesOnLoad:
    """Its constructor raises."""

    def __init__(self) -> None:
        raise RuntimeError("weights are missing: cannot build RaisesOnLoad")


class RaisesOnCall:
    """Raises on the first call."""

    def __call__(self, x: Any) -> Any:
        raise ValueError("shape mismatch inside RaisesOnCall")


class ExitsDuringCall:
    """Leaves with os._exit after writing to stderr."""

    def __call__(self, x: Any) -> Any:
        print("about to exit hard", file=sys.stderr, flush=True)
        os._exit(7)


class Segfaults:
    """Dereferences a null pointer."""

    def __call__(self, x: Any) -> Any:
        return ctypes.string_at(0)


class HangsOnLoad:
    """Never finishes loading; writes its pid to $PID_DIR first."""

    def __init__(self) -> None:
        record_pid()
        while True:
            time.sleep(1)


class HangsOnCall:
    """Records its pid, answers a few calls, then blocks forever."""

    def __init__(self) -> None:
        record_pid()
        self.calls = 0

    def __call__(self, x: Any) -> Any:
        self.calls += 1
        if self.calls > 50:
            time.sleep(3600)
        return x


class Chatty:
    """Prints on every call: output must not reach the parent's stdout or results."""

    def __call__(self, x: Any) -> Any:
        print("chatty model output", x.shape)
        return x


class ReportsPlacement:
    """Writes its pid, CPU affinity and thread env to $PLACEMENT_DIR/<pid>.json on load."""

    def __init__(self) -> None:
        info = {
            "pid": os.getpid(),
            "affinity": sorted(os.sched_getaffinity(0)),
            "omp": os.environ.get("OMP_NUM_THREADS"),
        }
        import torch

        info["torch_threads"] = torch.get_num_threads()
        path = Path(os.environ["PLACEMENT_DIR"]) / f"{os.getpid()}.json"
        path.write_text(json.dumps(info))

    def __call__(self, x: Any) -> Any:
        return x


def record_pid() -> None:
    """Leave a file named after this process's pid in $PID_DIR."""
    pid_dir = os.environ.get("PID_DIR")
    if pid_dir:
        (Path(pid_dir) / str(os.getpid())).write_text("")


def make_noop() -> Noop:
    """A zero-argument factory."""
    return Noop()


def double(x: np.ndarray) -> np.ndarray:
    """A preprocess function."""
    return x * 2


def shape_of(out: np.ndarray) -> tuple[int, ...]:
    """A postprocess function."""
    return tuple(out.shape)


class Spins:
    """Busy-waits a fixed time per call (SPIN_MS, default 5 ms) on perf_counter: a fixed
    service time that holds the core, as a compute-bound model does."""

    def __init__(self) -> None:
        self.seconds = float(os.environ.get("SPIN_MS", "5")) / 1e3

    def __call__(self, x: Any) -> Any:
        deadline = time.perf_counter() + self.seconds
        while time.perf_counter() < deadline:
            pass
        return x


class Naps:
    """Sleeps NAP_MS (default 20 ms) per call: releases the GIL, so a copy's worker threads
    serve calls side by side."""

    def __init__(self) -> None:
        self.seconds = float(os.environ.get("NAP_MS", "20")) / 1e3

    def __call__(self, x: Any) -> Any:
        time.sleep(self.seconds)
        return x
