"""``python -m pytest_neuronperf compare/show`` (the ``pytest-neuronperf`` console script), as a
user runs it: a subprocess on report files, judged by the plugin's gate."""

from __future__ import annotations

import configparser
import importlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_neuronperf.reporting.files import write_json

ROOT = Path(__file__).resolve().parent.parent


def reports(throughput: float, seed: int, duration: float = 3.0) -> list[dict[str, Any]]:
    """Two configurations of one test as --neuronperf-json writes them (ten windows each)."""
    rng = np.random.default_rng(seed)
    made = []
    for batch in (1, 8):
        scale = throughput * batch
        windows = {"throughput": list(scale * rng.normal(1, 0.02, 10)),
                   "latency_ms_p50": list(1000 * batch / scale * rng.normal(1, 0.02, 10)),
                   "latency_ms_p99": list(1300 * batch / scale * rng.normal(1, 0.02, 10))}
        made.append({"test": "test_perf.py::test_mlp", "model_name": "MLP", "batch_size": batch,
                     "n_models": 1, "workers_per_model": 1, "pipeline_size": 1,
                     "duration": duration, "status": "ok", "error": None,
                     "throughput_avg": float(np.mean(windows["throughput"])),
                     "latency_ms_p50": float(np.median(windows["latency_ms_p50"])),
                     "latency_ms_p99": float(np.median(windows["latency_ms_p99"])),
                     "windows": windows, "verdict": "NEW"})
    return made


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest_neuronperf", *args], cwd=cwd,
                          capture_output=True, text=True, check=False)


@pytest.fixture
def files(tmp_path: Path) -> Path:
    write_json(reports(1000.0, 1), tmp_path / "old.json")
    write_json(reports(1000.0, 2), tmp_path / "same.json")
    write_json(reports(700.0, 3), tmp_path / "slow.json")
    return tmp_path


def test_compare_fails_a_regression_with_the_plugins_words(files: Path) -> None:
    done = cli("compare", "old.json", "slow.json", cwd=files)
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("test / configuration")
    assert lines[2].split()[4:] and lines[2].split()[-1] == "REGRESSED"
    assert re.search(r"REGRESSED throughput -3\d\.\d% at bs=1 n=1 w=1 p=1 "
                     r"\(tolerance -12%\)", done.stdout), done.stdout
    assert "neuronperf gate failed: 2 of 2 configuration(s)" in done.stdout
    assert "2 REGRESSED" in done.stdout


def test_compare_passes_identical_code_and_honours_tolerance(files: Path) -> None:
    same = cli("compare", "old.json", "same.json", cwd=files)
    assert same.returncode == 0 and "2 PASS" in same.stdout, same.stdout
    wide = cli("compare", "old.json", "slow.json", "--tolerance",
               "throughput:50%,p50:50%,p99:50%", cwd=files)
    assert wide.returncode == 0 and "2 PASS" in wide.stdout, wide.stdout


def test_compare_names_new_and_missing_configurations(files: Path) -> None:
    old = json.loads((files / "old.json").read_text())
    one = {**old, "reports": old["reports"][:1]}
    (files / "one.json").write_text(json.dumps(one))
    done = cli("compare", "one.json", "same.json", cwd=files)
    assert done.returncode == 0 and "1 NEW, 1 PASS" in done.stdout
    strict = cli("compare", "one.json", "same.json", "--strict", cwd=files)
    assert strict.returncode == 1 and "NEW bs=8 n=1 w=1 p=1: no baseline entry" in strict.stdout
    gone = cli("compare", "old.json", "one.json", cwd=files)
    assert ("1 configuration(s) of the old file are not in the new one: "
            "test_perf.py::test_mlp bs=8 n=1 w=1 p=1") in gone.stdout


def test_compare_fails_an_error_and_strict_fails_inconclusive(files: Path) -> None:
    broken = reports(1000.0, 5)
    broken[1].update(status="error", error="copy 0 died", throughput_avg=None,
                     latency_ms_p50=None, latency_ms_p99=None, windows=None)
    write_json(broken, files / "broken.json")
    done = cli("compare", "old.json", "broken.json", cwd=files)
    assert done.returncode == 1, done.stdout
    assert "1 ERROR, 1 PASS" in done.stdout
    noisy = reports(1000.0, 6)
    for report in noisy:
        for series in report["windows"].values():
            del series[2:]  # two windows cannot decide anything: INCONCLUSIVE
    write_json(noisy, files / "noisy.json")
    loose = cli("compare", "old.json", "noisy.json", cwd=files)
    assert loose.returncode == 0 and "2 INCONCLUSIVE" in loose.stdout, loose.stdout
    strict = cli("compare", "old.json", "noisy.json", "--strict", cwd=files)
    assert strict.returncode == 1 and "INCONCLUSIVE bs=1 n=1 w=1 p=1" in strict.stdout, (
        strict.stdout)


def test_compare_says_when_durations_differ(files: Path) -> None:
    write_json(reports(1000.0, 4, duration=1.0), files / "short.json")
    done = cli("compare", "old.json", "short.json", cwd=files)
    assert "measured for 1 s but its baseline for 3 s" in done.stdout


@pytest.mark.parametrize(("args", "message"), [
    (("compare", "old.json", "missing.json"), "missing.json does not exist or is not a file"),
    (("compare", "old.json", "bad.json"), "is not valid JSON"),
    (("compare", "old.json", "other.json"), "is not a pytest-neuronperf report file"),
    (("compare", "old.json", "same.json", "--tolerance", "p99:abc"), "--tolerance: tolerance"),
])
def test_bad_input_exits_2_with_one_sentence(files: Path, args: tuple[str, ...],
                                              message: str) -> None:
    (files / "bad.json").write_text("{not json")
    (files / "other.json").write_text('{"format": "something-else"}')
    done = cli(*args, cwd=files)
    assert done.returncode == 2 and done.stdout == ""
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_usage_errors_exit_2(files: Path) -> None:
    done = cli("compare", "old.json", cwd=files)
    assert done.returncode == 2 and "the following arguments are required: new" in done.stderr


def test_show_prints_a_report_file_and_writes_html(files: Path) -> None:
    done = cli("show", "old.json", "--html", "old.html", cwd=files)
    assert done.returncode == 0, done.stderr
    assert "test_perf.py::test_mlp" in done.stdout and "2 NEW" in done.stdout
    assert "data:image/png;base64," in (files / "old.html").read_text()
    compared = cli("compare", "old.json", "slow.json", "--html", "cmp.html", cwd=files)
    assert compared.returncode == 1 and "REGRESSED" in (files / "cmp.html").read_text()


def test_console_script_is_declared_and_runs_main() -> None:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    scripts = parser["options.entry_points"]["console_scripts"].strip().splitlines()
    assert scripts == ["pytest-neuronperf = pytest_neuronperf.cli:main"]
    module, _, name = scripts[0].split(" = ")[1].partition(":")
    main = getattr(importlib.import_module(module), name)
    assert callable(main)
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
