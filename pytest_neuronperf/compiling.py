"""``compile``: one verified artifact per (batch size, pipeline size), cached, in a model index.

How it works:

- The parent (this module, imported without any framework) validates the arguments, computes a
  cache key per configuration and reuses cached artifacts. Only the misses go to a *compile
  process*, forked from the engine's forkserver (a clean interpreter that never ran a framework
  operator), so a runtime the compile initialises is never inherited by benchmark workers and
  the forkserver itself is untouched. The compile process leads its own process group; results
  come back on a pipe, one message per configuration.
- In the compile process each configuration is compiled, then *verified*: the artifact is loaded
  the way a worker loads it and its outputs are compared with the eager model's on the example
  inputs (``numpy.allclose`` with the compiler's ``rtol``/``atol``, ``atol`` scaled by the
  output's magnitude; ``verify=False`` or ``{"rtol": .., "atol": ..}`` to change it; Neuron
  artifacts are verified only where that device exists). A compiler error or a mismatch marks
  that configuration ``status: "error"`` and compilation goes on. A crash or a
  timeout marks the configuration being compiled as an error and a fresh process takes the rest;
  a process that cannot even build the model marks every remaining configuration. Ctrl-C kills
  the process group; nothing is left behind.
- The index is rewritten atomically after every configuration, so an interrupted compile leaves
  a valid index of what finished. Artifact filenames in it are relative to the index directory.

Cache: artifacts are named ``<model>-b<batch>-p<pipeline>-<compiler>-<key>`` inside
``models_dir`` (default ``./neuronperf-models``), so ``models_dir`` *is* the cache. The key hashes
the model's code (its module file and the files of its non-library base classes, plus the
qualified name; for an artifact path, its bytes), the input shapes and dtypes at that batch size,
the compiler and its arguments, the pipeline size, the framework and compiler package versions
(``importlib.metadata``), Python version and machine (and CPU model for ``export``, whose native
code is CPU specific). A hit reuses the artifact without starting a compile process and is
recorded with ``compile_s: 0`` and ``cached: true``. ``cache=False`` recompiles. A shared cache
directory, for several ``models_dir`` or CI runs, is ``cache=<path>`` or the environment variable
``NEURONPERF_CACHE_DIR``: hits there are copied into ``models_dir``, and new artifacts are
copied there. Failed configurations are never cached.

``compiler="eager"`` means *no compilation*: ``compile`` refuses it with a ValueError (benchmark
the class itself; an index of uncompiled models would only point back at the class).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata
import inspect
import json
import logging
import os
import platform
import shutil
import sys
import sysconfig
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

from pytest_neuronperf import __version__
from pytest_neuronperf import configs as grid
from pytest_neuronperf.api import VERBOSITY_LEVELS, inputs_per_batch
from pytest_neuronperf.compile_worker import (
    FALLBACK_TOLERANCE,
    PROTOCOL_VERSION,
    SUPPORT,
    CompileJob,
    Task,
    compile_main,
    publish,
    remove,
)
from pytest_neuronperf.compilers import COMPILERS
from pytest_neuronperf.engine.processes import ChildProcess, process_context
from pytest_neuronperf.frameworks import infer_framework, to_portable
from pytest_neuronperf.frameworks.base import as_args
from pytest_neuronperf.model_ref import INDEX_FORMAT, describe_model, read_model_index
from pytest_neuronperf.spec import ModelSource

log = logging.getLogger("pytest_neuronperf")

INDEX_VERSION = 1
"""Model index format version (``version`` key). History: 1 - first version."""
CACHE_KEY_VERSION = 1
"""Bump when the artifact layout or the key material changes, so old artifacts miss."""

DEFAULT_MODELS_DIR = "neuronperf-models"
CACHE_DIR_ENV = "NEURONPERF_CACHE_DIR"
STARTUP_TIMEOUT_S = 600.0
"""Seconds the compile process may take to start and build the model (before any timeout)."""
EXIT_GRACE_S = 10.0
"""Seconds a compile process that has finished may take to exit before it is killed."""

FRAMEWORK_PACKAGES: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "tensorflow": ("tensorflow", "tensorflow-cpu", "keras", "tf-keras"),
}
COMPILER_PACKAGES: dict[str, tuple[str, ...]] = {
    "neuron": ("torch-neuron", "neuron-cc", "tensorflow-neuron"),
    "neuronx": ("torch-neuronx", "neuronx-cc", "libneuronxla"),
}
DEVICE_COMPILERS = frozenset({"neuron", "neuronx"})
"""Artifacts that only run on their device: verified only where that device exists."""
NATIVE_CODE_COMPILERS = frozenset({"export"})
"""Compilers whose artifacts hold code for this CPU: the CPU model is part of their key."""
LIBRARY_ROOTS = frozenset({"torch", "tensorflow", "keras", "tf_keras", "builtins", "abc", "typing"})

EAGER_REFUSAL = (
    "compiler='eager' means no compilation, so there is nothing to compile: benchmark the model "
    "class (or factory) itself, or choose a compiler (auto, torchscript, export, saved_model, "
    "xla, neuron, neuronx)"
)


def compile(
    model: Any,
    inputs: Any,
    batch_sizes: int | Sequence[int] | None = None,
    pipeline_sizes: int | Sequence[int] | None = None,
    compiler: str = "auto",
    compiler_args: Any = None,
    models_dir: str | os.PathLike[str] | None = None,
    filename: str | os.PathLike[str] | None = None,
    framework: str | None = None,
    device_type: str = "auto",
    model_name: str | None = None,
    cache: bool | str | os.PathLike[str] = True,
    timeout: float | None = None,
    verbosity: int = 1,
    verify: bool | Mapping[str, float] = True,
) -> str:
    """Compile ``model`` per batch size and pipeline size; return the path of the model index.

    ``model`` and ``inputs`` are as for ``benchmark``. ``compiler``: ``auto`` (torch:
    ``neuronx``/``neuron`` when that is the target device, else ``torchscript``; tensorflow:
    ``saved_model``), a name from :data:`pytest_neuronperf.compilers.COMPILERS`, or a custom
    ``"module:attribute"`` implementing the ``Compiler`` protocol. ``compiler_args`` must be
    JSON-serialisable (it is part of the cache key and recorded in the index). The index is
    ``filename`` (default ``<model_name>.json``) in ``models_dir`` (default
    ``./neuronperf-models``). ``cache``: True (reuse artifacts in ``models_dir`` and in
    ``$NEURONPERF_CACHE_DIR`` if set), False, or a shared cache directory. ``timeout``: seconds
    each configuration may take (compile + verification). ``verify``: compare the artifact's
    outputs with the eager model (True, False, or ``{"rtol": ..., "atol": ...}``).
    """
    log.setLevel(VERBOSITY_LEVELS.get(verbosity, logging.DEBUG))
    source, framework = identify(model, inputs, compiler, framework, model_name)
    compiler_name = resolve_compiler(compiler, framework, device_type)
    check_compiler_args(compiler_args)
    check_timeout(timeout)
    tolerance, do_verify = verify_settings(verify, compiler_name)
    sizes = grid.positive_ints("batch_sizes", grid.as_list(batch_sizes or 1))
    pipelines = grid.positive_ints("pipeline_sizes", grid.as_list(pipeline_sizes or 1))
    per_batch = inputs_per_batch(to_portable(inputs), sizes)

    directory = Path(models_dir if models_dir is not None else DEFAULT_MODELS_DIR).absolute()
    index_path = directory / (filename or f"{safe_name(source.name)}.json")
    index_path.parent.mkdir(parents=True, exist_ok=True)
    directory.mkdir(parents=True, exist_ok=True)
    shared = shared_cache_dir(cache, directory)
    index = IndexWriter(
        index_path,
        {
            "format": INDEX_FORMAT,
            "version": INDEX_VERSION,
            "model_name": source.name,
            "framework": framework,
            "model": source.filename,
            "device_type": device_type,
        },
    )
    keys = KeyMaterial(
        fingerprint=model_fingerprint(model, source),
        compiler=compiler_name,
        compiler_args=compiler_args,
        framework=framework,
        versions=environment_versions(framework, compiler_name),
        device=compile_device(device_type),
    )
    tasks = reuse_cached(
        index,
        source.name,
        keys,
        per_batch,
        sizes,
        pipelines,
        directory,
        shared,
        use_cache=cache is not False,
    )
    if tasks:
        job = CompileJob(
            source=source,
            framework=framework,
            compiler=compiler_name,
            compiler_args=compiler_args,
            device=keys.device,
            directory=str(directory),
            tasks=tuple(tasks),
            verify=do_verify,
            tolerance=tolerance,
            log_path=None,
            environ=dict(os.environ),
        )
        compile_missing(job, index, timeout, shared, quiet=verbosity < 2)
    return str(index_path)


@dataclass(frozen=True)
class KeyMaterial:
    """What every configuration's cache key shares."""

    fingerprint: str
    compiler: str
    compiler_args: Any
    framework: str
    versions: dict[str, str | None]
    device: str

    def key(self, example: Any, batch_size: int, pipeline_size: int) -> str:
        """The cache key of one configuration."""
        return cache_key(
            self.fingerprint,
            example,
            batch_size,
            pipeline_size,
            self.compiler,
            self.compiler_args,
            self.framework,
            self.versions,
            self.device,
        )


