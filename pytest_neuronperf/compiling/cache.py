"""The compile cache: which artifact a configuration needs, and where a finished one is.

Artifacts are named ``<model>-b<batch>-p<pipeline>-<compiler>-<key>`` inside
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
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import inspect
import json
import os
import platform
import sys
import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_neuronperf import __version__, safe_files
from pytest_neuronperf.devices.cpu import cpu_model_name
from pytest_neuronperf.frameworks.base import as_args
from pytest_neuronperf.protocol.specs import ModelSource

CACHE_KEY_VERSION = 1
"""Bump when the artifact layout or the key material changes, so old artifacts miss."""
CACHE_DIR_ENV = "NEURONPERF_CACHE_DIR"

FRAMEWORK_PACKAGES: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "tensorflow": ("tensorflow", "tensorflow-cpu", "keras", "tf-keras"),
}
COMPILER_PACKAGES: dict[str, tuple[str, ...]] = {
    "neuron": ("torch-neuron", "neuron-cc", "tensorflow-neuron"),
    "neuronx": ("torch-neuronx", "neuronx-cc", "libneuronxla"),
}
NATIVE_CODE_COMPILERS = frozenset({"export"})
"""Compilers whose artifacts hold code for this CPU: the CPU model is part of their key."""
LIBRARY_ROOTS = frozenset({"torch", "tensorflow", "keras", "tf_keras", "builtins", "abc", "typing"})


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


def safe_name(name: str) -> str:
    """``name`` with anything but letters, digits, ``._-`` replaced, for file names."""
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in name).strip("._")
    return cleaned or "model"


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
    return safe_files.copy_atomically(source, target)
