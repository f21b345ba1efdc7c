"""The run history: the store (SQLite and a real PostgreSQL server), never losing a run, the
change-point detector, the ``history`` command and its trend page."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_neuronperf.cli import main as cli_main
from pytest_neuronperf.history.changes import detect
from pytest_neuronperf.history.recording import append_run, save_run
from pytest_neuronperf.history.store import HistoryError, Store

pytest_plugins = ["history_stores"]  # store_location: SQLite, then a real PostgreSQL
REPO = Path(__file__).resolve().parents[1]


def report(test: str, throughput: float, batch: int = 1, **extra: Any) -> dict[str, Any]:
    """A report as the plugin records it (the keys a history reads)."""
    return {"test": test, "batch_size": batch, "n_models": 1, "workers_per_model": 1,
            "pipeline_size": 1, "status": "ok", "throughput_avg": throughput,
            "latency_ms_p50": 1000.0 / throughput, "latency_ms_p99": 1300.0 / throughput,
            "machine": "m1", "fingerprint": {"cpu": "test cpu", "cores": 2},
            "interference": {"other_pct": 2.0, "steal_pct": 0.0, "cpus": 1}, **extra}


def run(index: int, packages: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    """A run's facts, the ``index``-th commit of a made-up history."""
    return {"uid": f"run{index:04d}", "recorded_at": 1_700_000_000.0 + 3600 * index,
            "commit": f"{index:04d}" + "c" * 36, "commit_time": 1_700_000_000.0 + 3600 * index,
            "branch": "main", "dirty": False, "host": "ci-1", "source": "test",
            "packages": packages or {"torch": "2.12.0", "numpy": "2.0.0"}, **extra}


def step_series(n: int = 30, at: int = 20, step: float = -0.10, noise: float = 0.01,
                seed: int = 1) -> list[float]:
    """Throughput per run: 1000/s with ``noise``, times (1 + step) from run ``at`` on."""
    rng = np.random.default_rng(seed)
    return [1000.0 * (1 + (step if i >= at else 0.0)) * (1 + rng.normal(0, noise))
            for i in range(n)]


# --- the store ----------------------------------------------------------------------------------


def test_runs_come_back_whole_in_commit_order_and_once(store_location: str) -> None:
    with Store(store_location) as store:
        for index in (2, 0, 1):  # appended out of commit order
            assert append_run(store, run(index), [report("t.py::a", 100.0 + index),
                                                 report("t.py::a", 50.0, batch=8)])
        assert not append_run(store, run(1), [report("t.py::a", 1.0)])  # same uid: ignored
        runs = store.runs()
    assert [r.uid for r in runs] == ["run0000", "run0001", "run0002"]
    first = runs[0]
    assert first.commit == "0000" + "c" * 36 and first.branch == "main" and first.dirty is False
    assert first.packages["torch"] == "2.12.0" and first.interference == 2.0
    assert sorted(r.config for r in first.results) == [
        "bs=1,n_models=1,workers=1,pipeline=1", "bs=8,n_models=1,workers=1,pipeline=1"]
    assert {r.metrics["throughput"] for r in first.results} == {100.0, 50.0}
    assert first.results[0].fingerprint["cpu"] == "test cpu"


WRITER = textwrap.dedent('''
    import sys, time
    from pathlib import Path
    from pytest_neuronperf.history.recording import save_run
    location, name, count, start, log = sys.argv[1], sys.argv[2], int(sys.argv[3]), \\
        float(sys.argv[4]), Path(sys.argv[5])
    while time.time() < start:
        time.sleep(0.005)
    for i in range(count):
        uid = f"{name}-{i}"
        with open(log, "a") as stream:
            stream.write(uid + "\\n")
        reports = [{"test": f"t.py::{name}", "batch_size": b, "n_models": 1,
                    "workers_per_model": 1, "pipeline_size": 1, "status": "ok",
                    "throughput_avg": 100.0 + i, "machine": "m1", "fingerprint": {}}
                   for b in (1, 2, 4)]
        save_run(location, {"uid": uid, "recorded_at": time.time(), "source": "test",
                            "packages": {}}, reports, log.parent)
''')


