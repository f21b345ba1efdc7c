"""pytest entry point: options, the ``neuronperf`` marker and fixture, and hook wiring."""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator
from dataclasses import replace
from typing import Any

import pytest

from pytest_neuronperf.engine.server_command import start_server
from pytest_neuronperf.plugin import hookspecs
from pytest_neuronperf.plugin.against import resolve_option
from pytest_neuronperf.plugin.interrupts import sigterm_as_interrupt
from pytest_neuronperf.plugin.markers import PerfSettings, SettingsError, apply_keywords
from pytest_neuronperf.plugin.options import (
    OPTIONS,
    argparse_help,
    check_device_name,
    run_options,
)
from pytest_neuronperf.plugin.outcome import unused_marker_fails, unused_marker_text
from pytest_neuronperf.plugin.session import PerfSession
from pytest_neuronperf.plugin.shares import CoreShare
from pytest_neuronperf.plugin.xdist import ControllerHooks, configure_worker
from pytest_neuronperf.reporting.tables import format_paired_summary, format_summary
from pytest_neuronperf.reports import Report

SESSION_KEY = pytest.StashKey[PerfSession]()
WRITTEN_KEY = pytest.StashKey[list[str]]()
"""Lines saying which files the controller wrote, for the terminal summary."""
RESTORE_SIGTERM_KEY = pytest.StashKey[Callable[[], None]]()
MARKER = "neuronperf"
MARKER_HELP = (
    "neuronperf(batch_sizes=[1], n_models=[1, 'max'], workers_per_model=None, "
    "pipeline_sizes=[1], duration=5, warmup='auto', device='auto', compiler='auto', "
    "compiler_args=None, p50_ms=None, p99_ms=None, min_throughput=None, tolerance=None, "
    "timeout=None, paired_rounds=None, profile=None): a performance test; the neuronperf "
    "fixture benchmarks "
    "every configuration "
    "and the test fails when it regressed against the baseline or missed a budget."
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("neuronperf", "ML inference performance (pytest-neuronperf)")
    for flag, ini, value, parse, help_text in OPTIONS:
        if value == "bool":
            group.addoption(flag, action="store_true", default=None,
                            help=argparse_help(help_text))
            parser.addini(ini, help_text, type="bool", default=False)
        elif value.startswith("["):  # a flag that may take a value: --flag or --flag=MODE
            group.addoption(flag, action="store", nargs="?", const="all", default=None,
                            metavar=value.strip("[]"), type=parse, help=argparse_help(help_text))
            parser.addini(ini, help_text, type="string", default="")
        else:
            group.addoption(flag, action="store", default=None, metavar=value,
                            type=parse, help=argparse_help(help_text))
            parser.addini(ini, help_text, type="string", default="")


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def _merged_dicts(results: list[dict[str, Any] | None]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for result in results:
        merged.update(result or {})
    return merged


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    options = run_options(config)
    devices = _merged_dicts(config.hook.pytest_neuronperf_add_devices(config=config))
    adapters = _merged_dicts(config.hook.pytest_neuronperf_add_frameworks(config=config))
    extra_fp = _merged_dicts(config.hook.pytest_neuronperf_fingerprint(config=config,
                                                                      fingerprint={}))
    check_device_name(options.device, devices)
    worker_input = getattr(config, "workerinput", None)
    share_for: Callable[[list[int]], CoreShare] = CoreShare
    host: Report = {}
    if worker_input is not None:  # an xdist worker: a slice of its host's cores
        worker = configure_worker(config, worker_input)
        share_for, host = worker.share_for, worker.registry.host.fields(worker.worker)

    config.stash[SESSION_KEY] = PerfSession(
        options, devices, adapters, extra_fp, share_for, host=host,
        verdict_hook=functools.partial(config.hook.pytest_neuronperf_verdict, config=config),
        against=resolve_option(config.rootpath, options.against), rootdir=config.rootpath)
    if worker_input is None:
        config.stash[SESSION_KEY].start_history()
    config.stash[RESTORE_SIGTERM_KEY] = sigterm_as_interrupt()
    if config.pluginmanager.hasplugin("xdist") and worker_input is None:
        config.pluginmanager.register(ControllerHooks(config.stash[SESSION_KEY]),
                                      "neuronperf-xdist-controller")


def pytest_unconfigure(config: pytest.Config) -> None:
    config.stash.get(RESTORE_SIGTERM_KEY, lambda: None)()


def is_perf_test(item: pytest.Item) -> bool:
    """Marked with ``neuronperf`` or using the ``neuronperf`` fixture."""
    return item.get_closest_marker(MARKER) is not None or "neuronperf" in getattr(
        item, "fixturenames", ())


def lacks_fixture(item: pytest.Item) -> bool:
    """Marked ``neuronperf`` but not using the fixture: nothing would be measured."""
    return item.get_closest_marker(MARKER) is not None and "neuronperf" not in getattr(
        item, "fixturenames", ())


def marker_settings(item: pytest.Item, session: PerfSession) -> Any:
    """The item's settings from its marker(s); a bad keyword is a usage error naming the test."""
    settings = PerfSettings()
    if session.options.default_duration is not None:
        settings = replace(settings, duration=session.options.default_duration)
    for marker in reversed(list(item.iter_markers(MARKER))):  # closest marker applied last
        if marker.args:
            raise pytest.UsageError(
                f"{item.nodeid}: the neuronperf marker takes keywords only, got {marker.args!r}")
        try:
            settings = apply_keywords(settings, marker.kwargs, tuple(session.devices))
        except SettingsError as exc:
            raise pytest.UsageError(f"{item.nodeid}: neuronperf marker: {exc}") from None
    return settings


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    perf = config.stash[SESSION_KEY]
    for item in items:
        if is_perf_test(item):
            marker_settings(item, perf)  # validate every marker before anything runs
            if lacks_fixture(item):
                item.warn(pytest.PytestWarning(unused_marker_text(item.nodeid)))
    if perf.options.skip:
        skip = pytest.mark.skip(reason="performance tests skipped (--neuronperf-skip)")
        for item in items:
            if is_perf_test(item):
                item.add_marker(skip)
    elif perf.options.only:
        keep = [item for item in items if is_perf_test(item)]
        dropped = [item for item in items if not is_perf_test(item)]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = keep


@pytest.fixture
def neuronperf(request: pytest.FixtureRequest) -> Any:
    """Benchmark a model with the test's ``neuronperf`` marker settings, recorded and gated."""
    # the measuring engine and compile(): loaded by the first test that measures, not by
    # every pytest run of a project that has the plugin installed
    from pytest_neuronperf.plugin.fixture import NeuronperfFixture

    session = request.config.stash[SESSION_KEY]
    item = request.node
    return NeuronperfFixture(session, item, marker_settings(item, session), request.config)


@pytest.fixture
def neuronperf_server(tmp_path: Any) -> Generator[Any, None, None]:
    """Start a server command for this test: ``neuronperf_server(["vllm", "serve", MODEL,
    "--port", "{port}"])`` returns once it answers (``.url``); at teardown (also after a
    failure or Ctrl-C) it is stopped with everything it started."""
    started: list[Any] = []

    def start(command: Any, **options: Any) -> Any:
        options.setdefault("log_dir", tmp_path)
        server = start_server(command, **options)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in reversed(started):
            server.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    perf = item.config.stash[SESSION_KEY]
    try:
        result = yield
    except KeyboardInterrupt:
        perf.interrupted.add(item.nodeid)  # its results are partial: never a baseline
        raise
    if lacks_fixture(item) and unused_marker_fails(perf.options):
        pytest.fail(unused_marker_text(item.nodeid) + " (--neuronperf-strict)", pytrace=False)
    failure = perf.failure(item.nodeid)
    if failure:
        pytest.fail(failure, pytrace=False)
    return result


def pytest_report_header(config: pytest.Config) -> list[str]:
    session = config.stash.get(SESSION_KEY, None)
    if session is None or getattr(config, "workerinput", None) is not None:
        return []  # a worker's header is never shown, and its share is sealed at first use
    try:
        backend = session.backend("auto")
    except ValueError as exc:
        return [f"neuronperf: {exc}"]
    return session.header(backend)


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    perf = config.stash.get(SESSION_KEY, None)
    if perf is None:
        return
    worker_output = getattr(config, "workeroutput", None)
    if worker_output is not None:
        worker_output["neuronperf"] = perf.export()
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    written, failed = perf.write_outputs(
        config.rootpath, reporter.write_line if reporter is not None else None)
    config.stash[WRITTEN_KEY] = written
    if failed and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    perf = config.stash.get(SESSION_KEY, None)
    if perf is None or not perf.results or getattr(config, "workerinput", None) is not None:
        return
    terminalreporter.write_sep("=", "neuronperf summary")
    for line in format_summary(perf.results):
        terminalreporter.write_line(line)
    for line in format_paired_summary(perf.results):
        terminalreporter.write_line(line)
    counts = perf.verdict_counts()
    terminalreporter.write_line(
        ", ".join(f"{n} {verdict}" for verdict, n in sorted(counts.items())))
    notes = perf.notes()
    for line in [*notes, *config.stash.get(WRITTEN_KEY, [])]:
        terminalreporter.write_line(line)
