"""The model index file ``compile`` writes and ``benchmark`` reads (DESIGN.md "Model index").

``{"format": "pytest-neuronperf-index", "version": 1, "model_name", "model_configs": [...]}``;
each configuration has DESIGN.md's keys (``filename``, ``batch_size``, ``pipeline_size``,
``compiler``, ``compile_s``, ``status``) and ours (``cached``, ``cache_key``, ``error``, ...).
Artifact filenames are relative to the index's directory (one that climbs out of it is
refused). NeuronPerf's index tools (``create``, ``load``, ``save``, ``append``, ``filter``,
``copy``, ``move``, ``delete``) are at the end. The writer rewrites the whole file
atomically whenever a configuration finishes, so a reader never sees half an index.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_neuronperf import safe_files
from pytest_neuronperf.protocol.specs import ModelReferenceError

INDEX_FORMAT = "pytest-neuronperf-index"
INDEX_VERSION = 1
"""Model index format version (``version`` key). History: 1 - first version."""


def read_model_index(path: Path) -> dict[str, Any] | None:
    """The parsed model index if ``path`` is one, None if it is another kind of file."""
    if path.suffix != ".json" or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelReferenceError(f"model index {str(path)!r} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != INDEX_FORMAT:
        raise ModelReferenceError(
            f"{str(path)!r} is a JSON file but not a pytest-neuronperf model index "
            f"(expected \"format\": \"{INDEX_FORMAT}\")"
        )
    version = data.get("version")
    if not isinstance(version, int) or version > INDEX_VERSION:
        raise ModelReferenceError(
            f"model index {str(path)!r} has version {version!r}; this pytest-neuronperf reads "
            f"versions up to {INDEX_VERSION}: upgrade pytest-neuronperf or compile again"
        )
    if not isinstance(data.get("model_configs"), list):
        raise ModelReferenceError(
            f"model index {str(path)!r} has no \"model_configs\" list: compile it again"
        )
    return data


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
        """``artifact`` relative to the index's directory (absolute when outside it)."""
        folder = self.path.parent.resolve()
        if not artifact.resolve().is_relative_to(folder):
            return str(artifact.resolve())
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
        safe_files.write_text(self.path, json.dumps(data, indent=2) + "\n")


# --- NeuronPerf's model_index tools ----------------------------------------------------------
#
# An index in memory is a dict like the file, except that artifact filenames are paths usable
# from here (absolute after ``load``, as given after ``create``). On disk they are relative to
# the index's folder when inside it; a relative filename that climbs out of that folder
# (``../x``) is refused when read, and ``delete``/``move`` never remove a file outside it.

DEFAULT_CAST = "fp32"


class ModelIndexError(ModelReferenceError):
    """A model index operation was refused (bad index, escaping filename, missing file)."""


def resolve_artifact(index_path: Path, filename: str) -> Path:
    """The artifact a (relative or absolute) ``filename`` of the index at ``index_path`` names.

    A relative name must stay inside the index's folder: ``../`` out of it is refused.
    """
    candidate = Path(filename)
    if candidate.is_absolute():
        return candidate
    folder = index_path.parent.resolve()
    resolved = (folder / candidate).resolve()
    if not resolved.is_relative_to(folder):
        raise ModelIndexError(
            f"model index {str(index_path)!r} names artifact {filename!r}, which is outside the "
            f"index's folder {str(folder)!r}: keep artifacts beside (or below) the index, or "
            f"write an absolute path"
        )
    return resolved


def _as_index(index: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, Any]:
    """A loaded index (a copy), from a dict or a path."""
    if isinstance(index, Mapping):
        if not isinstance(index.get("model_configs"), list):
            raise ModelIndexError("a model index needs a \"model_configs\" list")
        copied: dict[str, Any] = json.loads(json.dumps(index))
        return copied
    return load(index)


