"""Bounds on what a call may make this machine hold, from the memory it has available now.

A run that would need more memory than the machine has is refused before it starts, with the
figure and what to change, instead of ending in the kernel's OOM killer or an
``Unable to allocate`` traceback. The bound is a share of the memory available when the call
starts (``psutil``): the rest is left to the model copies and the machine's other work.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import psutil

SHARE_OF_AVAILABLE = 0.5
"""What one pre-generated structure (a dataset's samples, an arrival schedule) may take of the
memory available: the other half stays for the model copies, which load after it."""


def memory_budget() -> int:
    """Bytes one structure may take now (``SHARE_OF_AVAILABLE`` of the available memory)."""
    return int(psutil.virtual_memory().available * SHARE_OF_AVAILABLE)


def size_of(value: Any) -> int:
    """About how many bytes ``value`` holds: arrays and tensors by their data, containers by
    their items, anything else by ``sys.getsizeof``."""
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    if hasattr(value, "element_size") and hasattr(value, "nelement"):  # a torch tensor
        try:
            return int(value.element_size() * value.nelement())
        except (TypeError, RuntimeError):
            pass
    if isinstance(value, Mapping):
        return sys.getsizeof(value) + sum(size_of(k) + size_of(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return sys.getsizeof(value) + sum(size_of(item) for item in value)
    return sys.getsizeof(value)


def format_bytes(count: float) -> str:
    """``3.2 GiB``, ``512 MiB``: a size as people read it."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{int(count)} bytes"