def identify(
    model: Any, inputs: Any, compiler: str, framework: str | None, model_name: str | None
) -> tuple[ModelSource, str]:
    """The model's source and framework, or a clear refusal."""
    if compiler == "eager":
        raise ValueError(EAGER_REFUSAL)
    if isinstance(model, str | os.PathLike) and read_model_index(Path(model)) is not None:
        raise ValueError(f"{os.fspath(model)!r} is already a model index: benchmark it directly")
    source = describe_model(model, model_name)
    framework = framework or infer_framework(model, inputs)
    if framework not in SUPPORT:
        raise ValueError(
            f"compile needs framework='torch' or 'tensorflow' (got {framework!r}); it cannot "
            f"always be told from the model and inputs, so pass it explicitly"
        )
    return source, framework


def reuse_cached(
    index: IndexWriter,
    model_name: str,
    keys: KeyMaterial,
    per_batch: Mapping[int, Any],
    sizes: list[int],
    pipelines: list[int],
    directory: Path,
    shared: Path | None,
    use_cache: bool,
) -> list[Task]:
    """Record every cached configuration in the index; return the ones left to compile."""
    tasks: list[Task] = []
    configs = [(b, p) for b in sizes for p in pipelines]
    for position, (batch_size, pipeline_size) in enumerate(configs):
        key = keys.key(per_batch[batch_size], batch_size, pipeline_size)
        stem = artifact_stem(model_name, batch_size, pipeline_size, keys.compiler, key)
        common = {
            "batch_size": batch_size,
            "pipeline_size": pipeline_size,
            "compiler": keys.compiler,
            "compiler_args": keys.compiler_args,
            "cache_key": key,
        }
        hit = find_cached(directory, shared, stem) if use_cache else None
        if hit is None:
            index.reserve(position, common)
            tasks.append(Task(position, batch_size, pipeline_size, stem, per_batch[batch_size]))
            continue
        log.info("%s bs=%d pipeline=%d: cached %s", model_name, batch_size, pipeline_size, hit.name)
        index.record(position, config_entry(index.relative(hit), common, 0.0, "ok", cached=True))
    index.write()
    return tasks