def writers(location: str, folder: Path, names: list[str], count: int) -> list[Any]:
    """Start one writer process per name, all beginning at the same moment."""
    start = time.time() + 2.0
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return [subprocess.Popen([sys.executable, "-c", WRITER, location, name, str(count),
                              str(start), str(folder / f"{name}.log")], env=env,
                             stderr=subprocess.PIPE, text=True) for name in names]


def test_concurrent_writers_lose_nothing(store_location: str, tmp_path: Path) -> None:
    processes = writers(store_location, tmp_path, ["a", "b", "c"], 8)
    for process in processes:
        assert process.wait(timeout=300) == 0, process.stderr.read()  # type: ignore[union-attr]
    with Store(store_location) as store:
        runs = store.runs()
    assert sorted(r.uid for r in runs) == sorted(f"{n}-{i}" for n in "abc" for i in range(8))
    assert all(len(r.results) == 3 for r in runs)
    assert not list(tmp_path.glob("neuronperf-unsaved-*"))  # every rescue file was removed


def test_a_killed_writer_leaves_the_store_whole_and_its_run_in_a_rescue_file(
        store_location: str, tmp_path: Path) -> None:
    (process,) = writers(store_location, tmp_path, ["k"], 100_000)
    log = tmp_path / "k.log"
    deadline = time.time() + 120
    while time.time() < deadline and (not log.exists() or len(log.read_text().split()) < 15):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    order = log.read_text().split()
    started = set(order)
    with Store(store_location) as store:
        stored = {r.uid: len(r.results) for r in store.runs()}
    assert set(stored.values()) <= {3}  # no half-written run
    rescued = list(tmp_path.glob("neuronperf-unsaved-*.json"))
    assert len(rescued) <= 1  # at most the run being saved when it was killed
    missing = started - set(stored)
    assert len(missing) <= 1
    for file in rescued:
        assert cli_main(["history", store_location, "--import", str(file)]) == 0
    with Store(store_location) as store:
        after = [r.uid for r in store.runs()]
    assert len(after) == len(set(after))  # added once, never twice
    # every run is stored, but the last one when it was killed before its rescue file was made
    assert set(after) == started or set(after) == started - {order[-1]}
    if not store_location.startswith("postgresql"):
        with sqlite3.connect(store_location) as connection:
            assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refused(location: str, rescue: Path) -> str:
    """Try to save a run; the error's sentence (the rescue file must hold the run)."""
    with pytest.raises(HistoryError) as error:
        save_run(location, run(1), [report("t.py::a", 100.0)], rescue)
    (kept,) = rescue.glob("neuronperf-unsaved-*.json")
    document = json.loads(kept.read_text())
    assert document["run"]["uid"] == "run0001"
    assert document["reports"][0]["throughput_avg"] == 100.0
    message = str(error.value)
    assert "\n" not in message and str(kept) in message
    return message


def test_a_store_from_a_newer_version_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    with Store(path) as store:
        append_run(store, run(0), [report("t.py::a", 100.0)])
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE neuronperf_meta SET value = '99' WHERE key = "
                           "'schema_version'")
    before = digest(path)
    message = refused(str(path), tmp_path)
    assert "newer pytest-neuronperf (schema version 99" in message and str(path) in message
    assert digest(path) == before


@pytest.mark.parametrize("content", [b"not a database at all" * 100,
                                     b"SQLite format 3\x00" + b"\xff" * 4000])
def test_a_corrupt_sqlite_file_is_refused_and_left_untouched(tmp_path: Path,
                                                             content: bytes) -> None:
    path = tmp_path / "history.sqlite"
    path.write_bytes(content)
    message = refused(str(path), tmp_path)
    assert "is not a SQLite database or is corrupt" in message
    assert path.read_bytes() == content


def test_another_programs_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "app.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE users (name TEXT)")
    before = digest(path)
    assert "SQLite database of another program (tables users)" in refused(str(path), tmp_path)
    assert digest(path) == before


