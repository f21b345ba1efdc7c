"""Inside a model copy: NeuronPerf's per-copy options around load, call and measurement.

``child.main`` calls these hooks in order: :meth:`CopyHooks.before_load` (``env_setup_fn``,
the TensorFlow precision policy), :meth:`after_load` (cast, dynamic batching, ``setup_fn``),
:meth:`build_call` (dataset feeding and accuracy metrics, else the child's own call),
:meth:`warmed_up`, :meth:`drive` (samples CPU and memory; a single pass over the data when
``loop_dataset=False``) and :meth:`stats` (the ``stats`` message).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pytest_neuronperf.child.datasets import Feed, dataset_call, drive_pass, split_batches
from pytest_neuronperf.child.sampling import ResourceUse, Sampler
from pytest_neuronperf.evaluation import Evaluator
from pytest_neuronperf.frameworks import casts
from pytest_neuronperf.protocol import messages
from pytest_neuronperf.protocol.specs import WorkerSpec

Drive = Callable[..., messages.Timings]


class CopyHooks:
    """The options of one copy (``spec.options``) applied at each stage."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.options = spec.options
        self.copy_id = spec.placement.copy_index
        self.feed: Feed | None = None
        self.evaluator: Any = None
        self.usage: ResourceUse | None = None

    @property
    def _device(self) -> str:
        return str(self.spec.placement.torch_device)

    def before_load(self) -> None:
        """``env_setup_fn(id, config)``, then the framework's precision policy."""
        if self.options.env_setup_fn is not None:
            self.options.env_setup_fn(self.copy_id, dict(self.options.config))
        if self.options.cast_stage == "load":
            casts.before_load(self.spec.framework, self.options.cast_mode, self._device)

    def after_load(self, model: Callable[..., Any]) -> Callable[..., Any]:
        """The model cast and split for dynamic batching; then ``setup_fn(id, config, model)``."""
        if self.options.cast_stage == "load":
            model = casts.cast_model(self.spec.framework, model, self.options.cast_mode,
                                     self._device)
        if self.options.split_batch is not None:
            model = split_batches(model, self.options.split_batch)
        if self.options.setup_fn is not None:
            self.options.setup_fn(self.copy_id, dict(self.options.config), model)
        return model

    def cast_inputs(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """The prepared example inputs in the configuration's precision."""
        if self.options.cast_stage == "none":
            return args
        return casts.cast_inputs(self.spec.framework, args, self.options.cast_mode)

    def build_call(
        self,
        adapter: Any,
        model: Callable[..., Any],
        default: Callable[[], Callable[[], Any]],
    ) -> Callable[[], Any]:
        """The end-to-end call: on the next dataset batch if ``inputs`` is a dataset."""
        if self.options.dataset is None:
            return default()
        if self.options.eval_metrics:
            self.evaluator = Evaluator(self.options.eval_metrics)
        spec = self.spec
        self.feed = Feed(self.options, spec.batch_size, spec.framework)

        def prepare(batch: Any) -> tuple[Any, ...]:
            args = adapter.prepare_inputs(batch, spec.batch_size, spec.placement)
            return self.cast_inputs(tuple(args))

        return dataset_call(self.feed, model, prepare, self.options, spec.preprocess_fn,
                            spec.postprocess_fn, adapter.synchronizer(spec.placement),
                            self.evaluator.update if self.evaluator is not None else None)

    def warmed_up(self) -> None:
        """Measurement starts afresh: the data from its beginning, metrics from zero."""
        if self.feed is not None:
            self.feed.start_measuring()
        if self.evaluator is not None:
            self.evaluator.reset()

    def drive(self, call: Callable[[], Any], go: messages.Go, thread_setup: Callable[[], None],
              default: Drive) -> messages.Timings:
        """Measure (the child's ``drive``, or one pass over the data) while sampling."""
        sampler = Sampler(self.options.stats_interval, go.start_ns)
        try:
            if self.feed is not None and not self.options.loop_dataset:
                return drive_pass(call, self.spec.workers, go.start_ns, thread_setup)
            return default(call, self.spec.workers, go.start_ns, go.end_ns, thread_setup)
        finally:
            self.usage = sampler.stop()

    def stats(self) -> messages.CopyStats:
        """The ``stats`` message: resource use during the window and metric states."""
        usage = self.usage or ResourceUse(float("nan"), float("nan"), 0)
        states = self.evaluator.states() if self.evaluator is not None else {}
        return messages.CopyStats(usage.cpu_percent_avg, usage.memory_mb_peak, usage.samples,
                                  states)