def compile_missing(
    job: CompileJob, index: IndexWriter, timeout: float | None, shared: Path | None, quiet: bool
) -> None:
    """Run the compile process(es) for ``job``; its output goes to a log file when ``quiet``."""
    if not quiet:
        run_compile(job, index, timeout, shared)
        return
    handle, log_file = tempfile.mkstemp(prefix="neuronperf-compile-", suffix=".log")
    os.close(handle)
    try:
        run_compile(replace(job, log_path=log_file), index, timeout, shared)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(log_file)


# --- argument checks -------------------------------------------------------------------------


def resolve_compiler(compiler: str, framework: str, device_type: str) -> str:
    """The compiler to use: ``auto`` resolved for the framework and target device."""
    if compiler == "eager":
        raise ValueError(EAGER_REFUSAL)
    if compiler == "auto":
        if framework == "torch":
            target = device_type if device_type != "auto" else neuron_device()
            return target if target in ("neuron", "neuronx") else "torchscript"
        return "saved_model"
    if compiler in COMPILERS or ":" in compiler:
        return compiler
    raise ValueError(
        f"unknown compiler {compiler!r}: choose one of auto, {', '.join(COMPILERS)}, or "
        f"'module:attribute' of a class implementing the Compiler protocol"
    )


def neuron_device() -> str | None:
    """``neuronx`` or ``neuron`` when this machine has that device, else None."""
    return next((name for name in ("neuronx", "neuron") if has_device(name)), None)


