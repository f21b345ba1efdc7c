"""The generate scenario against a served endpoint, and the helper that starts a server for a
test: it answers, it is measured like an in-process model, its faults are said in one sentence,
and the server with everything it started is gone after the test, also after a failure, Ctrl-C
or a killed pytest (really sent)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import alive

import pytest_neuronperf as npf
from pytest_neuronperf.engine.server_command import ServerFailed

pytest_plugins = ["pytester"]

TESTS_DIR = Path(__file__).parent
TOKEN_SERVER = str(TESTS_DIR / "token_server.py")
QUICK = {"n_models": 1, "duration": 0.5, "warmup": 0, "verbosity": 0}


def token_server(*extra: str) -> list[str]:
    """The light test server's command (``{port}``: the helper's free port)."""
    return [sys.executable, TOKEN_SERVER, "--port", "{port}", *extra]


def wait_until(condition, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Any]:
    """The light server at 3 ms a token, stopped after the test."""
    with npf.start_server(token_server("--token-ms", "3"), timeout=60, log_dir=tmp_path) as s:
        yield s


def test_an_endpoint_is_measured_token_by_token(server):
    supervisor, *rest = server.processes()
    one, four = npf.benchmark(npf.Endpoint(server.url + "/v1"), [[1, 2, 3], [4, 5]],
                              scenario="generate", output_tokens=8, workers_per_model=[1, 4],
                              slo_tpot_ms=1000, **QUICK)
    for report in (one, four):
        assert report["status"] == "ok", report["error"]
        assert report["framework"] == "endpoint" and report["model_filename"] == server.url + "/v1"
        assert report["output_tokens_avg"] == 8 and report["goodput_ratio"] == 1.0
        assert report["e2e_ms_p50"] >= 8 * 3.0  # the server sleeps 3 ms before each token
        assert report["prefill_tokens_per_s"] > 0  # the server's usage chunk: 3 and 2 tokens
    assert four["requests"] > one["requests"]  # 4 concurrent requests: more in the window
    assert rest and all(p.is_running() for p in [supervisor, *rest])


FAULTS = [
    ("hang", "did not answer within 1 s (ReadTimeout, after 0 tokens): the server hangs"),
    ("drop", "broke the stream after 4 of 8 tokens (RemoteProtocolError"),
    ("short", "the server at {url} produced 4 of the 8 tokens asked for prompt 0"),
    ("http", "{url}/completions answered HTTP 503"),
]


@pytest.mark.parametrize(("fault", "sentence"), FAULTS)
def test_a_misbehaving_server_is_an_error_in_one_sentence(tmp_path, fault, sentence):
    # a short grace: the hanging server's request never ends, so it is killed, not waited for
    with npf.start_server(token_server("--fault", fault), timeout=60, log_dir=tmp_path,
                          stop_grace=0.5) as s:
        url = s.url + "/v1"
        [report] = npf.benchmark(npf.Endpoint(url, timeout=1), [[1]], scenario="generate",
                                 output_tokens=8, workers_per_model=1, **QUICK)
    assert report["status"] == "error"
    assert report["error"].splitlines()[0].startswith(
        "copy 0 failed while loading and warming up: ")
    assert sentence.format(url=url) in report["error"].splitlines()[0]


def test_a_closed_port_is_said_in_one_sentence():
    from pytest_neuronperf.engine.server_command import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    [report] = npf.benchmark(npf.Endpoint(url, model="m"), [[1]], scenario="generate",
                             output_tokens=4, workers_per_model=1, **QUICK)
    assert f"cannot connect to {url}" in report["error"].splitlines()[0]


def test_a_server_that_never_answers_is_stopped_and_said_so(tmp_path):
    pid_file = tmp_path / "pid"
    with pytest.raises(ServerFailed, match=r"did not answer http://127\.0\.0\.1:\d+/v1/models "
                                           r"within 1 s \(stopped\)"):
        npf.start_server([sys.executable, "-c", "import os, sys, time; "
                          "open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(600)",
                          str(pid_file)], timeout=1, log_dir=tmp_path)
    assert wait_until(pid_file.exists, 1) and not alive(int(pid_file.read_text()))


def test_a_server_that_exits_shows_its_last_output(tmp_path):
    with pytest.raises(ServerFailed, match=r"exited \(exit code 3\)(.|\n)*no GPU here"):
        npf.start_server([sys.executable, "-c", "import sys; print('no GPU here'); "
                          "sys.exit(3)"], timeout=30, log_dir=tmp_path)


# --- everything it started is gone -------------------------------------------------------------

SERVED_TEST = """
import os
import sys
import time
from pathlib import Path

import pytest


@pytest.mark.parametrize("mode", os.environ["MODES"].split(","))
def test_served(neuronperf_server, mode):
    pids = Path(os.environ["PID_DIR"])
    os.environ["SERVER_PID_FILE"] = str(pids / f"server-{{mode}}.pid")
    server = neuronperf_server([sys.executable, {server!r}, "--port", "{{port}}", "--spawn"],
                               timeout=60)
    (pids / f"supervisor-{{mode}}.pid").write_text(str(server.pid))
    if mode == "wait":
        time.sleep(600)
    assert mode != "fail", "the test fails after starting its server"
"""

ROLES = ("supervisor", "server", "its child", "its daemon")


def pids_of(tmp_path: Path, modes: list[str]) -> dict[int, str]:
    """Per test mode, the supervisor's, then the server's, its child's and its daemon's pids,
    with what each one is."""
    found = {}
    for mode in modes:
        supervisor = (tmp_path / f"supervisor-{mode}.pid").read_text()
        server = (tmp_path / f"server-{mode}.pid").read_text().split()
        found.update({int(pid): f"{role} ({mode})"
                      for pid, role in zip([supervisor, *server], ROLES, strict=True)})
    return found


def start_pytest(pytester: pytest.Pytester, tmp_path: Path, modes: list[str]) -> subprocess.Popen:
    """pytest on ``SERVED_TEST`` (one test per mode) in a process of its own."""
    pytester.makepyfile(test_served=SERVED_TEST.format(server=TOKEN_SERVER))
    env = {**os.environ, "MODES": ",".join(modes), "PID_DIR": str(tmp_path)}
    return subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"],
                            cwd=pytester.path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


@pytest.mark.parametrize("ending", ["passes or fails", "Ctrl-C", "SIGKILL"])
def test_the_server_and_everything_it_started_are_gone_after_the_test(pytester, tmp_path,
                                                                      ending):
    modes = ["pass", "fail"] if ending == "passes or fails" else ["wait"]
    proc = start_pytest(pytester, tmp_path, modes)
    pids: dict[int, str] = {}
    try:
        if modes == ["wait"]:
            assert wait_until(lambda: (tmp_path / "supervisor-wait.pid").exists(), 120), \
                proc.communicate(timeout=60)[0]
            pids = pids_of(tmp_path, modes)
            assert all(alive(pid) for pid in pids)
            proc.send_signal(signal.SIGINT if ending == "Ctrl-C" else signal.SIGKILL)
        output, _ = proc.communicate(timeout=120)
        pids = pids or pids_of(tmp_path, modes)
        assert wait_until(lambda: not any(alive(pid) for pid in pids), 15), (
            f"left running after the test {ending}: "
            f"{[role for pid, role in pids.items() if alive(pid)]}\n{output}")
        expected = {"passes or fails": "1 failed, 1 passed", "Ctrl-C": "KeyboardInterrupt"}
        assert ending == "SIGKILL" or expected[ending] in output, output
    finally:
        proc.kill()
        proc.communicate()
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
