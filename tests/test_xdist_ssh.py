"""pytest-xdist over ssh (``--tx ssh=...``) against a real sshd on 127.0.0.1.

The sshd runs from a temporary folder (its own host key, authorized key, config and pid file, on
a free port) and is stopped when the test ends; no system configuration is touched. It needs
Debian's openssh-server (``.ci/run`` installs it): without it the test is skipped.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from projects import BENCHMARK_SLEEP, SLEEP_MODEL, Run, perf_test, reports_of

SSHD = Path("/usr/sbin/sshd")
PRIVSEP_DIR = Path("/run/sshd")  # the runtime dir an sshd started as root insists on


@dataclass(frozen=True)
class Sshd:
    """A running test sshd and the client config that reaches it."""

    port: int
    folder: Path

    def client_config(self, hosts: dict[str, str]) -> Path:
        """One ``Host`` entry per alias, all reaching this sshd, each passing this run's
        PYTHONPATH on (``SetEnv``; the sshd accepts it) and, if given, a simulated host id."""
        pythonpath = os.environ.get("PYTHONPATH", "")
        entries = []
        for alias, host_id in hosts.items():
            env = [f"PYTHONPATH={pythonpath}"] if pythonpath else []
            env += [f"NEURONPERF_HOST_ID={host_id}"] if host_id else []
            entries.append(
                f"Host {alias}\n  HostName 127.0.0.1\n  Port {self.port}\n  User "
                f"{pwd.getpwuid(os.geteuid()).pw_name}\n  IdentityFile {self.folder / 'client_key'}"
                f"\n  IdentitiesOnly yes\n  BatchMode yes\n  StrictHostKeyChecking no"
                f"\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR"
                + (f"\n  SetEnv {' '.join(env)}" if env else ""))
        config = self.folder / "ssh_config"
        config.write_text("\n".join(entries) + "\n")
        return config

    def logins(self) -> int:
        """Sessions the sshd accepted so far."""
        return (self.folder / "sshd.log").read_text().count("Accepted publickey")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)


def server_config(folder: Path, port: int) -> Path:
    config = folder / "sshd_config"
    config.write_text("\n".join([
        "ListenAddress 127.0.0.1", f"Port {port}", f"HostKey {folder / 'host_key'}",
        f"AuthorizedKeysFile {folder / 'authorized_keys'}", f"PidFile {folder / 'sshd.pid'}",
        "StrictModes no", "UsePAM no", "PermitRootLogin yes", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "AcceptEnv PYTHONPATH NEURONPERF_HOST_ID", ""]))
    return config


def wait_listening(process: subprocess.Popen[bytes], port: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1)
    return False


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the sshd and any session it still runs (its own process group)."""
    if process.poll() is None:
        with_group = os.getpgid(process.pid) == process.pid
        if with_group:
            os.killpg(process.pid, signal.SIGTERM)
        else:
            process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL) if with_group else process.kill()
            process.wait(timeout=10)


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    if not SSHD.exists() or shutil.which("ssh-keygen") is None or shutil.which("ssh") is None:
        pytest.skip("needs openssh-server and openssh-client (apt-get install -y "
                    "openssh-server; .ci/run installs it when it runs as root)")
    if os.geteuid() == 0 and not PRIVSEP_DIR.is_dir():
        try:
            PRIVSEP_DIR.mkdir(mode=0o755)
        except OSError as exc:
            pytest.skip(f"sshd needs its runtime dir {PRIVSEP_DIR}, which cannot be made: {exc}")
    folder = tmp_path / "sshd"
    folder.mkdir()
    keygen(folder / "host_key")
    keygen(folder / "client_key")
    shutil.copy(folder / "client_key.pub", folder / "authorized_keys")
    for _attempt in range(3):  # the free port may be taken before sshd binds it
        port = free_port()
        log = open(folder / "sshd.log", "wb")  # noqa: SIM115 (closed below)
        process = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(server_config(folder, port))],
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        if wait_listening(process, port):
            break
        stop(process)
        log.close()
    else:
        pytest.skip(f"sshd did not start: {(folder / 'sshd.log').read_text()[-500:]}")
    try:
        yield Sshd(port, folder)
    finally:
        stop(process)
        log.close()


SSH_TESTS = SLEEP_MODEL + perf_test(
    "test_case", cases=4, n_models="max", batch_sizes=None, duration=0.3,
    body='assert os.environ["PYTEST_XDIST_WORKER"]\n    ' + BENCHMARK_SLEEP)


@pytest.mark.parametrize("host_ids", [("", ""), ("rack-1", "rack-2")],
                         ids=["one-host", "two-simulated-hosts"])
def test_ssh_workers_split_the_cores_of_their_host(
        pytester: pytest.Pytester, run: Run, sshd: Sshd, host_ids: tuple[str, str],
        two_cores: list[int]) -> None:
    """Two ``--tx ssh=...`` specs with two names reach one machine: the workers find out they
    share it and take disjoint slices. With a host id each (as on two machines), each worker
    takes every core."""
    pytest.importorskip("xdist")
    from pytest_neuronperf.devices.cpu import usable_cpus

    pytester.makepyfile(test_models=SSH_TESTS)
    config = sshd.client_config(dict(zip(("fleet-a", "fleet-b"), host_ids, strict=True)))
    uid = f"fleet-ssh-{uuid.uuid4().hex[:8]}"
    specs = [arg for alias in ("fleet-a", "fleet-b") for arg in (
        "--tx", f"ssh={alias}//ssh_config={config}//python={sys.executable}"
                f"//chdir={pytester.path}")]
    result = run(*specs, "--dist", "load", f"--testrunuid={uid}",
                 "--neuronperf-baseline=baseline.json", "--neuronperf-save-baseline",
                 "--neuronperf-json=r.json", timeout=300)
    result.assert_outcomes(passed=4)
    assert sshd.logins() == 2  # both workers really came in over ssh
    reports = reports_of(pytester.path / "r.json")
    tests = [f"test_models.py::test_case[{i}]" for i in range(4)]
    assert sorted(r["test"] for r in reports) == tests
    # one kind of machine: one baseline section, whichever host measured
    [section] = json.loads((pytester.path / "baseline.json").read_text())["machines"].values()
    assert sorted(section["tests"]) == tests
    # --dist load sends 2 of the 4 tests to each worker at the start (xdist's LoadScheduling)
    cores: dict[str, set[str]] = {}
    for report in reports:
        cores.setdefault(report["worker"], set()).update(report["cores"])
    assert len(cores) == 2, cores
    every = len(usable_cpus())
    if host_ids[0]:  # two hosts: each worker alone on its host, with all of its cores
        assert {r["host_id"] for r in reports} <= set(host_ids)
        assert {r["n_models"] for r in reports} == {every}
        for report in reports:
            assert (f"neuronperf: host {report['host']} [{report['host_id']}] (workers "
                    f"{report['worker']};") in result.stdout.str()
    else:  # one host, as the workers saw it: disjoint slices
        assert len({r["host_id"] for r in reports}) == 1
        assert {r["n_models"] for r in reports} == {every // 2}
        first, second = cores.values()
        assert not first & second
        assert "neuronperf: host" not in result.stdout.str()  # the controller's own host
    assert not (Path(tempfile.gettempdir()) / f"pytest-neuronperf-{uid}").exists()
