"""Faults that must fail loudly, and processes that must not outlive what started them.

Every test here runs real model processes and really kills them (or pytest itself).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
from conftest import alive
from engine_models import Noop
from fault_models import (
    FailsOffTheMainThread,
    HangsInANamedPlace,
    HoldsTheGil,
    ReturnsACoroutine,
    ReturnsAGenerator,
    StartsSessionLeader,
    consume,
)
from projects import SLEEP_MODEL, Run, perf_test, reports_of

import pytest_neuronperf as npf

QUICK = {"duration": 0.3, "warmup": 0.05, "verbosity": 0, "n_models": 1, "workers_per_model": 1}
X = np.zeros((1, 4), dtype=np.float32)
TESTS_DIR = Path(__file__).parent
REPO = TESTS_DIR.parent


def bench(model, inputs=X, **kwargs):  # type: ignore[no-untyped-def]
    """benchmark with the quick settings of these tests."""
    return npf.cpu.benchmark(model, inputs, **{**QUICK, **kwargs})


def wait_until(condition, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    """Poll ``condition`` until it holds or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def fault_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where fault models leave their pids ($FAULT_DIR)."""
    path = tmp_path / "faults"
    path.mkdir()
    monkeypatch.setenv("FAULT_DIR", str(path))
    return path


@pytest.fixture
def log_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The temporary directory benchmark() makes its log folders in."""
    path = tmp_path / "tmp"
    path.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    yield path


# -- 1. every driver thread's fault fails the copy ---------------------------------------------


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("raise", "FaultInSecondThread: second thread raised an exception"),
        ("exit", "SystemExit: second thread called sys.exit"),
        ("base", "BaseFault: second thread raised a BaseException"),
    ],
)
def test_a_fault_in_the_second_driver_thread_fails_the_copy(monkeypatch, kind, expected):
    monkeypatch.setenv("FAULT_KIND", kind)
    [report] = bench(FailsOffTheMainThread, workers_per_model=2)
    assert report["status"] == "error"
    assert expected in report["error"]
    assert "driver thread 2 of 2" in report["error"]
    assert "fault_models.py" in report["error"]  # the thread's own traceback
    assert report["throughput_avg"] is None


def test_the_same_model_on_one_thread_is_fine(monkeypatch):
    monkeypatch.setenv("FAULT_KIND", "raise")
    [report] = bench(FailsOffTheMainThread, workers_per_model=1)
    assert report["status"] == "ok"


# -- 2 and 4. pytest killed while a copy holds the GIL ----------------------------------------

GIL_TEST = """
import numpy as np
import pytest
from fault_models import HoldsTheGil


@pytest.mark.neuronperf(batch_sizes=[1], n_models=1, workers_per_model=1, duration=60,
                        warmup=0.05)
def test_holds_the_gil(neuronperf):
    neuronperf.benchmark(HoldsTheGil, np.zeros((1, 4), dtype=np.float32), framework="python")
"""


def session_processes(mark: str) -> list[psutil.Process]:
    """Live processes whose environment carries ``mark``."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get("NEURONPERF_FAULT_MARK") == mark:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def describe(procs: list[psutil.Process]) -> list[str]:
    """pid and command line of each process, for an assertion message."""
    lines = []
    for proc in procs:
        try:
            lines.append(f"{proc.pid}: {' '.join(proc.cmdline())[:160]}")
        except psutil.NoSuchProcess:
            continue
    return lines


def run_and_kill(tmp_path: Path, test_source: str, sig: signal.Signals) -> str:
    """Run ``test_source`` in a pytest process, send it ``sig`` once a model process runs the
    regex, and check that every process of that session ends; its output."""
    mark = uuid.uuid4().hex
    faults, scratch = tmp_path / "faults", tmp_path / "tmp"
    faults.mkdir()
    scratch.mkdir()
    (tmp_path / "test_gil.py").write_text(test_source)
    env = {**os.environ, "NEURONPERF_FAULT_MARK": mark, "FAULT_DIR": str(faults),
           "TMPDIR": str(scratch), "PYTHONPATH": os.pathsep.join([str(REPO), str(TESTS_DIR)])}
    pytest_proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_gil.py"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert wait_until(lambda: any(faults.iterdir()), 60), "the model process never started"
        time.sleep(0.3)  # deep in the regex now: its Python threads never run again
        pytest_proc.send_signal(sig)
        output, _ = pytest_proc.communicate(timeout=30)
        # the forkserver leaves once pytest's end of its pipe is closed, after its interpreter's
        # shutdown: ~5 s with torch loaded (a garbage collection), more under coverage or load
        gone = wait_until(lambda: not session_processes(mark), 60)
        assert gone, f"left behind after {sig.name}:\n" + "\n".join(
            describe(session_processes(mark)))
        assert not list(scratch.glob("neuronperf-*")) or sig == signal.SIGKILL, output
        return output
    finally:
        pytest_proc.kill()
        pytest_proc.communicate()
        for proc in session_processes(mark):
            proc.kill()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killing_pytest_while_a_copy_holds_the_gil_leaves_nothing(tmp_path, sig):
    output = run_and_kill(tmp_path, GIL_TEST, sig)
    if sig == signal.SIGTERM:  # cleaned up like Ctrl-C: the log folder is gone (checked above)
        assert "KeyboardInterrupt: SIGTERM received" in output, output


def test_sigterm_replaces_coverages_handler_but_not_a_users() -> None:
    import coverage

    from pytest_neuronperf.plugin.interrupts import sigterm_as_interrupt

    saves_coverage = coverage.Coverage(data_file=None)._on_sigterm
    before = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, saves_coverage)
        restore = sigterm_as_interrupt()  # pytest under coverage: cleanups must still run
        assert signal.getsignal(signal.SIGTERM) is not saves_coverage
        with pytest.raises(KeyboardInterrupt, match="SIGTERM received"):
            signal.raise_signal(signal.SIGTERM)
        restore()
        assert signal.getsignal(signal.SIGTERM) == saves_coverage

        def users_own(signum: int, frame: object) -> None: ...

        signal.signal(signal.SIGTERM, users_own)
        sigterm_as_interrupt()()
        assert signal.getsignal(signal.SIGTERM) is users_own
    finally:
        signal.signal(signal.SIGTERM, before)


DAEMON_TEST = """
import os

