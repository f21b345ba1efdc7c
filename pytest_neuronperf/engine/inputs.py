"""Which ``inputs=`` are a dataset rather than an example, and the dataset as it travels to
the model copies (which batch it: ``child.datasets``)."""

from __future__ import annotations

from typing import Any

from pytest_neuronperf.engine.limits import format_bytes, memory_budget, size_of

ARRAY_ROOTS = ("torch", "numpy", "tensorflow", "jax")


def is_dataset(inputs: Any) -> bool:
    """True when ``inputs`` is a dataset rather than an example (or a list of examples)."""
    if isinstance(inputs, list | tuple | dict | str | bytes) or hasattr(inputs, "shape"):
        return False
    if _is_data_loader(inputs):
        return True
    root = (type(inputs).__module__ or "").split(".", 1)[0]
    if root in ARRAY_ROOTS and not _is_torch_dataset(inputs):
        return False
    return _is_torch_dataset(inputs) or hasattr(inputs, "__iter__")


def _is_torch_dataset(inputs: Any) -> bool:
    return any(
        (base.__module__ or "").startswith("torch.utils.data") and base.__name__.endswith("Dataset")
        for base in type(inputs).__mro__
    )


def _is_data_loader(inputs: Any) -> bool:
    return type(inputs).__name__ == "DataLoader" and (
        type(inputs).__module__ or "").startswith("torch.utils.data")


def portable_dataset(inputs: Any) -> Any:
    """What travels to the copies: a torch ``Dataset`` as is (it is pickled; a ``DataLoader``
    gives its dataset, batched again per batch size), any other iterable as the list of its
    samples (a generator cannot travel)."""
    if _is_data_loader(inputs):
        inputs = inputs.dataset
    if _is_torch_dataset(inputs):
        return inputs
    samples = bounded_list(inputs)
    if not samples:
        raise ValueError("inputs is an empty dataset: it yields no samples to benchmark on")
    return samples


def bounded_list(inputs: Any) -> list[Any]:
    """The samples of ``inputs``, refused as soon as they hold more than the memory budget
    (``engine.limits``): an endless generator must not fill the parent's memory."""
    limit = memory_budget()
    samples: list[Any] = []
    held = 0
    for sample in inputs:
        samples.append(sample)
        held += size_of(sample)
        if held > limit:
            raise ValueError(
                f"inputs yielded {len(samples)} samples holding more than {format_bytes(limit)} "
                f"(half the memory available now) and had not ended: an endless or very large "
                f"iterable cannot be sent to the model copies; pass a finite dataset (e.g. "
                f"itertools.islice(generator, n)) or a torch Dataset that loads its samples "
                f"when indexed")
    return samples
