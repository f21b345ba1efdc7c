"""The model index file ``compile`` writes and ``benchmark`` reads (DESIGN.md "Model index").

``{"format": "pytest-neuronperf-index", "version": 1, "model_name", "model_configs": [...]}``;
each configuration has DESIGN.md's keys (``filename``, ``batch_size``, ``pipeline_size``,
``compiler``, ``compile_s``, ``status``) and ours (``cached``, ``cache_key``, ``error``, ...).
Artifact filenames are relative to the index's directory. The writer rewrites the whole file
atomically whenever a configuration finishes, so a reader never sees half an index.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_neuronperf import safe_files
from pytest_neuronperf.engine.model_ref import ModelReferenceError

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
        safe_files.write_text(self.path, json.dumps(data, indent=2) + "\n")
