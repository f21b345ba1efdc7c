"""Datasets as inputs, and dynamic batching: how a copy gets the input of each call.

``inputs=`` may be a torch ``Dataset`` or any iterable of samples (a generator, a
``DataLoader``'s dataset, a custom iterable) instead of one example; a plain list is a dataset
when ``dataset_loader_fn`` or ``eval_metrics`` is given (else it is one example per batch
size). Each copy batches it to the configuration's batch size
(``dataset_loader_fn(dataset, batch_size)`` if given, else a torch ``DataLoader`` for torch, or
NumPy stacking; incomplete last batches are dropped) and each
measured call fetches its next batch: the fetch is inside the timed end-to-end latency.
``preprocess_fn`` receives the whole batch (e.g. ``lambda b: b[0]`` takes the images of
``(image, label)`` samples); without one, a tuple batch is the model's positional inputs. With
``eval_metrics``, column ``eval_target_col`` of each batch is the target and the rest the inputs.

``loop_dataset=True`` restarts the data when it runs out and measures for ``duration``;
``False`` runs the data once per copy and measures that pass (``duration`` is ignored; every
call counts). Warm-up runs on its own pass of the data, and the measured pass starts afresh.

Dynamic batching (``split_batch``): a model compiled for batch *b* serves a user batch of *k x b*
samples as *k* calls of *b*, outputs concatenated; throughput counts the user's samples.
"""

from __future__ import annotations

import threading
import time
from array import array
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from pytest_neuronperf.protocol import messages
from pytest_neuronperf.protocol.specs import CopyOptions


class Exhausted(Exception):
    """The data ran out (``loop_dataset=False``): the copy's pass is over."""


class Feed:
    """Batches of the dataset for one copy's driver threads (thread-safe ``next``)."""

    def __init__(self, options: CopyOptions, batch_size: int, framework: str) -> None:
        self._options = options
        self._batch_size = batch_size
        self._framework = framework
        self._lock = threading.Lock()
        self._loop = True
        self._batches = self._fresh()

    def _fresh(self) -> Iterator[Any]:
        return iter(batches(self._options, self._batch_size, self._framework))

    def start_measuring(self) -> None:
        """After warm-up: the measured pass starts at the beginning, looping only if asked."""
        with self._lock:
            self._loop = self._options.loop_dataset
            self._batches = self._fresh()

    def next(self) -> Any:
        """The next batch; raises :class:`Exhausted` when a single pass is over."""
        with self._lock:
            for attempt in range(2):
                try:
                    return next(self._batches)
                except StopIteration:
                    if not self._loop or attempt:
                        break
                    self._batches = self._fresh()
        if self._loop:
            raise ValueError(
                f"the dataset yields no batch of {self._batch_size} samples (incomplete batches "
                f"are dropped): use a smaller batch size or more data"
            )
        raise Exhausted


def batches(options: CopyOptions, batch_size: int, framework: str) -> Any:
    """The batches of one pass: ``dataset_loader_fn``, a torch ``DataLoader``, or stacking."""
    if options.dataset_loader_fn is not None:
        return options.dataset_loader_fn(options.dataset, batch_size)
    if framework == "torch":
        from torch.utils.data import DataLoader

        return DataLoader(options.dataset, batch_size=batch_size, drop_last=True)
    return stacked_batches(options.dataset, batch_size)


def stacked_batches(samples: Any, batch_size: int) -> Iterator[Any]:
    """NumPy batches of ``batch_size`` samples (tuples stacked field by field)."""
    chunk: list[Any] = []
    for sample in samples:
        chunk.append(sample)
        if len(chunk) == batch_size:
            yield collate(chunk)
            chunk = []


def collate(samples: list[Any]) -> Any:
    """Stack samples: a tuple/list of fields becomes a tuple of stacked fields."""
    first = samples[0]
    if isinstance(first, tuple | list):
        return tuple(collate([s[i] for s in samples]) for i in range(len(first)))
    return np.stack([np.asarray(s) for s in samples])


