"""The code that runs inside the compile process (``compile_main``), and the plain-data job it
is given. It compiles each task, verifies the artifact against the eager model, publishes it
atomically and reports each step on its pipe (``protocol.messages``: ``Built``, then ``Compiling``
and ``Compiled`` per task, then ``Done``; ``Failed`` if the model cannot be built); the parent
side is ``pytest_neuronperf.compiling.supervisor``."""

from __future__ import annotations

import importlib
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pytest_neuronperf.child import lifeline
from pytest_neuronperf.child.main import redirect_output
from pytest_neuronperf.compilers import COMPILERS
from pytest_neuronperf.frameworks.base import resolve_object
from pytest_neuronperf.protocol import messages
from pytest_neuronperf.protocol.specs import ModelSource
from pytest_neuronperf.safe_files import publish, remove

SUPPORT: dict[str, str] = {
    "torch": "pytest_neuronperf.compilers.torch:TorchSupport",
    "tensorflow": "pytest_neuronperf.compilers.tensorflow:TensorflowSupport",
}
"""Per framework: how the compile process builds, feeds and reloads models."""
DEFAULT_TOLERANCES: dict[str, tuple[float, float]] = {
    "neuron": (5e-2, 5e-2),
    "neuronx": (5e-2, 5e-2),
}
"""(rtol, atol) for compilers that do not declare ``rtol``/``atol`` (Neuron casts to bf16)."""
FALLBACK_TOLERANCE = (1e-3, 1e-4)


class OutputMismatch(Exception):
    """The compiled artifact's outputs differ from the eager model's."""


class CompileSupport(Protocol):
    """What the compile process needs from a framework besides the compiler."""

    def build(self, source: ModelSource, device: str) -> Any:
        """The model to compile, ready for inference on ``device``."""
        ...

    def example_args(self, example: Any, batch_size: int, device: str) -> tuple[Any, ...]:
        """Positional framework tensors for one call at ``batch_size``."""
        ...

    def run(self, model: Any, args: tuple[Any, ...]) -> Any:
        """One inference (no autograd, no training behaviour)."""
        ...

    def load(self, path: str, compiler: str, device: str) -> Callable[..., Any]:
        """The artifact at ``path`` loaded as a worker process loads it."""
        ...


@dataclass(frozen=True)
class Task:
    """One configuration for the compile process."""

    position: int
    """Its place in the index's ``model_configs``."""
    batch_size: int
    pipeline_size: int
    stem: str
    """Artifact name without suffix."""
    inputs: Any


@dataclass(frozen=True)
class CompileJob:
    """Everything the compile process needs (picklable, no framework objects but inputs)."""

    source: ModelSource
    framework: str
    compiler: str
    compiler_args: Any
    device: str
    directory: str
    tasks: tuple[Task, ...]
    verify: bool
    tolerance: tuple[float, float] | None
    log_path: str | None
    environ: dict[str, str]
    """The caller's environment: a forkserver child would otherwise see the server's."""



def compile_main(conn: Connection, job: CompileJob) -> None:
    """Entry point of the compile process (tied to the parent by ``lifeline.start``)."""
    os.setpgid(0, 0)  # own group: the parent kills it with any compiler subprocesses
    os.environ.clear()
    os.environ.update(job.environ)
    if job.log_path is not None:
        redirect_output(job.log_path)
    lifeline.watch_parent(conn)
    try:
        compiler = load_compiler(job.compiler)
        support = load_support(job.framework)
        check_compiler(compiler, job)
        model = support.build(job.source, job.device)
    except BaseException as exc:  # noqa: BLE001 - whatever stops the build must reach the parent
        messages.send(conn, messages.Failed(
            f"{type(exc).__name__}: {exc}", "".join(traceback.format_exception(exc))
        ))
        sys.exit(1)
    messages.send(conn, messages.Built())
    for task in job.tasks:
        messages.send(conn, messages.Compiling(task.position))
        messages.send(conn, compile_task(compiler, support, model, job, task))
    messages.send(conn, messages.Done())
    # Returning lets multiprocessing run this process's finalizers, which release named
    # semaphores that libraries created here (tqdm's lock); the parent waits a moment for that.


