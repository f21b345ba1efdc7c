"""Plain-data descriptions shared by the parent and the model processes (no framework imports)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pytest_neuronperf.devices.base import Placement


class ModelReferenceError(ValueError):
    """The model (or a pre/post-processing function) cannot be sent to a worker process."""


@dataclass(frozen=True)
class ModelSource:
    """How a worker obtains the model: import it by name, or load an artifact from a path."""

    kind: Literal["import", "path", "instance", "endpoint"]
    name: str
    """``model_name`` in reports."""
    filename: str
    """``model_filename`` in reports: the artifact path, or ``module:qualname``."""
    module: str | None = None
    qualname: str | None = None
    path: str | None = None
    compiler: str | None = None
    """How the artifact at ``path`` was produced (``torchscript``, ``export``, ...), if known;
    ``torch.save``/``keras``/``pickle`` for a model instance the parent saved (``instances``)."""
    origin: str | None = None
    """The file of the module the caller's class or factory came from: a copy that imports
    another file under that module name refuses to measure (``child.isolation``)."""


@dataclass(frozen=True)
class CopyOptions:
    """NeuronPerf's per-copy options (see ``benchmark``): all plain data or importable functions."""

    cast_mode: str = "fp32"
    cast_stage: str = "load"
    """``load``: cast the model and inputs in the copy; ``inputs``: the artifact was compiled
    in this cast, convert its inputs only; ``none``: the artifact casts inside (Neuron)."""
    env_setup_fn: Callable[[int, dict[str, Any]], None] | None = None
    """Called as ``env_setup_fn(copy id, config)`` in the copy, before the model loads."""
    setup_fn: Callable[[int, dict[str, Any], Any], None] | None = None
    """Called as ``setup_fn(copy id, config, model)`` in the copy, after the model loads."""
    config: dict[str, Any] = field(default_factory=dict)
    """The configuration those functions receive (NeuronPerf's keys)."""
    dataset: Any = None
    """A dataset (torch ``Dataset`` or a list of samples) fed batch by batch, or None."""
    dataset_loader_fn: Callable[[Any, int], Any] | None = None
    loop_dataset: bool = True
    eval_metrics: tuple[str, ...] = ()
    eval_target_col: int = -1
    stats_interval: float = 0.5
    """Seconds between CPU/memory samples of the copy during the window."""
    split_batch: int | None = None
    """Dynamic batching: the compiled batch size each user batch is split into."""


@dataclass(frozen=True)
class ServerSpec:
    """What one copy's open loop needs: its stream's rate and seed, batching, draining."""

    rate: float
    """Queries per second offered to this copy (``target_qps / n_models``)."""
    seed: int
    copy_index: int
    duration_s: float
    drain_s: float
    """After the window, queued queries are still served this long (then left unserved)."""
    max_queue_delay_ns: int | None = None
    """Dynamic batching: a call groups up to ``batch_size`` queries (samples) or this delay."""
    batch_size: int = 1


@dataclass(frozen=True)
class Endpoint:
    """A served OpenAI-compatible model (vLLM, TGI, ...) to measure in the generate scenario:
    ``url`` is the API's base (``http://host:port/v1``), ``model`` the served model's name
    (None: the server's only model). Streaming completions (``/completions``, server-sent
    events); ``api_key`` goes in the ``Authorization`` header; ``timeout`` is how long a
    request may wait for its next chunk (seconds)."""

    url: str
    model: str | None = None
    api_key: str | None = None
    timeout: float = 60.0
    extra_body: tuple[tuple[str, Any], ...] | dict[str, Any] = ()
    """More fields of each request's JSON body: a dict or pairs (e.g. ``{"top_k": 1}``)."""


@dataclass(frozen=True)
class GenerateSpec:
    """What one copy's token driver (generate scenario) needs: the prompts, how many tokens each
    asks for, how requests are grouped, and where an endpoint lives."""

    prompts: tuple[Any, ...]
    """Token id tuples (or strings, for an endpoint), dealt to requests round-robin."""
    output_tokens: tuple[int, ...]
    """Per prompt."""
    ignore_eos: bool = True
    """Generate exactly ``output_tokens`` (no stop at the end-of-sequence token)."""
    endpoint: Endpoint | None = None


@dataclass(frozen=True)
class ImportRoot:
    """Where a model process imports the user's code from: the base side of a paired run
    against a git revision (``plugin.against``). Functions travel by name, so that they are
    imported from ``sys_path`` inside the process rather than unpickled from the head's tree."""

    sys_path: tuple[str, ...]
    """The process's ``sys.path``: the parent's, with entries inside the repository mapped to
    the same places in the revision's tree."""
    preprocess_fn: tuple[str, str] | None = None
    """``(module, qualname)`` of the base side's ``preprocess_fn``."""
    postprocess_fn: tuple[str, str] | None = None
    tree: str | None = None
    """The revision's tree (real path): every module of the project must come from here."""
    repo: str | None = None
    """The working tree's top level (real path): no module may come from here."""
    foreign: tuple[str, ...] = ()
    """Places inside ``repo`` that the repository does not track and that ``sys.path`` names
    (a virtualenv in the checkout): what they hold is not the project's code."""
    packages: tuple[tuple[str, str | None], ...] = ()
    """The project's top-level packages and modules, each with its place in ``tree`` (its
    ``__init__.py`` or module file; None when the revision does not have it): a finder first on
    ``sys.meta_path`` imports them from there (``child.isolation``)."""


@dataclass(frozen=True)
class WorkerSpec:
    """Everything one model process needs to load, warm up and be driven."""

    model: ModelSource
    framework: str
    adapter: str
    """``module:attribute`` of the framework adapter the worker instantiates."""
    inputs: Any
    """The example inputs for this batch size (a leading dimension of 1 is expanded)."""
    batch_size: int
    workers: int
    warmup: float | Literal["auto"]
    placement: Placement
    log_path: str
    preprocess_fn: Callable[..., Any] | None = None
    postprocess_fn: Callable[..., Any] | None = None
    max_warmup_s: float = 30.0
    environ: dict[str, str] = field(default_factory=dict)
    """The parent's environment when the configuration started (a forkserver child would
    otherwise see the environment of the forkserver's start)."""
    extra: dict[str, Any] = field(default_factory=dict)
    options: CopyOptions = field(default_factory=CopyOptions)
    server: ServerSpec | None = None
    """The open loop to serve (server scenario); None: the closed loop."""
    generate: GenerateSpec | None = None
    """The generate scenario: requests of prompts and token streams instead of calls."""
    imports: ImportRoot | None = None
    """Set for the base side of a paired run against a git revision; None imports as usual."""
