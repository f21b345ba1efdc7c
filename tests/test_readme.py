"""The README's quick start and library section run as written (copied out of README.md, with
short durations): a user who pastes them gets what the README says."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def code_block(first_line: str) -> str:
    """The ```python block of README.md that starts with ``first_line``."""
    found = re.search(r"```python\n(" + re.escape(first_line) + r"\n.*?)```", README, re.S)
    assert found is not None, f"README.md has no python block starting {first_line!r}"
    return found.group(1)


def test_quick_start_runs_as_written(tmp_path: Path) -> None:
    (tmp_path / "test_perf.py").write_text(code_block("# test_perf.py"))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-q",
         "--neuronperf-baseline=perf.json", "--neuronperf-save-baseline",
         "--neuronperf-duration=0.3", "--neuronperf-json=reports.json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
    reports = json.loads((tmp_path / "reports.json").read_text())["reports"]
    assert [r["status"] for r in reports] == ["ok"] * 4, done.stdout[-3000:]
    # the quick start's p99_ms=20 budget is the only thing a loaded machine may miss
    assert {r["verdict"] for r in reports} <= {"NEW", "OVER_BUDGET"}, done.stdout[-3000:]
    assert done.returncode == (1 if any(r["verdict"] == "OVER_BUDGET" for r in reports) else 0)
    assert (tmp_path / "perf.json").exists()


def test_library_section_runs_as_written(tmp_path: Path) -> None:
    script = code_block("# bench_mlp.py")
    assert "duration=5" in script
    (tmp_path / "bench_mlp.py").write_text(script.replace("duration=5", "duration=0.3"))
    done = subprocess.run([sys.executable, "bench_mlp.py"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    # compile says what it does and where it writes; benchmark shows its progress
    assert re.search(r"compile MLP with torchscript for batch sizes \[1, 8\].* go to "
                     + re.escape(str(tmp_path / "neuronperf-models")), done.stderr)
    assert "Benchmarking 'MLP' bs=8 n=2 w=2 p=1 (configuration 8 of 8), ~" in done.stderr
    assert "error" not in done.stderr.lower(), done.stderr
    table = done.stdout.strip().splitlines()
    column = table[0].split().index("throughput_avg")
    shown = [float(row.split()[column]) for row in table[1:]]
    assert len(shown) == 8 and shown == sorted(shown)  # sorted by a column it shows
    reports = json.loads((tmp_path / "mlp.json").read_text())["reports"]
    assert [r["status"] for r in reports] == ["ok"] * 8
    assert (tmp_path / "mlp.csv").read_text().count("\n") == 1 + 8
