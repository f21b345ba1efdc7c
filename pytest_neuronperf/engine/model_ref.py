"""Turn the user's ``model`` argument into a :class:`ModelSource` a worker process can load.

Workers are separate processes, so the model travels by name (module + qualified name), by
path, or, for a model instance with trained weights, as a file the parent saves it to
(``engine.instances``; the instance's class must be importable, as pickling refers to it by
name). Anything a worker could not import is refused here, before any process starts, with a
sentence saying why and what to write instead.
"""

from __future__ import annotations

import inspect
import os
import pickle
import sys
from pathlib import Path
from typing import Any

import cloudpickle

from pytest_neuronperf.protocol.specs import ModelReferenceError, ModelSource


def describe_model(model: Any, model_name: str | None = None) -> ModelSource:
    """A :class:`ModelSource` for a top-level class/factory or a saved artifact path."""
    if isinstance(model, str | os.PathLike):
        return _describe_path(Path(model), model_name)
    if is_instance(model):
        module, qualname = importable_name(type(model), what="the model's class")
        return ModelSource(
            kind="instance",
            name=model_name or qualname.rsplit(".", 1)[-1],
            filename=f"{module}:{qualname}(instance)",
            module=module,
            qualname=qualname,
            origin=module_origin(module),
        )
    module, qualname = importable_name(model, what="model")
    return ModelSource(
        kind="import",
        name=model_name or qualname.rsplit(".", 1)[-1],
        filename=f"{module}:{qualname}",
        module=module,
        qualname=qualname,
        origin=module_origin(module),
    )


def module_origin(module: str) -> str | None:
    """The real path of the file ``module`` was loaded from here (None for a built-in)."""
    filename = getattr(sys.modules.get(module), "__file__", None)
    return os.path.realpath(filename) if isinstance(filename, str) else None


def _describe_path(path: Path, model_name: str | None) -> ModelSource:
    if not path.exists():
        raise ModelReferenceError(f"model file {str(path)!r} does not exist")
    name = model_name or (path.name if path.is_dir() else path.stem)
    return ModelSource(kind="path", name=name, filename=str(path), path=str(path.resolve()))


def is_instance(obj: Any) -> bool:
    """True for a model object (not a class, function or path): it travels as a saved file."""
    return not (
        inspect.isclass(obj) or inspect.isfunction(obj) or inspect.isbuiltin(obj)
        or inspect.ismethod(obj) or isinstance(obj, str | os.PathLike)
    )


def importable_name(obj: Any, what: str) -> tuple[str, str]:
    """``(module, qualname)`` by which a worker can import ``obj``, or a clear refusal."""
    label = getattr(obj, "__qualname__", None) or type(obj).__name__
    if not (inspect.isclass(obj) or inspect.isfunction(obj) or inspect.isbuiltin(obj)):
        raise ModelReferenceError(
            f"{what} {label!r} is an instance of {type(obj).__name__}, not a class or function: "
            f"worker processes build their own copy, so pass the class itself or a zero-argument "
            f"factory defined at module top level (or save the model, e.g. with torch.jit.save, "
            f"and pass the file path)"
        )
    qualname = obj.__qualname__
    module = getattr(obj, "__module__", None)
    if obj.__name__ == "<lambda>":
        raise ModelReferenceError(
            f"{what} is a lambda, which a worker process cannot import: define a function or "
            f"class with a name at the top level of a module and pass that instead"
        )
    if "<locals>" in qualname:
        raise ModelReferenceError(
            f"{what} {qualname!r} is defined inside a function, so a worker process cannot "
            f"import it: move it to the top level of its module and pass that instead"
        )
    if module is None or module not in sys.modules:
        raise ModelReferenceError(
            f"{what} {qualname!r} has no importable module ({module!r}): define it at the top "
            f"level of a module on sys.path"
        )
    if module == "__main__" and not getattr(sys.modules["__main__"], "__file__", None):
        raise ModelReferenceError(
            f"{what} {qualname!r} was defined in an interactive session, which a worker process "
            f"cannot import: put it in a module file and import it from there"
        )
    found: Any = sys.modules[module]
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if found is not obj:
        raise ModelReferenceError(
            f"{what} {qualname!r} is not reachable as {module}.{qualname} (it was replaced or "
            f"renamed after definition): pass an object its module exposes under its own name"
        )
    return module, qualname



class ByValue:
    """A function that travels to the model processes by value (cloudpickle): a lambda or local
    function passed as ``preprocess_fn`` & co. Unpickles as the function itself."""

    def __init__(self, fn: Any, payload: bytes) -> None:
        self.fn = fn
        self.payload = payload

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return pickle.loads, (self.payload,)


def portable_function(fn: Any, what: str, in_process: bool = False) -> Any:
    """``fn`` as it can reach a model process: by name if importable, else by value.

    NeuronPerf's own examples pass lambdas (``preprocess_fn=lambda x: x[0]``), so a function a
    process cannot import is serialised with cloudpickle (its code and the globals it uses).
    """
    if fn is None:
        return None
    if not callable(fn):
        raise ModelReferenceError(f"{what} must be a function, got {type(fn).__name__}")
    if in_process:
        return fn
    try:
        importable_name(fn, what)
    except ModelReferenceError as refusal:
        try:
            return ByValue(fn, cloudpickle.dumps(fn))
        except Exception as exc:  # noqa: BLE001 - anything cloudpickle cannot take
            raise ModelReferenceError(
                f"{refusal}; it cannot be sent by value either ({type(exc).__name__}: {exc})"
            ) from exc
    return fn