def load_compiler(name: str) -> Any:
    """An instance of the compiler registered as ``name`` (or named ``module:attribute``)."""
    module_name, _, attr = COMPILERS.get(name, name).partition(":")
    return resolve_object(module_name, attr)()


def load_support(framework: str) -> CompileSupport:
    """The compile support of ``framework``."""
    module_name, _, attr = SUPPORT[framework].partition(":")
    support: CompileSupport = resolve_object(module_name, attr)()
    return support


def check_compiler(compiler: Any, job: CompileJob) -> None:
    """The compiler is usable here and compiles this framework's models."""
    if not compiler.is_available():
        raise RuntimeError(
            f"compiler {job.compiler!r} is not available here: its framework or runtime is not "
            f"installed in this environment"
        )
    if compiler.framework != job.framework:
        raise RuntimeError(
            f"compiler {job.compiler!r} compiles {compiler.framework} models, but this model "
            f"is a {job.framework} model"
        )


def compile_task(
    compiler: Any, support: CompileSupport, model: Any, job: CompileJob, task: Task
) -> messages.Compiled:
    """Compile, verify and publish one configuration; the result message."""
    directory = Path(job.directory)
    suffix = compiler.suffix
    target = directory / f"{task.stem}{suffix}"
    scratch = directory / f".{task.stem}.tmp-{os.getpid()}{suffix}"
    remove(scratch)
    started = time.perf_counter()
    compile_s: float | None = None
    try:
        args = support.example_args(task.inputs, task.batch_size, job.device)
        expected = support.run(model, args)  # also builds lazily-built (Keras) models
        started = time.perf_counter()
        compiler.compile(
            model, args, task.batch_size, task.pipeline_size, job.compiler_args, scratch
        )
        compile_s = time.perf_counter() - started
        if job.verify:
            check_outputs(compiler, support, job, task, scratch, args, expected)
        publish(scratch, target)
    except Exception as exc:  # noqa: BLE001 - one configuration's failure; the others go on
        remove(scratch)
        return messages.Compiled(
            task.position,
            "error",
            None,
            round(compile_s if compile_s is not None else time.perf_counter() - started, 3),
            error=f"{type(exc).__name__}: {exc}",
            traceback="".join(traceback.format_exception(exc)),
        )
    assert compile_s is not None
    return messages.Compiled(
        task.position, "ok", target.name, round(compile_s, 3), verified=job.verify
    )


def check_outputs(
    compiler: Any,
    support: CompileSupport,
    job: CompileJob,
    task: Task,
    artifact: Path,
    args: tuple[Any, ...],
    expected: Any,
) -> None:
    """Load the artifact as a worker would and compare its outputs with the eager model's."""
    own_load = getattr(compiler, "load", None)
    if callable(own_load):
        loaded = own_load(str(artifact), job.device)
    else:
        runtime = getattr(compiler, "runtime_module", None)  # registers the artifact's ops
        if runtime:
            importlib.import_module(runtime)
        loaded = support.load(str(artifact), job.compiler, job.device)
    actual = support.run(loaded, args)
    rtol, atol = job.tolerance or fit_dtype(expected, *tolerance_of(compiler, job.compiler))
    mismatch = compare_outputs(expected, actual, rtol, atol)
    if mismatch:
        raise OutputMismatch(
            f"outputs of the {job.compiler} artifact differ from the eager model at batch size "
            f"{task.batch_size}: {mismatch} (allowed rtol {rtol:g}, atol {atol:g} x max(1, max "
            f"|output|)). Is the model "
            f"nondeterministic (random ops, dropout in training mode), or did the compiler change "
            f"the numerics? Pass verify=False to skip the check, or verify={{'rtol': ..., "
            f"'atol': ...}} to loosen it"
        )


