"""The ``neuronperf`` fixture object: benchmark (and compile) from inside a test, then gate."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from pytest_neuronperf.compiling.cache import input_signature, safe_name
from pytest_neuronperf.compiling.request import compile as compile_model
from pytest_neuronperf.engine import grid as grid_configs
from pytest_neuronperf.engine.measure import measure
from pytest_neuronperf.engine.model_ref import describe_model
from pytest_neuronperf.engine.paired import PairedRequest
from pytest_neuronperf.engine.request import BenchmarkRequest
from pytest_neuronperf.engine.summary import reports_from_results
from pytest_neuronperf.evaluation import metric_names
from pytest_neuronperf.gating import paired as paired_gate
from pytest_neuronperf.gating.baseline import result_key
from pytest_neuronperf.gating.verdicts import needs_recheck, pool_reports
from pytest_neuronperf.plugin.against import usable_cache
from pytest_neuronperf.plugin.markers import PerfSettings, SettingsError, apply_keywords
from pytest_neuronperf.plugin.progress import TerminalProgress, terminal_progress
from pytest_neuronperf.plugin.session import PerfSession
from pytest_neuronperf.plugin.shares import CoreShare
from pytest_neuronperf.plugin.xdist import plain_nodeid
from pytest_neuronperf.profiling.run import ProfileRequest, profile
from pytest_neuronperf.reporting.tables import headline_properties
from pytest_neuronperf.reports import Report

EAGER_COMPILERS = ("eager",)
CALL_KEYWORDS = (
    "framework", "preprocess_fn", "postprocess_fn", "model_name", "return_timers",
    "env_setup_fn", "setup_fn", "dataset_loader_fn", "stats_interval", "cost_per_hour",
    "multiprocess", "multiinterpreter", "loop_dataset", "eval_metrics", "eval_target_col",
    "dynamic_batch_size", "ignore_eos",
)
"""Keywords of ``benchmark`` that describe the call rather than the configuration grid."""


def quiet(_: Any) -> None:
    """No progress (not at a terminal, or an xdist worker)."""


class NeuronperfFixture:
    """What a perf test receives: ``benchmark`` and ``compile``, with the marker's settings."""

    def __init__(self, session: PerfSession, item: pytest.Item, settings: PerfSettings,
                 config: pytest.Config) -> None:
        self._session = session
        self._item = item
        self._config = config
        self.settings = settings
        self.reports: list[Report] = []
        self._keys: set[str] = set()
        self._terminal = terminal_progress(config, item.name, item.nodeid)
        self._name: str | None = None

    def _settings(self, overrides: dict[str, Any], call: str) -> PerfSettings:
        try:
            return apply_keywords(self.settings, overrides, tuple(self._session.devices))
        except SettingsError as exc:
            refusal = str(exc)
        pytest.fail(f"{self._item.nodeid}: neuronperf.{call}: {refusal}", pytrace=False)

    @contextlib.contextmanager
    def _refusals(self, call: str) -> Iterator[None]:
        """A refused argument fails the test with one sentence naming it, not a traceback.

        Only wraps what runs before anything is measured: a fault after that keeps its
        traceback, and measured reports are always recorded.
        """
        try:
            yield
        except (ValueError, TypeError) as exc:
            note = self._share_note() if isinstance(exc, grid_configs.NotEnoughCores) else ""
            refusal = f"{exc}{note}"
        else:
            return
        try:
            pytest.fail(f"{self._item.nodeid}: neuronperf.{call}: {refusal}", pytrace=False)
        except pytest.fail.Exception as failure:
            raise failure from None  # one sentence: not chained to the refused ValueError

    def _share_note(self) -> str:
        """Under xdist, which of the machine's cores this worker has (they explain a refusal)."""
        try:
            backend = self._session.backend(self.settings.device)
            mine, every = self._session.share(backend).cores, backend.cores()
        except (ValueError, TypeError):
            return ""
        if len(mine) >= len(every):
            return ""
        return (f" (this pytest-xdist worker has {len(mine)} of the machine's {len(every)} "
                f"{backend.name} cores; fewer workers give each more)")

    def compile(self, model: Any, inputs: Any, framework: str | None = None,
                **overrides: Any) -> str:
        """Compile ``model`` per batch and pipeline size (marker settings); returns the index."""
        settings = self._settings(overrides, "compile")
        with self._refusals("compile"):
            return self._compile(model, inputs, framework, settings)

    def _compile(self, model: Any, inputs: Any, framework: str | None,
                 settings: PerfSettings) -> str:
        backend = self._session.backend(settings.device)
        # one index per model, inputs and compile request (and per xdist worker): tests or
        # workers compiling other models of one name, other shapes or other sizes never share
        # an index file, and no worker re-reads an index another one is rewriting
        source = describe_model(model)
        examples = inputs if isinstance(inputs, list) else [inputs]  # one per batch size
        shapes = [input_signature(example, 1) for example in examples]
        request = json.dumps([source.filename, shapes, settings.batch_sizes,
                              settings.pipeline_sizes, settings.compiler,
                              settings.compiler_args, framework, backend.name,
                              *([settings.cast_modes] if settings.cast_modes else [])],
                             sort_keys=True, default=str)
        tag = hashlib.sha256(request.encode()).hexdigest()[:12]
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        filename = f"{safe_name(source.name)}-{tag}{f'-{worker}' if worker else ''}.json"
        return compile_model(
            model, inputs, batch_sizes=settings.batch_sizes,
            pipeline_sizes=settings.pipeline_sizes, compiler=settings.compiler,
            compiler_args=settings.compiler_args, device_type=backend.name,
            models_dir=str(usable_cache(self._config.rootpath)),
            verbosity=0,
            framework=framework, filename=filename, cast_modes=settings.cast_modes,
        )

    def benchmark(self, model: Any, inputs: Any, *, name: str | None = None,
                  **overrides: Any) -> list[Report]:
        """Run every configuration of the marker (plus ``overrides``); record and gate them.

        With ``--neuronperf-against=REV`` every configuration is measured paired against the
        model as it is at ``REV``."""
        return self._measure(model, inputs, name, overrides, "benchmark", None)

    def compare(self, base_model: Any, model: Any, inputs: Any, *, name: str | None = None,
                **overrides: Any) -> list[Report]:
        """A/B-test ``model`` (head) against ``base_model`` on every configuration, interleaved
        on the same cores, and gate on the paired difference (e.g. eager vs TorchScript)."""
        return self._measure(model, inputs, name, overrides, "compare",
                             PairedRequest(base_model=base_model))

    def _measure(self, model: Any, inputs: Any, name: str | None, overrides: dict[str, Any],
                 call: str, paired: Any) -> list[Report]:
        """Measure (paired when ``paired`` is a request or the run is against a revision),
        record and settle one call's reports."""
        key = result_key(plain_nodeid(self._item), name)
        if key in self._keys:
            pytest.fail(
                f"{self._item.nodeid} calls neuronperf.{call} more than once"
                + (f" with name={name!r}" if name else "")
                + ": give each call its own name= so their results are recorded apart",
                pytrace=False,
            )
        self._keys.add(key)
        self._name = name
        call_args = {k: overrides.pop(k) for k in CALL_KEYWORDS if k in overrides}
        settings = self._settings(overrides, call)
        return_timers = bool(call_args.pop("return_timers", False))
        self._check_accuracy_budget(settings, call_args)
        with self._refusals(call):
            backend = self._session.backend(settings.device)
            # a generative model is compiled by its own library (NxD Inference, vLLM), never
            # traced here: the generate scenario runs what the model's factory returns
            needs_compile = settings.scenario != "generate" and (
                settings.compiler not in ("auto", *EAGER_COMPILERS) or (
                    settings.compiler == "auto" and backend.name in ("neuron", "neuronx")))
            against = self._session.against
            if paired is None and against is not None:
                paired = against.request(model, call_args.get("preprocess_fn"),
                                         call_args.get("postprocess_fn"))
                if needs_compile:
                    paired = dataclasses.replace(paired, absent=(
                        f"not compared: --neuronperf-against does not compile the base side "
                        f"yet (compiler={settings.compiler!r})"))
            if needs_compile and not isinstance(model, str | os.PathLike):
                model = self._compile(model, inputs, call_args.get("framework"), settings)
            if paired is not None:
                paired = dataclasses.replace(
                    paired, rounds=settings.paired_rounds,
                    stop_rules=paired_gate.stop_rules(self._session.options.paired_tolerance))
        share = self._session.share(backend)
        request = BenchmarkRequest(
            model, inputs, duration=self._session.options.duration or settings.duration,
            warmup=settings.warmup, timeout=settings.timeout, device_type=backend.name,
            cores=share.cores, devices=self._session.devices, adapters=self._session.adapters,
            verbosity=0, return_timers=return_timers, progress=self._terminal or quiet,
            paired=paired, batch_sizes=settings.batch_sizes, n_models=settings.n_models,
            workers_per_model=settings.workers_per_model, pipeline_sizes=settings.pipeline_sizes,
            cast_modes=settings.cast_modes, **settings.scenario_arguments(), **call_args,
        )
        run = Runs(share, len(backend.cores()), self._terminal)
        try:
            with self._refusals(call):  # arguments are checked before any process starts
                reports = run(request)
            reports = self._settle(key, request, reports, backend, settings, run)
        finally:
            if self._terminal is not None:
                self._terminal.finish()
        return run.timers if return_timers else reports

    def _settle(self, key: str, request: BenchmarkRequest, reports: list[Report],
                backend: Any, settings: PerfSettings, run: Runs) -> list[Report]:
        """Judge the reports; measure a doubtful configuration once more and judge it on both
        runs; then decide the outcomes. Every measured report is recorded, whatever happens."""
        if self._session.options.save_baseline:
            # a baseline is compared with many later runs: measure it twice, so one unlucky
            # run of a drifting machine does not set the bar for all of them
            reports = [pool_reports(first, second, "repeat")
                       for first, second in zip(reports, run(request, "repeat"), strict=True)]
        self.reports.extend(reports)
        try:
            paired = self._session.gate_paired(reports)
            judgements = []
            for position, report in enumerate(reports):
                judgement = self._session.gate(report, key, backend, settings.budgets,
                                               settings.tolerance)
                if needs_recheck(judgement):
                    [again] = run(recheck_request(request, report), "recheck")
                    report = reports[position] = pool_reports(report, again)
                    judgement = self._session.gate(report, key, backend, settings.budgets,
                                                   settings.tolerance)
                judgements.append(judgement)
            self._session.settle(self._item.nodeid, key, reports, judgements, paired,
                                 settings.tolerance)

            def explain(report: Report, budget_s: float | None) -> dict[str, Any]:
                folder = self._session.profile_dir(self._config.rootpath) / safe_name(key)
                [profiled] = run.profile(recheck_request(request, report),
                                         ProfileRequest(str(folder), budget_s))
                return dict(profiled["profile"])

            self._session.explain(self._item.nodeid, key, reports, backend, settings, explain)
        finally:
            self._session.record(reports)
            for report in reports:  # what --junitxml carries
                self._item.user_properties.extend(headline_properties(report, self._name))
        return reports

    def _check_accuracy_budget(self, settings: PerfSettings, call_args: dict[str, Any]) -> None:
        """``min_accuracy`` needs the accuracy metric measured (``eval_metrics``)."""
        if "min_accuracy" not in settings.budgets:
            return

        with self._refusals("benchmark"):
            measured = metric_names(call_args.get("eval_metrics"))
        if "accuracy" not in measured:
            pytest.fail(
                f"{self._item.nodeid}: min_accuracy= needs the accuracy measured: pass "
                f"eval_metrics=['accuracy'] and inputs= a labelled dataset to "
                f"neuronperf.benchmark", pytrace=False)