def has_device(name: str) -> bool:
    """True when the device backend ``name`` exists and is available here."""
    from pytest_neuronperf.devices import get_backend

    try:
        get_backend(name)
    except (ValueError, ImportError):
        return False
    return True


def compile_device(device_type: str) -> str:
    """Where the compile process builds and checks torch models: ``cuda`` only if asked."""
    return "cuda" if device_type == "cuda" else "cpu"


def check_compiler_args(compiler_args: Any) -> None:
    """``compiler_args`` must survive JSON: they are hashed and written into the index."""
    try:
        json.dumps(compiler_args, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"compiler_args must be JSON-serialisable (str, numbers, lists, dicts): {exc}"
        ) from exc


def check_timeout(timeout: Any) -> None:
    """None, or a positive number of seconds."""
    if timeout is not None:
        grid.positive_number("timeout", timeout)


def verify_settings(
    verify: bool | Mapping[str, float], compiler: str
) -> tuple[tuple[float, float] | None, bool]:
    """(explicit (rtol, atol) or None for the compiler's own, whether to verify)."""
    if isinstance(verify, Mapping) and set(verify) <= {"rtol", "atol"}:
        rtol, atol = FALLBACK_TOLERANCE
        tolerance: tuple[float, float] | None = (
            float(verify.get("rtol", rtol)),
            float(verify.get("atol", atol)),
        )
    elif isinstance(verify, bool):
        tolerance = None
    else:
        raise ValueError(
            f"verify must be True, False or {{'rtol': ..., 'atol': ...}}, got {verify!r}"
        )
    if verify is False:
        return tolerance, False
    if compiler in DEVICE_COMPILERS and not has_device(compiler):
        log.info("no %s device here: compiled artifacts are not verified", compiler)
        return tolerance, False
    return tolerance, True


def safe_name(name: str) -> str:
    """``name`` with anything but letters, digits, ``._-`` replaced, for file names."""
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in name).strip("._")
    return cleaned or "model"


# --- cache -----------------------------------------------------------------------------------


def model_fingerprint(model: Any, source: ModelSource) -> str:
    """Hash of the model's code (module files + qualified name) or of the artifact's bytes."""
    digest = hashlib.sha256()
    if source.kind == "path":
        assert source.path
        hash_path(Path(source.path), digest)
        return digest.hexdigest()
    digest.update(f"{source.module}:{source.qualname}".encode())
    for path in code_files(model, source.module):
        digest.update(b"\0")
        hash_path(path, digest)
    return digest.hexdigest()


