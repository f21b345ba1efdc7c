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

from pytest_neuronperf import model_index
from pytest_neuronperf.compilers import COMPILERS
from pytest_neuronperf.compilers.neuron import as_arg_list
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
from pytest_neuronperf.devices import get_backend
from pytest_neuronperf.engine import grid
from pytest_neuronperf.engine.grid import cast_mode_list
from pytest_neuronperf.engine.instances import ship_instance
from pytest_neuronperf.engine.model_ref import describe_model
from pytest_neuronperf.engine.planning import (
    DEVICE_ALIASES,
    check_framework,
    inputs_per_batch,
)
from pytest_neuronperf.frameworks import casts, infer_framework, to_portable
from pytest_neuronperf.logs import console
from pytest_neuronperf.model_index import (
    INDEX_FORMAT,
    INDEX_VERSION,
    IndexWriter,
    check_target,
    config_entry,
    read_model_index,
)
from pytest_neuronperf.protocol.specs import ModelSource

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
    performance_levels: int | Sequence[int] | None = None,
    models_dir: str | os.PathLike[str] | None = None,
    filename: str | os.PathLike[str] | None = None,
    compiler_args: Any = None,
    verbosity: int = 1,
    model_name: str | None = None,
    *,
    cast_modes: str | Sequence[str] | None = None,
    compiler: str = "auto",
    framework: str | None = None,
    device_type: str = "auto",
    cache: bool | str | os.PathLike[str] = True,
    timeout: float | None = None,
    verify: bool | Mapping[str, float] = True,
) -> str:
    """Compile ``model`` per batch size and pipeline size; return the path of the model index.

    NeuronPerf's arguments first, in its order. ``model`` and ``inputs`` are as for
    ``benchmark``; a model instance (e.g. with trained weights) is saved for the compile process
    (its class must be importable). ``performance_levels`` (0 = max accuracy ... 3 = max
    performance) are neuron-cc's cast levels and ``cast_modes`` (fp32, fp16, bf16, mixed) the
    precision, each a dimension of the index (entries record ``cast_mode`` and
    ``performance_level``): on Neuron as the compiler's cast options (``--fast-math`` /
    ``--auto-cast``), for torchscript/export by converting (or autocasting) the model behind
    float32 inputs and outputs; outputs are then verified with a tolerance that fits the dtype.
    ``device_type="gpu"`` means ``cuda``. ``compiler``: ``auto`` (torch:
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
    device_type = DEVICE_ALIASES.get(device_type, device_type)
    if cast_modes is not None or performance_levels is not None:
        return compile_variants(
            model, inputs, cast_modes, performance_levels, batch_sizes=batch_sizes,
            pipeline_sizes=pipeline_sizes, models_dir=models_dir, filename=filename,
            compiler_args=compiler_args, verbosity=verbosity, model_name=model_name,
            compiler=compiler, framework=framework, device_type=device_type, cache=cache,
            timeout=timeout, verify=verify,
        )
    with console(verbosity), tempfile.TemporaryDirectory(prefix="neuronperf-instance-") as scratch:
        return compile_one(model, inputs, batch_sizes, pipeline_sizes, compiler, compiler_args,
                           models_dir, filename, framework, device_type, model_name, cache,
                           timeout, verbosity, verify, Path(scratch))


def compile_one(
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
    scratch: Path,
) -> str:
    """``compile`` of one variant (one compiler-argument set); ``scratch`` holds a saved
    model instance for the compile process while it runs."""
    source, framework = identify(model, inputs, compiler, framework, model_name)
    shipped = ship_instance(model, source, framework, scratch)
    compiler_name = resolve_compiler(compiler, framework, device_type)
    check_compiler_args(compiler_args)
    check_timeout(timeout)
    tolerance, do_verify = verify_settings(verify, compiler_name)
    sizes = grid.sizes("batch_sizes", batch_sizes)
    pipelines = grid.sizes("pipeline_sizes", pipeline_sizes)
    per_batch = inputs_per_batch(to_portable(inputs), sizes)

    directory = Path(models_dir if models_dir is not None else DEFAULT_MODELS_DIR).absolute()
    index_path = index_location(models_dir, filename, source.name)
    log.info("compile %s with %s for batch sizes %s, pipeline sizes %s: artifacts go to %s%s, "
             "the model index to %s", source.name, compiler_name, sizes, pipelines, directory,
             "" if models_dir is not None else " (the default models_dir, in the current "
             "directory)", index_path)
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
        fingerprint=model_fingerprint(model, shipped),
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
            source=shipped,
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


def compile_variants(
    model: Any,
    inputs: Any,
    cast_modes: Any,
    performance_levels: Any,
    **settings: Any,
) -> str:
    """``cast_modes`` / ``performance_levels``: one compile per variant, with the compiler's cast
    options, merged into one index whose entries record their ``cast_mode`` (and
    ``performance_level``); ``benchmark`` filters them with ``cast_modes``."""
    casts_wanted = cast_mode_list(cast_modes) if cast_modes is not None else [None]
    levels: list[int | None] = [None]
    if performance_levels is not None:
        levels = list(dict.fromkeys(grid.as_list(performance_levels)))
        for level in levels:
            if isinstance(level, bool) or level not in casts.NEURON_PERFORMANCE_LEVELS:
                raise ValueError(f"performance_levels are 0 (max accuracy) to 3 (max "
                                 f"performance), got {level!r}")
    source, framework = identify(model, inputs, settings["compiler"], settings["framework"],
                                 settings["model_name"])
    compiler_name = resolve_compiler(settings["compiler"], framework, settings["device_type"])
    target = index_location(settings["models_dir"], settings["filename"], source.name)
    name = target.name
    parts = []
    for cast in casts_wanted:
        for level in levels:
            args = variant_args(compiler_name, settings["compiler_args"], cast, level)
            tag = "-".join(str(v) for v in (cast, level) if v is not None)
            verify = settings["verify"]
            if verify is True and cast in casts.CAST_TOLERANCES and casts.CAST_TOLERANCES[cast]:
                rtol, atol = casts.CAST_TOLERANCES[cast]  # type: ignore[misc]
                verify = {"rtol": rtol, "atol": atol}
            part = compile(model, inputs, **{**settings, "compiler_args": args, "verify": verify,
                                             "models_dir": settings["models_dir"]
                                             or DEFAULT_MODELS_DIR,
                                             "filename": f".{Path(name).stem}-{tag}.json"})
            index = model_index.load(part)
            for entry in index["model_configs"]:
                entry["cast_mode"] = cast or "fp32"
                if level is not None:
                    entry["performance_level"] = level
            parts.append(index)
            Path(part).unlink()
    return model_index.save(model_index.append(*parts), target)


def index_location(
    models_dir: str | os.PathLike[str] | None, filename: str | os.PathLike[str] | None, name: str
) -> Path:
    """Where the index goes: ``filename`` as given (relative to here) when ``models_dir`` is
    not given, as in NeuronPerf's examples (``compile(..., filename="resnet50.json")`` then
    ``benchmark("resnet50.json", ...)``); else inside ``models_dir``; by default
    ``<models_dir>/<model_name>.json``."""
    directory = Path(models_dir if models_dir is not None else DEFAULT_MODELS_DIR).absolute()
    if filename is not None and models_dir is None:
        return check_target(Path(filename).absolute())
    return check_target(directory / (filename or f"{safe_name(name)}.json"))


def variant_args(compiler: str, compiler_args: Any, cast: str | None, level: int | None) -> Any:
    """The compiler arguments of one cast/performance-level variant, or a clear refusal."""
    if compiler in ("neuron", "neuronx"):
        return [*as_arg_list(compiler_args), *casts.neuron_cast_args(compiler, cast, level)]
    if level is not None:
        raise ValueError(
            f"performance_levels are Neuron compiler (neuron-cc) options; the {compiler} "
            f"compiler has none: use cast_modes to trade accuracy for speed"
        )
    if compiler in ("torchscript", "export"):
        if compiler_args is not None and not isinstance(compiler_args, Mapping):
            raise TypeError(f"compiler_args for {compiler!r} must be a dict")
        return {**(compiler_args or {}), "cast": cast or "fp32"}
    if cast not in (None, "fp32"):
        raise ValueError(
            f"cast_modes={cast!r} cannot be compiled with {compiler}: a SavedModel keeps the "
            f"Keras model's precision; benchmark the Keras class with cast_modes (the copy "
            f"sets the Keras mixed-precision policy)"
        )
    return compiler_args


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
