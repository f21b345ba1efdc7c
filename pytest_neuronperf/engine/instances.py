"""Model instances with trained weights travel to the model (and compile) processes as files.

``benchmark(instance, ...)`` and ``compile(instance, ...)`` save the instance once, in the
parent, to a temporary directory the call owns; each process loads that file:

- torch: ``torch.save`` of the module (weights and all), loaded with ``torch.load``;
- TensorFlow/Keras: ``model.save`` to a ``.keras`` file, loaded with ``keras.models.load_model``
  (a subclassed model needs ``get_config`` and registration, as Keras requires);
- python: ``pickle``.

torch and pickle store the instance's class *by name*: the class must be importable by the
processes (``describe_model`` refuses a local or interactive class before anything is saved).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from pytest_neuronperf.protocol.specs import ModelReferenceError, ModelSource

SAVED_KINDS = {"torch": ("torch.save", ".pt"), "tensorflow": ("keras", ".keras"),
               "python": ("pickle", ".pkl")}
"""Framework -> (``ModelSource.compiler`` tag, file suffix) of a saved instance."""


def ship_instance(model: Any, source: ModelSource, framework: str, directory: Path) -> ModelSource:
    """Save ``model`` under ``directory``; the path source every process loads it from."""
    if source.kind != "instance":
        return source
    if framework not in SAVED_KINDS:
        raise ModelReferenceError(f"cannot save a {framework} model instance: unknown framework")
    tag, suffix = SAVED_KINDS[framework]
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{source.name}-instance{suffix}"
    try:
        save(model, framework, path)
    except (pickle.PicklingError, AttributeError, TypeError, ValueError,
            NotImplementedError) as exc:
        raise ModelReferenceError(
            f"model instance of {source.qualname!r} cannot be saved for the model processes "
            f"({type(exc).__name__}: {exc}): pass its class or a zero-argument factory defined at "
            f"module top level, or save it yourself (e.g. torch.jit.save) and pass the path"
        ) from exc
    return ModelSource(kind="path", name=source.name, filename=source.filename, path=str(path),
                       compiler=tag)


def save(model: Any, framework: str, path: Path) -> None:
    """Write ``model`` to ``path`` the way its framework's processes load it."""
    if framework == "torch":
        import torch

        torch.save(model, str(path))
    elif framework == "tensorflow":
        model.save(str(path))
    else:
        with path.open("wb") as stream:
            pickle.dump(model, stream)
