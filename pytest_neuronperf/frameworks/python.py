"""Plain Python callables on NumPy inputs (no framework): the ``python`` adapter."""

from __future__ import annotations

import pickle
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from pytest_neuronperf.devices.base import Placement
from pytest_neuronperf.frameworks.base import (
    as_args,
    expand_batch,
    instantiate,
    require_callable,
)
from pytest_neuronperf.protocol.specs import ModelSource


def _repeat(value: Any, batch_size: int) -> Any:
    return np.repeat(value, batch_size, axis=0)


class PythonAdapter:
    """Calls a Python class instance or factory product with NumPy arrays."""

    name = "python"

    def set_threads(self, threads: int) -> None:
        # NumPy's BLAS pools are sized through the environment before import; torch is already
        # imported (the forkserver preloads it), so a callable that uses it is capped here
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.set_num_threads(threads)

    def load(self, source: ModelSource, placement: Placement) -> Callable[..., Any]:
        if source.kind == "path" and source.compiler == "pickle":
            assert source.path
            return require_callable(load_pickled(source.path), source)
        if source.kind != "import":
            raise ValueError(
                f"the python framework runs importable callables, not files ({source.path}); "
                "pass framework='torch' or 'tensorflow' for saved models"
            )
        model = instantiate(source)
        return require_callable(model, source)

    def prepare_inputs(
        self, example: Any, batch_size: int, placement: Placement
    ) -> tuple[Any, ...]:
        return tuple(expand_batch(v, batch_size, _repeat) for v in as_args(example))

    def thread_setup(self) -> None:
        pass

    def synchronizer(self, placement: Placement) -> Callable[[], None] | None:
        return None


def load_pickled(path: str) -> Any:
    """The python framework's saved instance (in the model process)."""
    with open(path, "rb") as stream:
        return pickle.load(stream)  # noqa: S301 - our own file, written by engine.instances