def split_target(batch: Any, column: int) -> tuple[Any, Any]:
    """(inputs, target) of a batch whose column ``column`` is the target."""
    if not isinstance(batch, tuple | list) or len(batch) < 2:
        raise ValueError(
            "eval_metrics needs batches of (*inputs, target); this dataset's batches are "
            f"{type(batch).__name__}: yield (input, target) samples or set eval_target_col"
        )
    fields = list(batch)
    target = fields.pop(column)
    return (fields[0] if len(fields) == 1 else tuple(fields)), target


def dataset_call(
    feed: Feed,
    model: Callable[..., Any],
    prepare: Callable[[Any], tuple[Any, ...]],
    options: CopyOptions,
    preprocess_fn: Callable[..., Any] | None,
    postprocess_fn: Callable[..., Any] | None,
    synchronize: Callable[[], None] | None,
    on_output: Callable[[Any, Any], None] | None,
) -> Callable[[], Any]:
    """One end-to-end call on the next batch: fetch, pre-process, infer, post-process."""
    evaluating = on_output is not None

    def end_to_end() -> Any:
        batch = feed.next()
        target = None
        if evaluating:
            batch, target = split_target(batch, options.eval_target_col)
        if preprocess_fn is not None:
            batch = preprocess_fn(batch)
        out = model(*prepare(batch))
        if postprocess_fn is not None:
            out = postprocess_fn(out)
        if synchronize is not None:
            synchronize()
        if on_output is not None:
            on_output(out, target)
        return out

    return end_to_end


def split_batches(model: Callable[..., Any], compiled: int) -> Callable[..., Any]:
    """Dynamic batching: call ``model`` on slices of ``compiled`` samples, join the outputs."""

    def split_call(*args: Any) -> Any:
        total = _leading(args)
        if total % compiled:
            raise ValueError(
                f"dynamic batching: a batch of {total} is not a multiple of the compiled batch "
                f"size {compiled}"
            )
        outputs = [model(*(a[i:i + compiled] for a in args)) for i in range(0, total, compiled)]
        return concatenate(outputs)

    return split_call


def _leading(args: tuple[Any, ...]) -> int:
    return int(args[0].shape[0])


def concatenate(outputs: list[Any]) -> Any:
    """Join per-slice outputs along the batch dimension (tuples and dicts leaf by leaf)."""
    first = outputs[0]
    if len(outputs) == 1:
        return first
    if isinstance(first, tuple | list):
        return type(first)(concatenate([o[i] for o in outputs]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: concatenate([o[k] for o in outputs]) for k in first}
    root = (type(first).__module__ or "").split(".", 1)[0]
    if root == "torch":
        import torch

        return torch.cat(outputs)
    if root == "tensorflow":
        import tensorflow as tf

        return tf.concat(outputs, axis=0)
    return np.concatenate([np.asarray(o) for o in outputs])


def drive_pass(
    call: Callable[[], Any],
    workers: int,
    start_ns: int,
    thread_setup: Callable[[], None],
) -> messages.Timings:
    """``loop_dataset=False``: call from ``workers`` threads from the start until the data ends."""
    ends = [array("q") for _ in range(workers)]
    lats = [array("q") for _ in range(workers)]
    errors: list[BaseException] = []

    def thread(i: int) -> None:
        try:
            if i:
                thread_setup()
            clock = time.perf_counter_ns
            while clock() < start_ns:
                time.sleep(min(0.001, max(0.0, (start_ns - clock()) / 1e9)))
            while True:
                t0 = clock()
                try:
                    call()
                except Exhausted:
                    return
                t1 = clock()
                ends[i].append(t1)
                lats[i].append(t1 - t0)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the copy's main thread
            errors.append(exc)

    threads = [threading.Thread(target=thread, args=(i,), name=f"neuronperf-pass-{i}")
               for i in range(1, workers)]
    for t in threads:
        t.start()
    thread(0)
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return messages.Timings([np.frombuffer(e, dtype=np.int64) for e in ends],
                            [np.frombuffer(x, dtype=np.int64) for x in lats])
