"""The demo a newcomer runs first (``./dev.sh demo`` = set-up + ``examples/demo.sh``), on a
machine that the shipped ``examples/baseline.json`` has no results for (issue 25)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_neuronperf.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]


def other_machine(shipped: Path, target: Path) -> str:
    """``shipped`` as if recorded on another machine: the same entries under another machine
    id and CPU (what a newcomer's clone holds on hardware the project never saw)."""
    data = json.loads(shipped.read_text())
    [(recorded, section)] = list(data["machines"].items())[:1]
    section["fingerprint"]["cpu"] = "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"
    data["machines"] = {"820b6c515fa9": section}
    target.write_text(json.dumps(data, indent=1))
    return recorded


def git(directory: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
                   cwd=directory, check=True, capture_output=True)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A git checkout with the examples the demo's flow needs (the paired example's file: the
    others only cost each pytest run seconds of imports), whose baseline has no results for
    this machine."""
    root = tmp_path / "checkout"
    others = [p.name for p in (ROOT / "examples").glob("test_*.py")
              if p.name != "test_serving_pipeline.py"]
    shutil.copytree(ROOT / "examples", root / "examples",
                    ignore=shutil.ignore_patterns(".neuronperf-cache", "__pycache__", *others))
    other_machine(ROOT / "examples" / "baseline.json", root / "examples" / "baseline.json")
    git(root, "init", "-q")
    git(root, "add", "examples")
    git(root, "commit", "-qm", "examples")
    return root


def test_the_demo_records_this_machines_baseline_then_gates_against_it(checkout: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable, "COLUMNS": "120"}
    # the demo's paired example alone, 1 s: the flow, not the figures
    done = subprocess.run(["bash", "examples/demo.sh", "-k", "pre_and_post_processing",
                           "--neuronperf-duration=1"], cwd=checkout, env=env,
                          capture_output=True, text=True, timeout=900)
    err, out = done.stderr, done.stdout
    assert "demo: baseline examples/baseline.json has no results for this machine" in err, err
    assert "so it records this machine's own baseline first" in err
    recorded = checkout / "examples" / ".neuronperf-cache" / "demo-baseline.json"
    machines = json.loads(recorded.read_text())["machines"]
    [(machine_id, section)] = machines.items()
    assert machine_id != "820b6c515fa9"
    [test] = section["tests"]
    assert test.endswith("test_tiny_resnet_with_pre_and_post_processing")
    # the gate run compared against it: a real verdict, not NEW, and no advice to record
    gate = out[out.index("baseline: saved"):]
    summary = gate[gate.index("neuronperf summary"):]
    row = next(line for line in summary.splitlines() if line.startswith("  bs=1 n=1 w=1 p=1"))
    assert row.split()[-1] in ("PASS", "IMPROVED", "INCONCLUSIVE", "REGRESSED", "OVER_BUDGET")
    assert "NEW" not in summary.split("paired: head vs base")[0]
    assert "has no results for this machine" not in gate
    # the paired part ran against the checkout's HEAD, with no baseline advice
    assert "paired: head vs base (HEAD (" in out
    paired_part = out[out.rindex("test session starts"):]
    assert "re-saving the baseline" not in paired_part
    assert "--neuronperf-save-baseline" not in paired_part


def test_machine_says_whether_a_baseline_has_this_machine(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shipped = ROOT / "examples" / "baseline.json"
    elsewhere = tmp_path / "elsewhere.json"
    recorded = other_machine(shipped, elsewhere)
    assert cli_main(["machine"]) == 0
    this = capsys.readouterr().out.split()[1]
    assert cli_main(["machine", "--baseline", str(elsewhere)]) == 1
    said = capsys.readouterr().out
    assert (f"baseline {elsewhere} has no results for this machine {this}: every configuration "
            f"is NEW; it has: 820b6c515fa9 (cpu, 2 cores, Intel(R) Xeon(R)") in said
    assert cli_main(["machine", "--baseline", str(tmp_path / "none.json")]) == 1
    assert "does not exist" in capsys.readouterr().out
    (tmp_path / "bad.json").write_text("{")
    assert cli_main(["machine", "--baseline", str(tmp_path / "bad.json")]) == 2
    assert "is not valid JSON" in capsys.readouterr().err
    if this == recorded:  # the machine class the shipped baseline was recorded on
        assert cli_main(["machine", "--baseline", str(shipped)]) == 0
        assert "has results for this machine" in capsys.readouterr().out
