"""The compiler protocol: one artifact for one (batch size, pipeline size)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Compiler(Protocol):
    """Runs inside the compile process, where the framework may be imported."""

    name: str
    framework: str
    """``torch`` or ``tensorflow``: the adapter that loads the artifact."""
    suffix: str
    """Artifact file suffix (``.pt``, ``.pt2``), or ``""`` for a directory (SavedModel)."""

    def is_available(self) -> bool:
        """True when the compiler's runtime is importable here."""
        ...

    def compile(
        self,
        model: Any,
        example_args: tuple[Any, ...],
        batch_size: int,
        pipeline_size: int,
        compiler_args: Any,
        output: Path,
    ) -> None:
        """Write the artifact for ``model`` called as ``model(*example_args)`` to ``output``."""
        ...
