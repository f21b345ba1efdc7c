"""The code blocks of README.md and docs/*.md run as written (copied out of the Markdown, with
short durations): a user who pastes them gets what the page says. Every other block says in its
info string why it is not run (``doc_blocks``; docs/index.md, "Adding a page")."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from doc_blocks import ROOT, Block, all_blocks, files_for

pytest.importorskip("torch")

SHORT_S = 0.3
"""Every ``duration=`` of a block, and ``--neuronperf-duration``, while the tests run it."""


def shortened(code: str) -> str:
    """``code`` with every ``duration=<seconds>`` cut to :data:`SHORT_S`."""
    return re.sub(r"\bduration=\d+(\.\d+)?", f"duration={SHORT_S}", code)


def test_every_block_is_run_or_says_why_not() -> None:
    problems = []
    for block in all_blocks():
        if not block.fenced:
            problems.append(f"{block.where}: an indented code block; fence it (```bash ...) so "
                            f"that its info string can say how it is tested")
        elif block.runs is None and block.norun is None:
            problems.append(
                f"{block.where}: a ```{block.info} block that no test runs: make it a python "
                f"file block (first line '# test_<name>.py' or '# <name>.py') or mark it "
                f"```{block.language or 'text'} norun: <why it cannot run here>")
        for named in re.findall(r"tests/[\w/]+\.py", block.norun or ""):
            if not (ROOT / named).exists():
                problems.append(f"{block.where}: its norun reason names {named}, which does "
                                f"not exist")
        if block.language == "python":
            try:
                compile(block.code, block.where, "exec")
            except SyntaxError as error:
                problems.append(f"{block.where}: not valid Python ({error.msg}, line "
                                f"{error.lineno} of the block)")
    assert not problems, "\n".join(problems)


def test_a_page_with_a_conftest_block_has_a_test_block_that_uses_it() -> None:
    for block in all_blocks():
        if block.runs == "conftest":
            assert any(b.page == block.page and b.runs == "pytest" for b in all_blocks()), (
                f"{block.where}: a conftest.py block with no test_*.py block on its page")


def runnable() -> list[Block]:
    """The blocks the tests run, as pytest parameters' values."""
    return [block for block in all_blocks() if block.runs in ("pytest", "script")]


@pytest.mark.parametrize("block", runnable(), ids=lambda b: f"{b.where}:{b.filename}")
def test_block_runs_as_written(block: Block, tmp_path: Path) -> None:
    assert block.filename is not None
    for name, code in files_for(block).items():
        (tmp_path / name).write_text(shortened(code))
    if block.runs == "pytest":
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-q",
             block.filename, "--neuronperf-baseline=perf.json", "--neuronperf-save-baseline",
             f"--neuronperf-duration={SHORT_S}", "--neuronperf-json=reports.json"],
            cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
        reports = json.loads((tmp_path / "reports.json").read_text())["reports"]
        assert reports and all(r["status"] == "ok" for r in reports), done.stdout[-3000:]
        # a fresh baseline: every configuration is NEW, unless a loaded machine missed a budget
        assert {r["verdict"] for r in reports} <= {"NEW", "OVER_BUDGET"}, done.stdout[-3000:]
        over = any(r["verdict"] == "OVER_BUDGET" for r in reports)
        assert done.returncode == (1 if over else 0), done.stdout[-3000:]
    else:
        done = subprocess.run([sys.executable, block.filename], cwd=tmp_path,
                              capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
    CHECKS.get(block.filename, lambda _path, _done: None)(tmp_path, done)


def check_quick_start(folder: Path, done: subprocess.CompletedProcess[str]) -> None:
    """The README quick start: four configurations, and the baseline it records."""
    reports = json.loads((folder / "reports.json").read_text())["reports"]
    assert len(reports) == 4, done.stdout[-3000:]
    assert (folder / "perf.json").exists()


def check_library_script(folder: Path, done: subprocess.CompletedProcess[str]) -> None:
    """The library example: compile says what it does and where it writes; benchmark shows its
    progress; the table is sorted by a column it shows; the files hold every report."""
    assert re.search(r"compile MLP with torchscript for batch sizes \[1, 8\].* go to "
                     + re.escape(str(folder / "neuronperf-models")), done.stderr)
    assert "Benchmarking 'MLP' bs=8 n=2 w=2 p=1 (configuration 8 of 8), ~" in done.stderr
    assert "error" not in done.stderr.lower(), done.stderr
    table = done.stdout.strip().splitlines()
    column = table[0].split().index("throughput_avg")
    shown = [float(row.split()[column]) for row in table[1:]]
    assert len(shown) == 8 and shown == sorted(shown)
    reports = json.loads((folder / "mlp.json").read_text())["reports"]
    assert [r["status"] for r in reports] == ["ok"] * 8
    assert (folder / "mlp.csv").read_text().count("\n") == 1 + 8


def check_extending(folder: Path, done: subprocess.CompletedProcess[str]) -> None:
    """The hooks example: the conftest's fingerprint field reached the report."""
    [report] = json.loads((folder / "reports.json").read_text())["reports"]
    expected = os.environ.get("INSTANCE_TYPE", "unknown")
    assert report["fingerprint"]["instance_type"] == expected, done.stdout[-3000:]


CHECKS: dict[str, Callable[[Path, subprocess.CompletedProcess[str]], None]] = {
    "test_perf.py": check_quick_start,
    "bench_mlp.py": check_library_script,
    "test_explore.py": check_extending,
}
"""What a block's run must show beyond running cleanly, by the block's file name."""


def test_every_check_has_its_block() -> None:
    names = {block.filename for block in runnable()}
    assert set(CHECKS) <= names, f"no block for {sorted(set(CHECKS) - names)}"