def test_an_unreachable_database_is_named_and_the_run_kept(tmp_path: Path) -> None:
    from history_stores import free_port

    url = f"postgresql://ci:secret@127.0.0.1:{free_port()}/perf"
    message = refused(url, tmp_path)
    assert message.startswith("history database postgresql://ci:***@127.0.0.1")
    assert "is unreachable" in message and "secret" not in message


def test_a_full_disk_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(disk)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here to fill: {mounted.stderr.strip()}")
    try:
        path = disk / "history.sqlite"
        with Store(path) as store:
            append_run(store, run(0), [report("t.py::a", 100.0)])
        filler = disk / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:  # fill the disk to the last block
            while True:
                os.write(fd, b"\0" * 512)
        except OSError:
            pass
        finally:
            os.close(fd)
        big = [report("t.py::a", 100.0 + i, batch=i, windows={"throughput": [1.0] * 2000})
               for i in range(1, 30)]
        with pytest.raises(HistoryError) as error:
            save_run(str(path), run(1), big, tmp_path)
        assert "the disk is full" in str(error.value)
        assert len(list(tmp_path.glob("neuronperf-unsaved-*.json"))) == 1
        filler.unlink()
        with Store(path) as store:
            assert [r.uid for r in store.runs()] == ["run0000"]
        with sqlite3.connect(path) as connection:
            assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


# --- change points ------------------------------------------------------------------------------


def test_a_step_is_found_where_it_is_with_its_size() -> None:
    (change,) = detect(step_series())
    assert change.index == 20 and change.runs_before == 20 and change.runs_after == 10
    assert -0.12 < change.magnitude < -0.08 and change.confidence > 0.999


def test_noise_and_one_odd_run_are_no_change() -> None:
    values = step_series(n=100, step=0.0, noise=0.02)
    values[50] *= 0.6  # one run on a busy machine
    assert detect(values) == []


def test_a_step_at_the_end_is_found_once_enough_runs_show_it() -> None:
    values = step_series(n=23, at=20, step=-0.10)
    assert detect(values[:22]) == []  # two runs: not yet
    assert [c.index for c in detect(values)] == [20]


# --- the history command ------------------------------------------------------------------------


def seeded(location: str, n: int = 24, at: int = 16) -> list[float]:
    """A history whose throughput drops 10 % at run ``at``, where torch went 2.12 -> 2.13."""
    values = step_series(n, at)
    with Store(location) as store:
        for i, value in enumerate(values):
            packages = {"torch": "2.13.0" if i >= at else "2.12.0", "numpy": "2.0.0"}
            append_run(store, run(i, packages), [report("test_perf.py::test_mlp", value)])
    return values


