"""Plain-data descriptions shared by the parent and the model processes (no framework imports)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pytest_neuronperf.devices.base import Placement


@dataclass(frozen=True)
class ModelSource:
    """How a worker obtains the model: import it by name, or load an artifact from a path."""

    kind: Literal["import", "path"]
    name: str
    """``model_name`` in reports."""
    filename: str
    """``model_filename`` in reports: the artifact path, or ``module:qualname``."""
    module: str | None = None
    qualname: str | None = None
    path: str | None = None
    compiler: str | None = None
    """How the artifact at ``path`` was produced (``torchscript``, ``export``, ...), if known."""


@dataclass(frozen=True)
class ImportRoot:
    """Where a model process imports the user's code from: the base side of a paired run
    against a git revision (``plugin.against``). Functions travel by name, so that they are
    imported from ``sys_path`` inside the process rather than unpickled from the head's tree."""

    sys_path: tuple[str, ...]
    """The process's ``sys.path``: the parent's, with entries inside the repository mapped to
    the same places in the revision's tree."""
    preprocess_fn: tuple[str, str] | None = None
    """``(module, qualname)`` of the base side's ``preprocess_fn``."""
    postprocess_fn: tuple[str, str] | None = None


@dataclass(frozen=True)
class WorkerSpec:
    """Everything one model process needs to load, warm up and be driven."""

    model: ModelSource
    framework: str
    adapter: str
    """``module:attribute`` of the framework adapter the worker instantiates."""
    inputs: Any
    """The example inputs for this batch size (a leading dimension of 1 is expanded)."""
    batch_size: int
    workers: int
    warmup: float | Literal["auto"]
    placement: Placement
    log_path: str
    preprocess_fn: Callable[..., Any] | None = None
    postprocess_fn: Callable[..., Any] | None = None
    max_warmup_s: float = 30.0
    environ: dict[str, str] = field(default_factory=dict)
    """The parent's environment when the configuration started (a forkserver child would
    otherwise see the environment of the forkserver's start)."""
    extra: dict[str, Any] = field(default_factory=dict)
    imports: ImportRoot | None = None
    """Set for the base side of a paired run against a git revision; None imports as usual."""
