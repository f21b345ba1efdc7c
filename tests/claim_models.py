"""Top-level models and functions for tests/test_claims.py (worker processes import them)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

PRE_POST_SLEEP_S = 0.004


class Identity:
    """Returns its input at once."""

    def __call__(self, x: Any) -> Any:
        return x


def slow_preprocess(x: np.ndarray) -> np.ndarray:
    """A preprocess step that takes a known time."""
    time.sleep(PRE_POST_SLEEP_S)
    return x


def slow_postprocess(out: np.ndarray) -> np.ndarray:
    """A postprocess step that takes a known time."""
    time.sleep(PRE_POST_SLEEP_S)
    return out


class ReportsThreadCaps:
    """Writes every thread cap it sees to $CAPS_DIR/<pid>.json on load."""

    def __init__(self) -> None:
        import torch

        info = {
            "affinity": sorted(os.sched_getaffinity(0)),
            "env": {k: os.environ.get(k) for k in (
                "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "NUMEXPR_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "CUSTOM_BACKEND_VAR")},
            "torch_threads": torch.get_num_threads(),
        }
        (Path(os.environ["CAPS_DIR"]) / f"{os.getpid()}.json").write_text(json.dumps(info))

    def __call__(self, x: Any) -> Any:
        return x


class ReportsTensorflowThreads:
    """A TensorFlow model that records TF's intra/inter-op thread settings on load."""

    def __init__(self) -> None:
        import tensorflow as tf

        info = {
            "intra": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter": tf.config.threading.get_inter_op_parallelism_threads(),
            "affinity": sorted(os.sched_getaffinity(0)),
        }
        (Path(os.environ["CAPS_DIR"]) / f"tf-{os.getpid()}.json").write_text(json.dumps(info))

    def __call__(self, x: Any) -> Any:
        return x


class BarrierProbe:
    """The first copy to load takes a second longer; every copy logs each call's start time
    (monotonic clock, shared by all processes) to $PROBE_DIR."""

    def __init__(self) -> None:
        directory = Path(os.environ["PROBE_DIR"])
        try:
            os.close(os.open(directory / "slow", os.O_CREAT | os.O_EXCL))
            time.sleep(1.0)
            (directory / "slow-loaded").write_text(str(time.monotonic_ns()))
        except FileExistsError:
            pass
        self.log = open(directory / f"calls-{os.getpid()}", "a")  # noqa: SIM115

    def __call__(self, x: Any) -> Any:
        self.log.write(f"{time.monotonic_ns()}\n")
        self.log.flush()
        time.sleep(0.001)
        return x


class ReportsForkParent:
    """Records what the process it was forked from is, and how many threads that one runs."""

    def __init__(self) -> None:
        import torch

        torch.ones(64, 64) @ torch.ones(64, 64)  # this copy starts its runtime: its own business
        parent = os.getppid()
        info = {
            "cmdline": Path(f"/proc/{parent}/cmdline").read_bytes().replace(b"\0", b" ").decode(),
            "parent_threads": len(os.listdir(f"/proc/{parent}/task")),
        }
        (Path(os.environ["CAPS_DIR"]) / f"fork-{os.getpid()}.json").write_text(json.dumps(info))

    def __call__(self, x: Any) -> Any:
        return x
