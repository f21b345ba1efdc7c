"""How files are written safely (``pytest_neuronperf.safe_files``), with real files, devices,
FIFOs and processes: atomic replace, special files written into, links, read-only files, the
lock (who holds it, a limit, a killed holder, a removed folder) and what is left on disk."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from projects import Run, sleep_tests

from pytest_neuronperf import safe_files
from pytest_neuronperf.reporting.files import write_csv, write_json

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mknod of a character device needs root")


def child(code: str) -> subprocess.Popen[str]:
    """A real Python process running ``code`` (with this tree on its path)."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def wait_for_line(process: subprocess.Popen[str], expected: str) -> None:
    """Block until ``process`` prints ``expected`` (fail if it exits first)."""
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.strip() == expected, f"child said {line!r}; rest: {process.stdout.read()!r}"


def stop(process: subprocess.Popen[str]) -> None:
    """SIGKILL a child we started and reap it."""
    process.kill()
    process.wait(timeout=10)


def holder(lock_target: Path) -> subprocess.Popen[str]:
    """A process that holds the lock of ``lock_target``'s writers until it is killed."""
    process = child(f"""
        import time
        from pathlib import Path
        from pytest_neuronperf.safe_files import locked
        with locked(Path({str(lock_target)!r})):
            print("held", flush=True)
            time.sleep(60)
    """)
    wait_for_line(process, "held")
    return process


# --- Atomic replace --------------------------------------------------------------------------


def test_replace_keeps_the_mode_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    path.write_text("old")
    path.chmod(0o640)
    assert safe_files.write_text(path, "new") == path
    assert path.read_text() == "new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_writer_killed_mid_write_leaves_the_old_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text('{"old": true}\n')
    writer = child(f"""
        import os, time
        from pytest_neuronperf import safe_files
        def stalled_fsync(fd):
            print("writing", flush=True)
            time.sleep(60)
        os.fsync = stalled_fsync
        safe_files.write_text({str(path)!r}, '{{"new": true}}' * 100000)
    """)
    wait_for_line(writer, "writing")
    stop(writer)
    assert writer.returncode == -9
    assert path.read_text() == '{"old": true}\n'
    safe_files.write_text(path, "after")  # a later writer is not blocked by the dead one
    assert path.read_text() == "after"


# --- Special files ---------------------------------------------------------------------------


@needs_root
def test_json_and_csv_into_a_character_device_write_into_it(tmp_path: Path) -> None:
    null = tmp_path / "null"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    report = {"model_name": "m", "status": "ok"}
    assert write_json([report], null) == str(null)
    write_csv([report], null)
    assert stat.S_ISCHR(null.stat().st_mode)
    assert null.stat().st_rdev == os.makedev(1, 3)
    assert [p.name for p in tmp_path.iterdir()] == ["null"]