def test_history_command_names_the_change_point_commits_and_versions(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    location = str(tmp_path / "history.sqlite")
    seeded(location)
    assert cli_main(["history", location, "--test", "mlp"]) == 0
    out = capsys.readouterr().out
    assert "24 run(s), 1 configuration(s)" in out and "test_perf.py::test_mlp" in out
    line = next(line for line in out.splitlines() if line.strip().startswith("throughput"))
    assert "throughput -10" in line and "commits 0015cccc..0016cccc" in line
    assert "torch 2.12.0 -> 2.13.0" in line and "numpy" not in line


def test_history_command_refuses_bad_input_in_one_sentence(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    for argv, words in ((["history", str(folder)], "is a folder"),
                        (["history", "mysql://db/perf"], "only a file path (SQLite)"),
                        (["history", str(tmp_path / "h.sqlite"), "--since", "last week"],
                         "--since 'last week'")):
        assert cli_main(argv) == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1


def test_import_seeds_a_history_from_report_and_baseline_files(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_neuronperf.reporting.files import write_json

    folder = tmp_path / "earlier"
    folder.mkdir()
    for i in range(3):  # files with a run block (from pytest) and without (older files)
        write_json([report("t.py::a", 100.0 + i)], folder / f"run-{i}.json",
                   run=run(i) if i else None)
    (folder / "notes.json").write_text("{}")
    location = str(tmp_path / "h.sqlite")
    baseline = REPO / "examples" / "baseline.json"
    assert cli_main(["history", location, "--import", str(folder),
                     "--import", str(baseline)]) == 0
    out = capsys.readouterr().out
    assert "imported 3 run(s) from" in out and "skipped notes.json" in out
    assert f"imported 1 run(s) from {baseline}" in out
    assert cli_main(["history", location, "--import", str(folder)]) == 0
    assert "imported 0 run(s)" in capsys.readouterr().out  # already there: not twice
    with Store(location) as store:
        runs = store.runs()
    assert len(runs) == 4 and any(r.commit == run(1)["commit"] for r in runs)
    assert any(r.source.endswith("(baseline)") and r.packages.get("torch") for r in runs)


def test_trend_page_marks_change_points_in_a_real_browser(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    from test_html import chromium

    location = str(tmp_path / "history.sqlite")
    seeded(location)
    page = tmp_path / "trend.html"
    assert cli_main(["history", location, "--html", str(page)]) == 0
    text = page.read_text()
    assert "<script" not in text and "http" not in text.replace("http-equiv", "")
    assert "torch 2.12.0 -&gt; 2.13.0" in text and "0015cccc..0016cccc" in text
    shot = tmp_path / "shot.png"
    done = chromium(page, tmp_path / "profile", f"--screenshot={shot}",
                    "--window-size=1000,1400")
    assert shot.exists(), done.stderr[-2000:]
    from PIL import Image

    colours = Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 20) or []
    red = sum(n for n, (r, g, b) in colours if r > 150 and g < 80 and b < 80)
    blue = sum(n for n, (r, g, b) in colours if b > 150 and r < 60 and g < 130)
    assert red > 100 and blue > 100  # the change-point markers and the series are drawn
    dom = chromium(page, tmp_path / "profile", "--dump-dom").stdout
    assert "test_perf.py::test_mlp" in dom and "2.13.0" in dom and dom.count("<img") == 1


# --- the gate's judgement (the plugin's runs are in test_history_plugin.py) -----------------


@pytest.mark.parametrize(("slow_runs", "fails"), [(2, False), (3, True), (10, True),
                                                  (11, False)])
def test_gate_fails_a_recent_change_point_worse_than_tolerance(
        tmp_path: Path, slow_runs: int, fails: bool) -> None:
    from pytest_neuronperf.gating.verdicts import Verdict
    from pytest_neuronperf.history.gate import judge_history

    location = str(tmp_path / "history.sqlite")
    values = step_series(n=20 + slow_runs, at=20, step=-0.20)
    with Store(location) as store:
        for i, value in enumerate(values[:-1]):
            packages = {"torch": "2.13.0" if i >= 20 else "2.12.0"}
            append_run(store, run(i, packages), [report("t.py::a", value)])
        stored = store.runs()
    judgement = judge_history(stored, run(len(values) - 1, {"torch": "2.13.0"}),
                              report("t.py::a", values[-1]))
    assert judgement is not None and judgement.runs == len(values)
    assert (judgement.verdict is Verdict.REGRESSED) is fails
    if fails:
        from pytest_neuronperf.plugin.outcome import history_reason

        why = history_reason(judgement, "bs=1 n=1 w=1 p=1")
        assert why.startswith("throughput -2") and " at bs=1 n=1 w=1 p=1 (history: from " in why
        assert "torch 2.12.0 -> 2.13.0" in why and "since, tolerance -12%)" in why


def test_gate_passes_an_improvement_and_a_change_within_tolerance(tmp_path: Path) -> None:
    from pytest_neuronperf.gating.verdicts import Verdict
    from pytest_neuronperf.history.gate import judge_history

    for step, tolerance in ((+0.20, None), (-0.10, {"throughput": 0.15})):
        location = str(tmp_path / f"h{step}.sqlite")
        values = step_series(n=25, at=20, step=step)
        with Store(location) as store:
            for i, value in enumerate(values[:-1]):
                append_run(store, run(i), [report("t.py::a", value)])
            stored = store.runs()
        judgement = judge_history(stored, run(24), report("t.py::a", values[-1]), tolerance)
        assert judgement is not None and judgement.verdict is Verdict.PASS