import numpy as np
import pytest
from fault_models import StartsSessionLeader

os.environ["FAULT_HANG"] = "1"


@pytest.mark.neuronperf(batch_sizes=[1], n_models=1, workers_per_model=1, duration=60,
                        warmup=0.05)
def test_starts_a_daemon(neuronperf):
    neuronperf.benchmark(StartsSessionLeader, np.zeros((1, 4), dtype=np.float32),
                         framework="python")
"""


def test_killing_pytest_ends_what_a_waiting_copy_started(tmp_path):
    run_and_kill(tmp_path, DAEMON_TEST, signal.SIGKILL)


COMPILE_GIL_TEST = """
import torch
from fault_models import HoldsTheGilOnBuild


def test_compile_holds_the_gil(neuronperf):
    neuronperf.compile(HoldsTheGilOnBuild, torch.zeros(1, 4), compiler="torchscript",
                       framework="torch")
"""


def test_killing_pytest_while_the_compile_process_holds_the_gil_leaves_nothing(tmp_path):
    pytest.importorskip("torch")
    run_and_kill(tmp_path, COMPILE_GIL_TEST, signal.SIGKILL)


# -- 3. a copy's whole tree dies with it ----------------------------------------------------


def assert_leaders_die(fault_dir: Path) -> None:
    """The session leaders the models started are gone within seconds (killed here if not)."""
    pids = [int(p.name.split("-")[1]) for p in fault_dir.glob("leader-*")]
    assert pids
    try:
        assert wait_until(lambda: not any(alive(pid) for pid in pids), 5)
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_a_grandchild_that_calls_setsid_dies_with_its_copy(fault_dir, log_root):
    [report] = bench(StartsSessionLeader)
    assert report["status"] == "ok"
    assert_leaders_die(fault_dir)
    assert not list(log_root.glob("neuronperf-logs-*"))  # a normal run removes its logs


def test_a_grandchild_of_a_hung_copy_dies_at_the_timeout(fault_dir, monkeypatch):
    monkeypatch.setenv("FAULT_HANG", "1")
    [report] = bench(StartsSessionLeader, timeout=3)
    assert report["status"] == "error" and "timed out" in report["error"]
    assert_leaders_die(fault_dir)


# -- 4. a timeout says where the copy hung; lazy forwards are refused --------------------------


def test_a_timeout_shows_where_the_copy_hung():
    [report] = bench(HangsInANamedPlace, timeout=3)
    assert report["status"] == "error" and "timed out" in report["error"]
    assert "wait_for_a_lock_never_released" in report["error"]


def test_a_timeout_shows_where_a_copy_holding_the_gil_hung(fault_dir):
    [report] = bench(HoldsTheGil, timeout=3)
    assert report["status"] == "error" and "timed out" in report["error"]
    assert "backtrack_for_hours" in report["error"]


@pytest.mark.parametrize(("model", "what"), [(ReturnsAGenerator, "generator"),
                                              (ReturnsACoroutine, "coroutine")])
def test_a_forward_that_returns_a_generator_is_refused(model, what):
    [report] = bench(model)
    assert report["status"] == "error"
    assert f"returned a {what}" in report["error"]
    assert "postprocess_fn" in report["error"]


def test_a_generator_forward_consumed_by_postprocess_is_measured():
    [report] = bench(ReturnsAGenerator, postprocess_fn=consume)
    assert report["status"] == "ok"
    assert report["latency_ms_p50"] >= 3.0  # the three 1 ms steps are inside the timed call


# -- 5. interrupted tests, generator inputs, markers without the fixture -----------------------

INTERRUPTED_TEST = SLEEP_MODEL + "import signal\n" + perf_test(
    batch_sizes=[1], duration=0.3, body="""\
