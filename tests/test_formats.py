"""Files written before the typed report keep loading: a report file (plain and gated) and a
baseline written by the plugin at commit 1e55754 (``tests/data``, made with
``pytest --neuronperf-baseline=... --neuronperf-save-baseline --neuronperf-json=...`` on a
one-test project), read by today's codec, gate, plugin and command."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_neuronperf.gating.baseline import load_baseline
from pytest_neuronperf.gating.verdicts import Verdict, gate_report
from pytest_neuronperf.reporting.files import get_reports, write_json
from pytest_neuronperf.reports import REPORT_FORMAT, REPORT_VERSION, config_key, decode_reports

DATA = Path(__file__).parent / "data"
TEST = "test_old.py::test_doubler"


def test_a_report_file_written_before_loads_unchanged(tmp_path: Path) -> None:
    written = json.loads((DATA / "reports-v1-gated.json").read_text())
    reports = get_reports(DATA / "reports-v1-gated.json")
    assert reports == written["reports"]
    [report] = reports
    assert report["verdict"] == "INCONCLUSIVE" and report["gate"]["throughput"]["verdict"]
    again = Path(write_json(reports, tmp_path / "again.json"))
    assert json.loads(again.read_text()) == written  # the codec writes what it read


def test_the_codec_names_its_version_and_refuses_a_newer_one() -> None:
    document = json.loads((DATA / "reports-v1.json").read_text())
    assert (document["format"], document["version"]) == (REPORT_FORMAT, 1) and REPORT_VERSION >= 1
    assert decode_reports(document["reports"], "a list") == document["reports"]  # a bare list
    with pytest.raises(ValueError, match="newer pytest-neuronperf"):
        decode_reports({**document, "version": REPORT_VERSION + 1}, "'x.json'")


def test_a_baseline_written_before_gates_todays_reports() -> None:
    baseline = load_baseline(DATA / "baseline-v1.json")
    assert baseline is not None
    [machine_id] = baseline.machines()
    [report] = get_reports(DATA / "reports-v1.json")
    entry = baseline.lookup(machine_id, TEST, config_key(report))
    assert entry is not None and len(entry["windows"]["throughput"]) == 20
    judgement = gate_report(report, entry)
    assert judgement.verdict not in (Verdict.ERROR, Verdict.NEW)
    assert set(report["gate"]) >= {"throughput", "latency_ms_p50", "latency_ms_p99"}
    assert report["baseline_windows"] == entry["windows"]


def test_the_compare_command_reads_files_written_before(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pytest_neuronperf", "compare", str(DATA / "reports-v1.json"),
         str(DATA / "reports-v1-gated.json")], capture_output=True, text=True, check=False)
    assert out.returncode in (0, 1), out.stderr  # 2 would be a refused file
    assert "bs=1 n=1 w=1 p=1" in out.stdout


def test_the_plugin_gates_against_a_baseline_written_before(pytester: pytest.Pytester) -> None:
    baseline = pytester.path / "baseline.json"
    shutil.copy(DATA / "baseline-v1.json", baseline)
    before = baseline.read_bytes()
    pytester.makepyfile(test_old="""
        import numpy as np
        import pytest


        class Doubler:
            def __call__(self, x):
                return x * 2


        @pytest.mark.neuronperf(batch_sizes=[1], n_models=[1], workers_per_model=[1],
                                duration=0.3, warmup=0.05)
        def test_doubler(neuronperf):
            neuronperf.benchmark(Doubler, np.ones((1, 4), dtype=np.float32),
                                 framework="python")
    """)
    result = pytester.runpytest_subprocess(f"--neuronperf-baseline={baseline}",
                                           "--neuronperf-json=r.json", "-p", "no:cacheprovider")
    assert result.ret in (0, 1), result.stdout.str()  # passed, or a noisy verdict; never refused
    [report] = get_reports(pytester.path / "r.json")
    assert report["status"] == "ok" and report["verdict"] in {v.value for v in Verdict}
    assert baseline.read_bytes() == before  # read, not rewritten