def code_files(model: Any, module_name: str | None) -> list[Path]:
    """The defining module's file, and those of base classes outside libraries."""
    files: list[Path] = []
    module = sys.modules.get(module_name or "")
    main_file = getattr(module, "__file__", None)
    if main_file:
        files.append(Path(main_file))
    library_dirs = {sysconfig.get_paths()[k] for k in ("stdlib", "purelib", "platlib")}
    for base in getattr(model, "__mro__", ())[1:]:
        root = (base.__module__ or "").split(".", 1)[0]
        if root in LIBRARY_ROOTS:
            continue
        with contextlib.suppress(TypeError, OSError):
            found = inspect.getsourcefile(base)
            if found and not any(found.startswith(d) for d in library_dirs):
                files.append(Path(found))
    return list(dict.fromkeys(files))


def hash_path(path: Path, digest: Any) -> None:
    """Feed a file's bytes, or a directory's relative names and bytes, into ``digest``."""
    if path.is_dir():
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(str(child.relative_to(path)).encode() + b"\0")
            hash_path(child, digest)
        return
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)


def input_signature(example: Any, batch_size: int) -> list[dict[str, Any]]:
    """Shapes (leading dimension 1 expanded to ``batch_size``) and dtypes of one example."""
    signature: list[dict[str, Any]] = []
    for value in as_args(example):
        shape = getattr(value, "shape", None)
        kind = f"{type(value).__module__}.{type(value).__qualname__}"
        if shape is None:
            signature.append({"type": kind, "value": repr(value)})
            continue
        dims = [int(d) if d is not None else None for d in shape]
        if dims and dims[0] == 1 and batch_size != 1:
            dims[0] = batch_size
        signature.append({"type": kind, "shape": dims, "dtype": str(getattr(value, "dtype", ""))})
    return signature


def environment_versions(framework: str, compiler: str) -> dict[str, str | None]:
    """Versions that change what a compiler produces: packages, Python, machine."""
    versions: dict[str, str | None] = {}
    for package in (*FRAMEWORK_PACKAGES.get(framework, ()), *COMPILER_PACKAGES.get(compiler, ())):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    versions["pytest-neuronperf"] = __version__
    versions["python"] = platform.python_version()
    versions["machine"] = platform.machine()
    if compiler in NATIVE_CODE_COMPILERS:
        from pytest_neuronperf.devices.cpu import cpu_model_name

        versions["cpu"] = cpu_model_name()
    return versions