neuronperf.benchmark(SleepModel, X, framework="python")
    if os.environ.get("CTRL_C_AFTER_BENCHMARK"):
        os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C before the test ends
        time.sleep(10)""")


def test_an_interrupted_test_keeps_its_baseline_entry(pytester, run: Run, monkeypatch):
    pytester.makepyfile(test_interrupted=INTERRUPTED_TEST)
    baseline = pytester.path / "baseline.json"
    args = (f"--neuronperf-baseline={baseline}", "--neuronperf-save-baseline")
    run(*args).assert_outcomes(passed=1)
    saved = baseline.read_text()

    monkeypatch.setenv("CTRL_C_AFTER_BENCHMARK", "1")
    result = run(*args)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert baseline.read_text() == saved
    result.stdout.fnmatch_lines(["*not saved*interrupted*test_sleep*"])


def test_generator_inputs_are_refused_in_one_sentence():
    # a generator as the inputs is a dataset (issue 11); one inside an example cannot travel
    with pytest.raises(ValueError, match=r"^inputs\[1\] is a generator.*list\(") as caught:
        bench(Noop, (X, (x for x in [X, X])))
    assert "\n" not in str(caught.value)


def test_generator_inputs_fail_the_test_in_one_sentence(pytester):
    pytester.makepyfile(test_gen="""
        import numpy as np
        import pytest

        class Noop:
            def __call__(self, x):
                return x

        @pytest.mark.neuronperf(n_models=1, workers_per_model=1, duration=0.3)
        def test_gen(neuronperf):
            example = (np.zeros((1, 4)), (np.zeros((1, 4)) for _ in range(3)))
            neuronperf.benchmark(Noop, example, framework="python")
    """)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*test_gen.py::test_gen: neuronperf.benchmark: inputs[[]1[]] is "
                                 "a generator*"])
    result.stdout.no_fnmatch_line("*internal error*")
    result.stdout.no_fnmatch_line("*pickle*")


MARKER_WITHOUT_FIXTURE = """
import pytest


@pytest.mark.neuronperf(duration=1)
def test_forgot_the_fixture():
    assert True


@pytest.mark.neuronperf(duration=1)
def test_uses_it(neuronperf):
    assert neuronperf is not None
"""


def test_a_marker_without_the_fixture_warns(pytester):
    pytester.makepyfile(test_marked=textwrap.dedent(MARKER_WITHOUT_FIXTURE))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(
        ["*PytestWarning: test_marked.py::test_forgot_the_fixture has a neuronperf marker but "
         "does not use the neuronperf fixture*"])


def test_a_marker_without_the_fixture_fails_under_strict(pytester):
    pytester.makepyfile(test_marked=textwrap.dedent(MARKER_WITHOUT_FIXTURE))
    result = pytester.runpytest("-p", "no:cacheprovider", "--neuronperf-strict")
    result.assert_outcomes(passed=1, failed=1, warnings=1)
    result.stdout.fnmatch_lines(["FAILED test_marked.py::test_forgot_the_fixture*"])


def test_json_of_an_interrupted_run_is_still_written(pytester, run: Run, monkeypatch):
    """Reports of an interrupted test still go to --neuronperf-json (only the baseline skips)."""
    pytester.makepyfile(test_interrupted=INTERRUPTED_TEST)
    monkeypatch.setenv("CTRL_C_AFTER_BENCHMARK", "1")
    out = pytester.path / "out.json"
    result = run(f"--neuronperf-json={out}")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert [r["status"] for r in reports_of(out)] == ["ok"]


ORPHAN_SCRIPT = """
import os
import sys
import time
from pathlib import Path

from pytest_neuronperf.child import lifeline

out = Path(sys.argv[1])
origin = os.getpid()
if os.fork() == 0:
    while os.getppid() == origin:  # the parent dies before the child ties itself to it
        time.sleep(0.01)
    (out / "started").write_text("")
    lifeline.tie_to_parent(origin)
    (out / "survived").write_text("")
    os._exit(0)
"""


def test_a_child_whose_parent_died_before_it_was_tied_exits(tmp_path):
    subprocess.run([sys.executable, "-c", ORPHAN_SCRIPT, str(tmp_path)], check=True,
                   env={**os.environ, "PYTHONPATH": str(REPO)})
    assert wait_until(lambda: (tmp_path / "started").exists(), 10)
    time.sleep(0.5)
    assert not (tmp_path / "survived").exists()
