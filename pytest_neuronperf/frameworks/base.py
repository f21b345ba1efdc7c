"""The framework-adapter protocol: how a worker loads, feeds and calls a model."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Protocol, cast, runtime_checkable

from pytest_neuronperf.devices.base import Placement
from pytest_neuronperf.protocol.specs import ModelSource


@runtime_checkable
class FrameworkAdapter(Protocol):
    """Runs inside a model process; imports its framework lazily."""

    name: str

    def set_threads(self, threads: int) -> None:
        """Size the framework's intra-op pool; called before the model is loaded."""
        ...

    def load(self, source: ModelSource, placement: Placement) -> Callable[..., Any]:
        """Return the callable to benchmark, on the placement's device, ready for inference."""
        ...

    def prepare_inputs(
        self, example: Any, batch_size: int, placement: Placement
    ) -> tuple[Any, ...]:
        """Positional arguments for one call at ``batch_size``, on the placement's device."""
        ...

    def thread_setup(self) -> None:
        """Per driver thread set-up (e.g. autograd off, which is thread-local in torch)."""
        ...

    def synchronizer(self, placement: Placement) -> Callable[[], None] | None:
        """A function that waits for the device to finish this thread's work, if needed."""
        ...


def resolve_object(module_name: str, qualname: str) -> Any:
    """Import ``module_name`` and walk ``qualname`` inside it."""
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def instantiate(source: ModelSource) -> Any:
    """Build the model of an ``import`` source: call the class or zero-argument factory."""
    assert source.module and source.qualname
    factory = resolve_object(source.module, source.qualname)
    return factory()


def require_callable(model: Any, source: ModelSource) -> Callable[..., Any]:
    """``model`` if it can be called, else a TypeError naming what the source built."""
    if not callable(model):
        raise TypeError(f"{source.filename} built a {type(model).__name__}, which is not callable")
    return cast(Callable[..., Any], model)


def as_args(inputs: Any) -> tuple[Any, ...]:
    """A tuple is a multi-input call; anything else is the single positional argument."""
    return inputs if isinstance(inputs, tuple) else (inputs,)


def leading_dim(value: Any) -> int | None:
    """The size of the first dimension of an array-like, or None for scalars and others."""
    shape = getattr(value, "shape", None)
    if shape is None or len(shape) == 0:
        return None
    first = shape[0]
    return int(first) if first is not None else None


def expand_batch(value: Any, batch_size: int, repeat: Callable[[Any, int], Any]) -> Any:
    """Repeat an input whose leading dimension is 1 up to ``batch_size`` (others pass as is)."""
    if leading_dim(value) == 1 and batch_size != 1:
        return repeat(value, batch_size)
    return value


def load_adapter(path: str) -> FrameworkAdapter:
    """Instantiate the adapter named ``module:attribute``."""
    module_name, _, attr = path.partition(":")
    adapter: FrameworkAdapter = resolve_object(module_name, attr)()
    return adapter
