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
  a valid index of what finished (``model_index``). Artifacts are cached by a key of everything
  that changes them (``compile_cache``).

``compiler="eager"`` means *no compilation*: ``compile`` refuses it with a ValueError (benchmark
the class itself; an index of uncompiled models would only point back at the class).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from pytest_neuronperf.compilers import COMPILERS
from pytest_neuronperf.compiling.cache import (
    KeyMaterial,
    artifact_stem,
    environment_versions,
    find_cached,
    model_fingerprint,
    safe_name,
    shared_cache_dir,
)
from pytest_neuronperf.compiling.child import (
    FALLBACK_TOLERANCE,
    SUPPORT,
    CompileJob,
    Task,
)
from pytest_neuronperf.compiling.supervisor import run_compile
from pytest_neuronperf.engine import grid
from pytest_neuronperf.engine.benchmark import check_framework, inputs_per_batch
from pytest_neuronperf.engine.model_ref import describe_model
from pytest_neuronperf.engine.specs import ModelSource
from pytest_neuronperf.frameworks import infer_framework, to_portable
from pytest_neuronperf.logs import console
from pytest_neuronperf.model_index import (
    INDEX_FORMAT,
    INDEX_VERSION,
    IndexWriter,
    config_entry,
    read_model_index,
)

log = logging.getLogger("pytest_neuronperf")

DEFAULT_MODELS_DIR = "neuronperf-models"

DEVICE_COMPILERS = frozenset({"neuron", "neuronx"})
"""Artifacts that only run on their device: verified only where that device exists."""
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
    with console(verbosity):
        return compile_index(model, inputs, batch_sizes, pipeline_sizes, compiler, compiler_args,
                             models_dir, filename, framework, device_type, model_name, cache,
                             timeout, verbosity, verify)


def compile_index(
    model: Any,
    inputs: Any,
    batch_sizes: int | Sequence[int] | None,
    pipeline_sizes: int | Sequence[int] | None,
    compiler: str,
    compiler_args: Any,
    models_dir: str | os.PathLike[str] | None,
    filename: str | os.PathLike[str] | None,
    framework: str | None,
    device_type: str,
    model_name: str | None,
    cache: bool | str | os.PathLike[str],
    timeout: float | None,
    verbosity: int,
    verify: bool | Mapping[str, float],
) -> str:
    """:func:`compile`'s work, with its arguments as given."""
    source, framework = identify(model, inputs, compiler, framework, model_name)
    compiler_name = resolve_compiler(compiler, framework, device_type)
    check_compiler_args(compiler_args)
    check_timeout(timeout)
    tolerance, do_verify = verify_settings(verify, compiler_name)
    sizes = grid.sizes("batch_sizes", batch_sizes)
    pipelines = grid.sizes("pipeline_sizes", pipeline_sizes)
    per_batch = inputs_per_batch(to_portable(inputs), sizes)

    directory = Path(models_dir if models_dir is not None else DEFAULT_MODELS_DIR).absolute()
    index_path = directory / (filename or f"{safe_name(source.name)}.json")
    log.info("compile %s with %s for batch sizes %s, pipeline sizes %s: artifacts and the "
             "model index go to %s%s", source.name, compiler_name, sizes, pipelines, directory,
             "" if models_dir is not None else " (the default models_dir, in the current "
             "directory)")
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
    log.info("model index: %s", index_path)
    return str(index_path)


def identify(
    model: Any, inputs: Any, compiler: str, framework: str | None, model_name: str | None
) -> tuple[ModelSource, str]:
    """The model's source and framework, or a clear refusal."""
    if compiler == "eager":
        raise ValueError(EAGER_REFUSAL)
    if isinstance(model, str | os.PathLike) and read_model_index(Path(model)) is not None:
        raise ValueError(f"{os.fspath(model)!r} is already a model index: benchmark it directly")
    source = describe_model(model, model_name)
    check_framework(model, framework)
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