def test_json_into_a_fifo_reaches_its_reader(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    write_json([{"model_name": "m"}], fifo)
    reader.join(timeout=10)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert json.loads(received[0])["reports"] == [{"model_name": "m"}]


def test_fifo_without_a_reader_is_an_error_not_a_hang(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    monkeypatch.setattr(safe_files, "FIFO_WAIT_S", 0.2)
    with pytest.raises(safe_files.RefusedWrite, match="FIFO that no process opened for reading"):
        write_json([], fifo)
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_socket_and_folder_are_refused(tmp_path: Path) -> None:
    sock_path = tmp_path / "s"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    try:
        with pytest.raises(safe_files.RefusedWrite, match="is a socket"):
            safe_files.write_text(sock_path, "x")
    finally:
        server.close()
    with pytest.raises(safe_files.RefusedWrite, match="is a folder"):
        safe_files.write_text(tmp_path, "x")


# --- Links and read-only files ---------------------------------------------------------------


def test_a_link_is_followed_when_its_target_folder_exists(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    link = tmp_path / "out.json"
    link.symlink_to(tmp_path / "shared" / "out.json")
    assert safe_files.write_text(link, "x") == tmp_path / "shared" / "out.json"
    assert link.is_symlink() and link.read_text() == "x"


def test_a_link_into_a_missing_folder_is_refused_and_creates_nothing(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    link = tmp_path / "project" / "out.json"
    link.parent.mkdir()
    link.symlink_to(outside / "gone" / "out.json")
    with pytest.raises(safe_files.RefusedWrite) as error:
        safe_files.write_text(link, "x")
    assert str(link) in str(error.value) and str(outside / "gone" / "out.json") in str(error.value)
    assert list(outside.iterdir()) == []


def test_a_read_only_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    path.write_text("old")
    path.chmod(0o444)
    with pytest.raises(safe_files.RefusedWrite, match=r"read-only \(mode 0444\).*chmod u\+w"):
        write_csv([{"a": 1}], path)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


# --- Copy and publish ------------------------------------------------------------------------


def test_publish_replaces_an_older_folder_whole(tmp_path: Path) -> None:
    target = tmp_path / "model.savedmodel"
    target.mkdir()
    (target / "old.pb").write_text("old")
    source = tmp_path / "source"
    source.mkdir()
    (source / "new.pb").write_text("new")
    safe_files.copy_atomically(source, target)
    assert [p.name for p in target.iterdir()] == ["new.pb"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.savedmodel", "source"]


# --- The lock --------------------------------------------------------------------------------


def test_lock_files_live_in_a_hidden_ignored_folder_not_beside_the_file(tmp_path: Path) -> None:
    target = tmp_path / "baseline.json"
    with safe_files.locked(target):
        assert (tmp_path / ".neuronperf-locks" / "baseline.json.lock.holder").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".neuronperf-locks"]
    locks = tmp_path / ".neuronperf-locks"
    assert sorted(p.name for p in locks.iterdir()) == [".gitignore", "baseline.json.lock"]
    assert "*" in (locks / ".gitignore").read_text().splitlines()


def test_a_held_lock_names_its_holder_then_gives_up(tmp_path: Path) -> None:
    target = tmp_path / "baseline.json"
    process = holder(target)
    said: list[str] = []
    try:
        started = time.monotonic()
        with pytest.raises(safe_files.LockTimeout) as error, safe_files.locked(
            target, notice_after=0.2, give_up_after=0.8, on_wait=said.append
        ):
            pytest.fail("the lock was taken while another process held it")
        waited = time.monotonic() - started
    finally:
        stop(process)
    assert len(said) == 1 and f"process {process.pid}" in said[0] and str(target) in said[0]
    assert f"process {process.pid}" in str(error.value)
    assert "gave up after 1 s" in str(error.value)
    assert waited >= 0.8
    with safe_files.locked(target, give_up_after=10):  # the kernel released the killed holder's
        pass


def test_a_waiter_goes_on_when_the_folder_is_removed_and_the_holder_killed(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "perf"
    target = folder / "baseline.json"
    folder.mkdir()
    first = holder(target)
    waiter = child(f"""
        from pytest_neuronperf.gating.baseline import save_results
        print("waiting", flush=True)
        save_results({str(target)!r}, "m1", {{}}, {{"t": {{"c": {{"metrics": {{}}}}}}}})
        print("saved", flush=True)
    """)
    try:
        wait_for_line(waiter, "waiting")
        time.sleep(0.3)  # the waiter is blocked on the held lock (or about to be)
        import shutil

        shutil.rmtree(folder)
        stop(first)
        out, _ = waiter.communicate(timeout=30)
    finally:
        stop(first)
        if waiter.poll() is None:
            stop(waiter)
    assert waiter.returncode == 0, out
    assert out.strip() == "saved"
    assert json.loads(target.read_text())["machines"]["m1"]["tests"] == {"t": {"c": {
        "metrics": {}, "windows": {}}}}


# --- From pytest -----------------------------------------------------------------------------

PERF_TEST = sleep_tests(plain=False, batch_sizes=[1], duration=0.3)


@needs_root
def test_neuronperf_json_at_a_character_device_keeps_the_device(
    pytester: pytest.Pytester, run: Run,
) -> None:
    pytester.makepyfile(test_models=PERF_TEST)
    null = pytester.path / "devnull"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    result = run(f"--neuronperf-json={null}", f"--neuronperf-csv={null}")
    result.assert_outcomes(passed=1)
    assert stat.S_ISCHR(null.stat().st_mode) and null.stat().st_rdev == os.makedev(1, 3)
    result.stdout.fnmatch_lines([f"reports: {null}"])


def test_a_held_baseline_lock_is_reported_at_once_then_fails_the_run(
    pytester: pytest.Pytester, run: Run,
) -> None:
    pytester.makepyfile(test_models=PERF_TEST)
    pytester.makeconftest("""
        from pytest_neuronperf import safe_files
        safe_files.NOTICE_AFTER_S, safe_files.GIVE_UP_AFTER_S = 0.2, 1.0
    """)
    baseline = pytester.path / "baseline.json"
    process = holder(baseline)
    try:
        result = run(f"--neuronperf-baseline={baseline}", "--neuronperf-save-baseline")
    finally:
        stop(process)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        f"neuronperf: waiting for the lock on {baseline} *held by process {process.pid}*",
        f"neuronperf: ERROR could not write the baseline {baseline} *gave up after 1 s*"
        f"held by process {process.pid}*",
        "neuronperf: this run's reports were saved to *neuronperf-unsaved-*.json",
    ])
    assert not baseline.exists()


@pytest.mark.parametrize("problem", ["read-only", "link into a missing folder"])
def test_a_baseline_that_cannot_be_saved_is_refused_before_the_run(
    pytester: pytest.Pytester, run: Run, problem: str
) -> None:
    pytester.makepyfile(test_models=PERF_TEST)
    baseline = pytester.path / "baseline.json"
    if problem == "read-only":
        baseline.write_text('{"format": "pytest-neuronperf-baseline", "version": 1, '
                            '"machines": {}}')
        baseline.chmod(0o444)
        expected = f"*{baseline} is read-only (mode 0444); it was left untouched*"
    else:
        target = pytester.path / "elsewhere" / "baseline.json"
        baseline.symlink_to(target)
        expected = f"*{baseline} is a symbolic link to {target}, whose folder*does not exist*"
    before = baseline.read_bytes() if problem == "read-only" else None
    result = run(f"--neuronperf-baseline={baseline}", "--neuronperf-save-baseline")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: cannot save the baseline: {expected}"])
    assert "passed" not in result.stdout.str()
    if before is not None:
        assert baseline.read_bytes() == before
    assert not (pytester.path / "elsewhere").exists()


def test_escape_sequences_from_a_baseline_are_not_printed_raw(pytester: pytest.Pytester,
                                                             run: Run) -> None:
    pytester.makepyfile(test_models=PERF_TEST)
    baseline = pytester.path / "baseline.json"
    baseline.write_text(json.dumps({
        "format": "pytest-neuronperf-baseline", "version": 1,
        "machines": {"evil\x1b]0;pwned\x07": {
            "fingerprint": {"cpu": "\x1b[31mred\x1b[0m", "device_type": "cpu\u202e"},
            "tests": {}}},
    }))
    result = run(f"--neuronperf-baseline={baseline}")
    result.assert_outcomes(passed=1)
    output = result.stdout.str()
    assert "\x1b" not in output and "\x07" not in output and "\u202e" not in output
    result.stdout.fnmatch_lines([
        r"*it has: evil\x1b]0;pwned\x07 (cpu\u202e, None cores, \x1b[31mred\x1b[0m)*",
    ])


# --- Text from files, printed ----------------------------------------------------------------


def test_printable_escapes_what_a_terminal_would_act_on() -> None:
    from pytest_neuronperf.logs import printable
    from pytest_neuronperf.reporting.tables import format_table

    assert printable("EPYC 7R13 — ü") == "EPYC 7R13 — ü"
    assert printable("a\x1b[2Jb\nc\u202ed\x07") == r"a\x1b[2Jb\x0ac\u202ed\x07"
    assert "\x1b" not in format_table([{"status": "\x1b[31mok"}], ["status"])


def test_a_model_index_error_text_is_escaped_before_it_is_shown(tmp_path: Path) -> None:
    from pytest_neuronperf.engine.planning import plan_index

    index = {"format": "pytest-neuronperf-index", "version": 1, "model_name": "m",
             "model_configs": [{"filename": None, "batch_size": 1, "pipeline_size": 1,
                                "compiler": "x", "status": "error",
                                "error": "boom\x1b]0;owned\x07\x1b[2J"}]}
    path = tmp_path / "index.json"
    path.write_text(json.dumps(index))
    plan = plan_index(path, index, None, None, None)
    failure = plan.sources[0].failure
    assert failure is not None and "\x1b" not in failure
    assert failure.endswith(r"boom\x1b]0;owned\x07\x1b[2J")