HALF_TOLERANCES = {"float16": (1e-2, 1e-2), "bfloat16": (5e-2, 5e-2)}
"""(rtol, atol) at least, when the eager model's outputs are half precision (a half model)."""


def fit_dtype(expected: Any, rtol: float, atol: float) -> tuple[float, float]:
    """The compiler's tolerance, loosened to what the outputs' precision can hold."""
    for _, leaf in flatten(expected):
        dtype = str(getattr(leaf, "dtype", "")).rsplit(".", 1)[-1]
        if dtype in HALF_TOLERANCES:
            floor_rtol, floor_atol = HALF_TOLERANCES[dtype]
            rtol, atol = max(rtol, floor_rtol), max(atol, floor_atol)
    return rtol, atol


def tolerance_of(compiler: Any, name: str) -> tuple[float, float]:
    """The compiler's declared (rtol, atol), else a default for its name."""
    default = DEFAULT_TOLERANCES.get(name, FALLBACK_TOLERANCE)
    return (
        float(getattr(compiler, "rtol", default[0])),
        float(getattr(compiler, "atol", default[1])),
    )


def flatten(outputs: Any) -> Iterator[tuple[str, Any]]:
    """Leaves of nested tuples, lists and dicts, with a path such as ``[0]['logits']``."""
    if isinstance(outputs, Mapping):
        for key in sorted(outputs, key=str):
            for path, leaf in flatten(outputs[key]):
                yield f"[{key!r}]{path}", leaf
    elif isinstance(outputs, list | tuple):
        for i, item in enumerate(outputs):
            for path, leaf in flatten(item):
                yield f"[{i}]{path}", leaf
    else:
        yield "", outputs


def to_numpy(value: Any) -> Any:
    """A framework tensor (torch, TensorFlow) or scalar as a NumPy array."""

    if hasattr(value, "detach"):  # torch: leave autograd and the device, widen half types
        value = value.detach().cpu()
        if value.is_floating_point() and value.element_size() < 4:
            value = value.float()
        return value.numpy()
    if hasattr(value, "numpy"):
        return np.asarray(value.numpy())
    return np.asarray(value)


def compare_outputs(expected: Any, actual: Any, rtol: float, atol: float) -> str | None:
    """None when every output matches; else what differs (with the max abs difference).

    ``atol`` is scaled by the output's largest magnitude (when above 1), so that an output near
    zero next to large ones is not held to a tighter bound than float rounding allows.
    """

    want = list(flatten(expected))
    got = list(flatten(actual))
    if len(want) != len(got):
        return f"the artifact returns {len(got)} outputs, the eager model {len(want)}"
    worst: tuple[float, str] | None = None
    for (path, w), (_, g) in zip(want, got, strict=True):
        w_array, g_array = to_numpy(w), to_numpy(g)
        label = f"output{path or ''}"
        if w_array.shape != g_array.shape:
            return f"{label} has shape {g_array.shape}, the eager model's {w_array.shape}"
        if w_array.dtype.kind not in "biufc" or g_array.dtype.kind not in "biufc":
            if not np.array_equal(w_array, g_array):
                return f"{label} differs"
            continue
        w64, g64 = w_array.astype(np.float64), g_array.astype(np.float64)
        finite = np.abs(w64[np.isfinite(w64)])
        scale = max(1.0, float(finite.max())) if finite.size else 1.0
        if np.allclose(g64, w64, rtol=rtol, atol=atol * scale, equal_nan=True):
            continue
        diff = float(np.nanmax(np.abs(g64 - w64))) if w64.size else 0.0
        if worst is None or diff > worst[0]:
            worst = (diff, label)
    if worst is None:
        return None
    return f"max abs diff {worst[0]:.3g} in {worst[1]}"
