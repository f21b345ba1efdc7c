"""One ``benchmark`` call's arguments as one typed object, built from the library call (its
NeuronPerf-shaped signature) or from the plugin's marker and fixture call; ``planning.plan``
checks it once and turns it into a plan."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_neuronperf.devices import DeviceBackend
from pytest_neuronperf.engine import grid, serving
from pytest_neuronperf.engine.paired import PairedRequest
from pytest_neuronperf.engine.progress import ProgressCallback


@dataclass(frozen=True)
class BenchmarkRequest:
    """What to measure and how, as given (``api.benchmark`` documents each argument)."""

    model: Any
    inputs: Any
    batch_sizes: int | Sequence[int] | None = None
    duration: float = grid.DEFAULT_DURATION_S
    n_models: int | str | Sequence[int | str] | None = None
    pipeline_sizes: int | Sequence[int] | None = None
    cast_modes: str | Sequence[str] | None = None
    workers_per_model: int | Sequence[int] | None = None
    env_setup_fn: Callable[[int, dict[str, Any]], None] | None = None
    setup_fn: Callable[[int, dict[str, Any], Any], None] | None = None
    preprocess_fn: Callable[..., Any] | None = None
    postprocess_fn: Callable[..., Any] | None = None
    dataset_loader_fn: Callable[[Any, int], Any] | None = None
    verbosity: int = 1
    multiprocess: bool = True
    multiinterpreter: bool = False
    return_timers: bool = False
    stats_interval: float = 0.5
    device_type: str = "auto"
    cost_per_hour: float | None = None
    model_name: str | None = None
    loop_dataset: bool = True
    eval_metrics: str | Iterable[str] | None = None
    eval_target_col: int = -1
    dynamic_batch_size: bool = False
    warmup: float | str = "auto"
    framework: str | None = None
    timeout: float | None = None
    cores: Sequence[int] | None = None
    devices: dict[str, DeviceBackend] | None = None
    adapters: dict[str, str] | None = None
    scenario: str = "closed"
    target_qps: float | str | Sequence[float | str] | None = None
    p99_ms: float | None = None
    max_queue_delay_ms: float | None = None
    seed: int = serving.DEFAULT_SEED
    progress: ProgressCallback | None = None
    paired: PairedRequest | None = None
    output_tokens: int | Sequence[int] | None = None
    slo_ttft_ms: float | None = None
    slo_tpot_ms: float | None = None
    ignore_eos: bool = True