def cache_key(
    fingerprint: str,
    example: Any,
    batch_size: int,
    pipeline_size: int,
    compiler: str,
    compiler_args: Any,
    framework: str,
    versions: Mapping[str, str | None],
    device: str,
) -> str:
    """The hex digest that names one configuration's artifact."""
    material = {
        "cache_key_version": CACHE_KEY_VERSION,
        "model": fingerprint,
        "inputs": input_signature(example, batch_size),
        "batch_size": batch_size,
        "pipeline_size": pipeline_size,
        "compiler": compiler,
        "compiler_args": compiler_args,
        "framework": framework,
        "versions": dict(versions),
        "device": device,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def artifact_stem(
    model_name: str, batch_size: int, pipeline_size: int, compiler: str, key: str
) -> str:
    """``<model>-b<batch>-p<pipeline>-<compiler>-<key prefix>``."""
    return (
        f"{safe_name(model_name)}-b{batch_size}-p{pipeline_size}-{safe_name(compiler)}-{key[:16]}"
    )


def shared_cache_dir(cache: bool | str | os.PathLike[str], directory: Path) -> Path | None:
    """The shared cache directory (``cache=<path>`` or ``$NEURONPERF_CACHE_DIR``), if any."""
    if cache is False:
        return None
    location = os.environ.get(CACHE_DIR_ENV) if cache is True else os.fspath(cache)
    if not location:
        return None
    shared = Path(location).absolute()
    if shared == directory:
        return None
    shared.mkdir(parents=True, exist_ok=True)
    return shared


def artifact_in(directory: Path, stem: str) -> Path | None:
    """The finished artifact named ``stem`` (any suffix) in ``directory``, if present."""
    with contextlib.suppress(OSError):
        for entry in directory.iterdir():
            if entry.name == stem or entry.name.startswith(stem + "."):
                return entry
    return None


def find_cached(directory: Path, shared: Path | None, stem: str) -> Path | None:
    """A cached artifact in ``directory``, or one copied there from the shared cache."""
    found = artifact_in(directory, stem)
    if found is not None or shared is None:
        return found
    in_shared = artifact_in(shared, stem)
    if in_shared is None:
        return None
    return copy_atomically(in_shared, directory / in_shared.name)


def copy_atomically(source: Path, target: Path) -> Path:
    """Copy a file or directory so that ``target`` appears complete or not at all."""
    scratch = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    if source.is_dir():
        shutil.copytree(source, scratch)
    else:
        shutil.copy2(source, scratch)
    publish(scratch, target)
    return target


# --- the index -------------------------------------------------------------------------------


def config_entry(
    filename: str | None,
    common: Mapping[str, Any],
    compile_s: float,
    status: str,
    cached: bool,
    **extra: Any,
) -> dict[str, Any]:
    """One ``model_configs`` entry: DESIGN.md's keys first, then ours."""
    common = dict(common)
    return {
        "filename": filename,
        "batch_size": common.pop("batch_size"),
        "pipeline_size": common.pop("pipeline_size"),
        "compiler": common.pop("compiler"),
        "compile_s": compile_s,
        "status": status,
        "cached": cached,
        **extra,
        **common,
    }


class IndexWriter:
    """The model index being built; rewritten atomically whenever a configuration finishes."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        self.header = header
        self.entries: dict[int, dict[str, Any]] = {}
        self.pending: dict[int, dict[str, Any]] = {}

    def relative(self, artifact: Path) -> str:
        """``artifact`` relative to the index's directory."""
        return os.path.relpath(artifact, self.path.parent)

    def reserve(self, position: int, common: dict[str, Any]) -> None:
        """Remember the keys of a configuration handed to the compile process."""
        self.pending[position] = common

    def finish(self, position: int, result: Mapping[str, Any], artifact: Path | None) -> None:
        """Record the compile process's result for a reserved configuration."""
        filename = self.relative(artifact) if artifact is not None else None
        if result["status"] == "ok":
            extra: dict[str, Any] = {"verified": bool(result.get("verified"))}
        else:
            extra = {"error": result.get("error") or "unknown error"}
            if result.get("traceback"):
                extra["traceback"] = result["traceback"]
        entry = config_entry(
            filename,
            self.pending.pop(position),
            result.get("compile_s", 0.0),
            result["status"],
            cached=False,
            **extra,
        )
        self.record(position, entry)

    def fail(self, position: int, reason: str, compile_s: float = 0.0) -> None:
        """Record a reserved configuration as failed without a result from the process."""
        self.finish(
            position, {"status": "error", "error": reason, "compile_s": round(compile_s, 3)}, None
        )

    def record(self, position: int, entry: dict[str, Any]) -> None:
        """Add a finished configuration and rewrite the index."""
        self.entries[position] = entry
        self.write()

    def write(self) -> None:
        """Write the index (finished configurations, in request order) atomically."""
        data = {**self.header, "model_configs": [self.entries[i] for i in sorted(self.entries)]}
        scratch = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        with scratch.open("w") as stream:
            json.dump(data, stream, indent=2)
            stream.write("\n")
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(scratch, self.path)


# --- parent side of the compile process -------------------------------------------------------


class CompileProcess(ChildProcess):
    """The compile process (``compile_main``) and the parent's end of its pipe."""

    def __init__(self, context: BaseContext, job: CompileJob) -> None:
        self.job = job
        super().__init__(context, compile_main, (job,), "neuronperf-compile", job.log_path,
                         daemon=False, role="compile process")

    def kill(self, join_timeout: float = 10.0) -> None:
        """Kill the process group, reap it, and delete its unfinished artifacts."""
        pid = self.pid
        super().kill(join_timeout)
        if pid is not None:
            for leftover in Path(self.job.directory).glob(f".*.tmp-{pid}*"):
                remove(leftover)


def run_compile(
    job: CompileJob, index: IndexWriter, timeout: float | None, shared: Path | None
) -> None:
    """Compile every task, restarting the process after a crash or timeout of one task."""
    context = process_context(job.framework)
    remaining = list(job.tasks)
    while remaining:
        process = CompileProcess(context, replace(job, tasks=tuple(remaining)))
        try:
            remaining = supervise(process, index, timeout, shared)
            process.process.join(timeout=EXIT_GRACE_S)
        finally:
            process.kill()


def supervise(
    process: CompileProcess, index: IndexWriter, timeout: float | None, shared: Path | None
) -> list[Task]:
    """Follow one compile process; return the tasks a fresh process should retry."""
    job = process.job
    tasks = {task.position: task for task in job.tasks}
    started = False
    current: int | None = None
    began = time.monotonic()
    deadline: float | None = began + max(STARTUP_TIMEOUT_S, timeout or 0.0)
    while True:
        remaining_s = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready = wait([process.conn, process.process.sentinel], remaining_s)
        if not ready:
            if current is None:
                what, limit = "starting", max(STARTUP_TIMEOUT_S, timeout or 0.0)
            else:
                what, limit = f"compiling {describe_task(tasks[current])}", timeout or 0.0
            reason = f"compile process timed out after {limit:g} s while {what}; it was killed"
            return abandon(process, index, tasks, current, started, reason, began)
        message = receive(process.conn) if process.conn in ready or process.conn.poll() else None
        if message is None:
            reason = (
                f"the compile process died ({process.exit_description()})"
                + process.formatted_tail()
            )
            return abandon(process, index, tasks, current, started, reason, began)
        kind = message["kind"]
        if kind == "ready":
            started, deadline = True, None
        elif kind == "begin":
            current, began = message["position"], time.monotonic()
            deadline = began + timeout if timeout is not None else None
            log.info(
                "compiling %s %s with %s",
                job.source.name,
                describe_task(tasks[current]),
                job.compiler,
            )
        elif kind == "result":
            accept(message, index, tasks.pop(message["position"]), job, shared)
            current, deadline = None, None
        elif kind == "fatal":
            for position in tasks:
                index.finish(position, {**message, "status": "error", "compile_s": 0.0}, None)
            log.warning("  compile failed: %s", message["error"].splitlines()[0])
            return []
        else:  # done
            return []


def describe_task(task: Task) -> str:
    """``bs=8 pipeline=1``."""
    return f"bs={task.batch_size} pipeline={task.pipeline_size}"


def receive(conn: Connection) -> dict[str, Any] | None:
    """The next message from the compile process, or None if the pipe is closed or garbled."""
    try:
        message = json.loads(conn.recv_bytes())
    except (EOFError, OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(message, dict) or message.get("protocol") != PROTOCOL_VERSION:
        return None
    return message


def accept(
    message: Mapping[str, Any], index: IndexWriter, task: Task, job: CompileJob, shared: Path | None
) -> None:
    """Record one configuration's result (and store a new artifact in the shared cache)."""
    artifact = Path(job.directory) / message["filename"] if message.get("filename") else None
    if message["status"] == "ok":
        log.info("  done in %.2f s: %s", message["compile_s"], message["filename"])
        if shared is not None and artifact is not None:
            with contextlib.suppress(OSError):
                copy_atomically(artifact, shared / artifact.name)
    else:
        log.warning("  error: %s", str(message.get("error", "")).splitlines()[0])
    index.finish(task.position, message, artifact)


def abandon(
    process: CompileProcess,
    index: IndexWriter,
    tasks: dict[int, Task],
    current: int | None,
    started: bool,
    reason: str,
    began: float,
) -> list[Task]:
    """After a crash or timeout: fail the current task (or all), return the rest to retry."""
    process.kill()
    log.warning("  error: %s", reason.splitlines()[0])
    if started and current is not None:
        index.fail(current, reason, time.monotonic() - began)
        return [task for position, task in tasks.items() if position != current]
    for position in tasks:
        index.fail(position, reason)
    return []


# --- inside the compile process --------------------------------------------------------------