def create(
    filename: str | os.PathLike[str],
    input_idx: int = 0,
    batch_size: int = 1,
    pipeline_size: int = 1,
    cast_mode: str = DEFAULT_CAST,
    compile_s: float | None = None,
) -> dict[str, Any]:
    """A new model index for one pre-compiled model file (not written: see :func:`save`)."""
    path = Path(filename)
    if not path.exists():
        raise ModelIndexError(f"model file {str(path)!r} does not exist")
    for name, value in (("batch_size", batch_size), ("pipeline_size", pipeline_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ModelIndexError(f"{name} must be a positive integer, got {value!r}")
    entry = {"filename": str(path.absolute()), "input_idx": input_idx, "batch_size": batch_size,
             "pipeline_size": pipeline_size, "cast_mode": cast_mode, "compiler": None,
             "compile_s": compile_s, "status": "ok"}
    return {"format": INDEX_FORMAT, "version": INDEX_VERSION, "model_name": path.stem,
            "model_configs": [entry]}


def load(filename: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a model index; its artifact filenames come back as absolute paths."""
    path = Path(filename)
    if not path.is_file():
        raise ModelIndexError(f"model index {str(path)!r} does not exist")
    data = read_model_index(path) if path.suffix == ".json" else None
    if data is None:
        raise ModelIndexError(f"{str(path)!r} is not a model index (a .json file compile wrote)")
    for entry in data["model_configs"]:
        if isinstance(entry, dict) and isinstance(entry.get("filename"), str):
            entry["filename"] = str(resolve_artifact(path, entry["filename"]))
    return data


def check_target(path: Path) -> Path:
    """``path`` if a model index may be written there: a ``.json`` name (what ``benchmark``
    recognises an index by) that is free or holds a model index; else a refusal naming it,
    so that no other file of the user's is ever replaced."""
    if path.suffix != ".json":
        raise ModelReferenceError(
            f"model index file {str(path)!r} must end in .json (benchmark recognises a model "
            f"index by it): pass filename='<name>.json'")
    if path.is_dir():
        raise ModelReferenceError(f"model index file {str(path)!r} is a directory: pass a file "
                                  f"name")
    if path.exists():
        try:
            read_model_index(path)
        except ModelReferenceError as exc:
            raise ModelReferenceError(
                f"{exc}; it would be replaced by the model index: choose another filename or "
                f"remove that file") from None
    return path


def save(
    model_index: Mapping[str, Any],
    filename: str | os.PathLike[str] | None = None,
    root_dir: str | os.PathLike[str] | None = None,
) -> str:
    """Write ``model_index`` (atomically); returns the path. Artifacts inside the index's folder
    are stored relative to it. ``filename`` defaults to ``<model_name>.json``."""
    index = _as_index(model_index)
    name = filename if filename is not None else f"{index.get('model_name') or 'model'}.json"
    path = check_target(Path(Path(root_dir or ".") / name).absolute())
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = path.parent.resolve()
    for entry in index["model_configs"]:
        if isinstance(entry.get("filename"), str):
            artifact = Path(entry["filename"]).absolute().resolve()
            entry["filename"] = (os.path.relpath(artifact, folder)
                                 if artifact.is_relative_to(folder) else str(artifact))
    header = {k: v for k, v in index.items() if k != "model_configs"}
    header.setdefault("format", INDEX_FORMAT)
    header.setdefault("version", INDEX_VERSION)
    writer = IndexWriter(path, header)
    writer.entries = dict(enumerate(index["model_configs"]))
    writer.write()
    return str(path)


def _config_identity(entry: Mapping[str, Any]) -> tuple[Any, ...]:
    return (entry.get("filename"), entry.get("batch_size"), entry.get("pipeline_size"),
            entry.get("cast_mode") or DEFAULT_CAST, entry.get("input_idx"))


def append(*model_indexes: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, Any]:
    """One new index with the configurations of all (duplicates dropped); the first's name."""
    if not model_indexes:
        raise ModelIndexError("append needs at least one model index")
    loaded = [_as_index(index) for index in model_indexes]
    combined = {k: v for k, v in loaded[0].items() if k != "model_configs"}
    seen: set[tuple[Any, ...]] = set()
    configs = []
    for index in loaded:
        for entry in index["model_configs"]:
            identity = _config_identity(entry)
            if identity not in seen:
                seen.add(identity)
                configs.append(entry)
    combined["model_configs"] = configs
    return combined


FILTER_ALIASES = {"batch_sizes": "batch_size", "pipeline_sizes": "pipeline_size",
                  "cast_modes": "cast_mode", "compilers": "compiler", "statuses": "status"}


def filter(index: str | os.PathLike[str] | Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
    """A new index with the configurations whose keys match: ``batch_sizes=[1, 2]``,
    ``pipeline_size=1``, ``cast_modes="bf16"`` (a value or a list of accepted values)."""
    data = _as_index(index)
    wanted = {}
    for key, value in kwargs.items():
        field_name = FILTER_ALIASES.get(key, key)
        wanted[field_name] = set(value) if isinstance(value, list | tuple | set) else {value}
    data["model_configs"] = [
        entry for entry in data["model_configs"]
        if all((entry.get(k) or (DEFAULT_CAST if k == "cast_mode" else None)) in values
               for k, values in wanted.items())
    ]
    return data


def _artifacts(index_path: Path, data: Mapping[str, Any]) -> list[Path]:
    """The artifacts an index names that exist, each inside the index's folder, or a refusal."""
    folder = index_path.parent.resolve()
    found = []
    for entry in data["model_configs"]:
        filename = entry.get("filename") if isinstance(entry, dict) else None
        if not isinstance(filename, str):
            continue
        artifact = resolve_artifact(index_path, filename).resolve()
        if not artifact.is_relative_to(folder):
            raise ModelIndexError(
                f"model index {str(index_path)!r} names {str(artifact)!r}, outside its folder "
                f"{str(folder)!r}: it is never deleted or moved from here; remove that entry "
                f"(model_index.filter) or the file yourself"
            )
        if artifact.exists():
            found.append(artifact)
    return list(dict.fromkeys(found))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def delete(filename: str | os.PathLike[str]) -> None:
    """Delete the model index and every artifact it names (all inside the index's folder)."""
    path = Path(filename)
    data = load(path)
    for artifact in _artifacts(path, data):  # checked before anything is deleted
        _remove(artifact)
    path.unlink()


def copy(
    old_index: str | os.PathLike[str] | Mapping[str, Any],
    new_index: str | os.PathLike[str],
    new_dir: str | os.PathLike[str],
) -> str:
    """Copy the artifacts of ``old_index`` into ``new_dir`` and write ``new_index`` naming the
    copies; returns the new index's path."""
    data = _as_index(old_index)
    target_dir = Path(new_dir).absolute()
    target_dir.mkdir(parents=True, exist_ok=True)
    for entry in data["model_configs"]:
        filename = entry.get("filename")
        if not isinstance(filename, str):
            continue
        source = Path(filename)
        if not source.exists():
            raise ModelIndexError(f"artifact {filename!r} of the index does not exist")
        target = target_dir / source.name
        if source.resolve() != target.resolve():
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True)
            else:
                shutil.copy2(source, target)
        entry["filename"] = str(target)
    return save(data, new_index)


def move(
    old_index: str | os.PathLike[str],
    new_index: str | os.PathLike[str],
    new_dir: str | os.PathLike[str],
) -> str:
    """:func:`copy`, then :func:`delete` the old index and its artifacts."""
    old = Path(old_index)
    before = _artifacts(old, load(old))  # refuse before copying if they could not be removed
    path = copy(old, new_index, new_dir)
    kept = {Path(e["filename"]).resolve() for e in load(path)["model_configs"]
            if isinstance(e.get("filename"), str)}
    for artifact in before:
        if artifact not in kept:
            _remove(artifact)
    if old.absolute().resolve() != Path(path).resolve():
        old.unlink()
    return path