class Runs:
    """Measures a request for the fixture: on this worker's share of the cores (held while
    measuring), as reports (the first run's raw results kept for ``return_timers``)."""

    def __init__(self, share: CoreShare, machine_cores: int,
                 terminal: TerminalProgress | None) -> None:
        self.share = share
        self.machine_cores = machine_cores
        self.terminal = terminal
        self.timers: list[Any] = []

    def profile(self, request: BenchmarkRequest, wanted: ProfileRequest) -> list[Report]:
        """The configurations of ``request`` profiled instead of measured (``profiling.run``)."""
        if self.terminal is not None:
            self.terminal.what = "profile"
        with self.share.hold():
            return profile(dataclasses.replace(request, return_timers=False), wanted)

    def __call__(self, request: BenchmarkRequest, what: str = "") -> list[Report]:
        """The reports of one measurement of ``request`` (``what``: shown in the progress)."""
        if self.terminal is not None:
            self.terminal.what = what
        with self.share.hold():
            measured = measure(request)
        if request.return_timers:  # the reports are gated; the test gets NeuronPerf's results
            if not self.timers:
                self.timers.extend(measured)
            measured = reports_from_results(measured)
        for report in measured:
            report["core_share"] = {"used": len(self.share.cores), "machine": self.machine_cores}
        return measured


def recheck_request(request: BenchmarkRequest, report: Mapping[str, Any]) -> BenchmarkRequest:
    """``request`` narrowed to the one configuration of ``report`` (to measure it again)."""
    return dataclasses.replace(
        request, batch_sizes=report["batch_size"], n_models=report["n_models"],
        workers_per_model=report["workers_per_model"], pipeline_sizes=report["pipeline_size"],
        cast_modes=report.get("cast_mode"),
        **({"target_qps": report["target_qps"]} if "target_qps" in report else {}))
