"""What a user sees of one real paired run (``--neuronperf-against``) in a git repository: the
failing line as an 80-column CI log prints it, one number per figure in every output, the HTML
report's parts, and a clean ``git status`` afterwards (issue 25)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from pytest_neuronperf import formatting
from pytest_neuronperf.metrics import METRICS
from pytest_neuronperf.reporting import html

PERF_TEST = textwrap.dedent("""
    import numpy as np
    import pytest

    WEIGHTS = np.random.default_rng(0).standard_normal((96, 96))
    REPEATS = 4


    class Model:
        def __call__(self, x):
            for _ in range(REPEATS):
                x = np.tanh(x @ WEIGHTS)
            return x


    @pytest.mark.neuronperf(n_models=1, workers_per_model=1, duration=0.8, paired_rounds=10)
    def test_model(neuronperf):
        reports = neuronperf.benchmark(Model, np.ones((1, 96)), framework="python")
        assert all(r["status"] == "ok" for r in reports)
""")
# three times the work is far beyond these tolerances however loaded the machine; p99 is
# compared too (widely), so that every gated metric shows
WIDE = "--neuronperf-paired-tolerance=throughput:40%,p50:40%,p99:300%"
LABEL = "bs=1 n=1 w=1 p=1"


def git(directory: Path, *args: str) -> str:
    done = subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
                          cwd=directory, check=True, capture_output=True, text=True)
    return done.stdout


@pytest.fixture(scope="module")
def paired_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A repository whose working tree does three times the committed work per call, measured
    against HEAD with every output on, as a CI job runs it: not a terminal, 80 columns, no
    ``CI`` variable (pytest shortens the summary line only then). Outputs go outside the
    repository."""
    repo = tmp_path_factory.mktemp("repo")
    out = tmp_path_factory.mktemp("out")
    (repo / "test_perf.py").write_text(PERF_TEST)
    git(repo, "init", "-q")
    git(repo, "add", "test_perf.py")
    git(repo, "commit", "-qm", "base")
    (repo / "test_perf.py").write_text(PERF_TEST.replace("REPEATS = 4", "REPEATS = 12"))
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "BUILD_NUMBER")}
    env.update(COLUMNS="80", GITHUB_STEP_SUMMARY=str(out / "step.md"))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist",
         "--neuronperf-against=HEAD", WIDE, f"--neuronperf-json={out / 'out.json'}",
         f"--neuronperf-html={out / 'report.html'}"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    [report] = json.loads((out / "out.json").read_text())["reports"]
    return {"repo": repo, "out": out, "ret": done.returncode, "stdout": done.stdout,
            "stderr": done.stderr, "report": report}


def test_the_failing_line_says_what_regressed_within_80_columns(paired_run) -> None:
    assert paired_run["ret"] == 1, paired_run["stdout"][-3000:]
    assert paired_run["report"]["verdict"] == "REGRESSED"
    [line] = [x for x in paired_run["stdout"].splitlines() if x.startswith("FAILED ")]
    assert len(line) <= 80
    delta = formatting.percent(paired_run["report"]["paired"]["delta"]["throughput"])
    # what matters first: the verdict, the metric and its change survive pytest's cut
    assert line.startswith(f"FAILED test_perf.py::test_model - Failed: REGRESSED throughput "
                           f"{delta} at"), line
    assert "No artists with labels" not in paired_run["stdout"] + paired_run["stderr"]


def test_git_status_stays_clean_after_a_paired_run(paired_run) -> None:
    repo = paired_run["repo"]
    assert (repo / ".neuronperf-cache" / ".gitignore").read_text().endswith("*\n")
    assert list((repo / ".neuronperf-cache").glob("rev-*"))  # the base tree is there
    assert git(repo, "status", "--porcelain").splitlines() == [" M test_perf.py"]


class Tables(HTMLParser):
    """The cell texts of every table row of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def html_rows(page: str) -> list[list[str]]:
    parser = Tables()
    parser.feed(page)
    return parser.rows


def after_label(line: str, label: str) -> list[str]:
    """The cells of a text-table line after ``label`` (which may hold spaces)."""
    return line.split(label, 1)[1].split()


def test_every_output_shows_the_number_the_verdict_used(paired_run) -> None:
    """Summary, failure table, paired section, JSON, Markdown and HTML tables show one number
    per figure: the JSON's (what the paired gate judged), written by the one formatter."""
    report, out = paired_run["report"], paired_run["out"]
    paired = report["paired"]
    metrics = [m for m in METRICS if m in paired["delta"]]
    assert metrics == ["throughput", "latency_ms_p50", "latency_ms_p99"]  # every gated metric
    expected = {m: {"head": formatting.number(paired["figures"]["head"][m]),
                    "base": formatting.number(paired["figures"]["base"][m]),
                    "delta": formatting.percent(paired["delta"][m]),
                    "interval": formatting.interval(*paired["interval"][m])} for m in metrics}
    stdout = paired_run["stdout"].splitlines()
    summary = stdout[next(i for i, x in enumerate(stdout) if "neuronperf summary" in x):]

    # the session summary's row: head, base, change per metric, then the verdict
    row = after_label(next(x for x in summary if x.startswith(f"  {LABEL}")), LABEL)
    assert row == [*(v for m in metrics for v in (expected[m]["head"], expected[m]["base"],
                                                  expected[m]["delta"])), "REGRESSED"]
    # the paired section: one row per metric with the interval
    section = summary[next(i for i, x in enumerate(summary) if x.startswith("paired: head")):]
    for m in metrics:
        cells = after_label(next(x for x in section if METRICS[m].label in x), METRICS[m].label)
        assert cells[:4] == [expected[m][k] for k in ("head", "base", "delta", "interval")]
    # the failing test's evidence table: base before head, as its header says
    table = stdout[next(i for i, x in enumerate(stdout) if x.startswith("paired against HEAD")):]
    for m in metrics:
        cells = after_label(next(x for x in table if x.startswith(METRICS[m].label)),
                            METRICS[m].label)
        assert cells[:4] == [expected[m][k] for k in ("base", "head", "delta", "interval")]
    # the Markdown step summary
    markdown = (out / "step.md").read_text()
    [md_row] = [x for x in markdown.splitlines() if x.startswith("| REGRESSED |")]
    cells = [c.strip() for c in md_row.strip("|").split("|")]
    assert cells[2] == LABEL
    assert cells[3:] == [v for m in metrics for v in (expected[m]["head"], expected[m]["base"],
                                                      expected[m]["delta"])]
    # the HTML report's verdict table and paired table
    rows = html_rows((out / "report.html").read_text())
    [verdict_row] = [r for r in rows if r and r[0] == LABEL and len(r) == len(row) + 1]
    assert verdict_row[1:] == row
    for m in metrics:
        [paired_row] = [r for r in rows if len(r) == 7 and r[1] == METRICS[m].label]
        assert paired_row[2:6] == [expected[m][k] for k in ("head", "base", "delta",
                                                              "interval")]
        assert paired_row[6] == paired["verdicts"][m]


def test_the_html_report_of_a_real_paired_run_has_every_part(paired_run, tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    report = paired_run["report"]
    page = (paired_run["out"] / "report.html").read_text()
    assert "paired: head vs base (HEAD (" in page
    assert "alt='paired changes with their intervals'" in page
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no matplotlib warning reaches the user's output
        forest = html.paired_figure([report])
        figure = html.configuration_figure(report)
    # the forest plot: per metric its estimate inside its interval, and every round's change
    assert forest is not None and len(forest.axes) == 3
    for axes, metric in zip(forest.axes, ("throughput", "latency_ms_p50", "latency_ms_p99"),
                            strict=True):
        lines = {line.get_label(): line for line in axes.get_lines()}
        low, high = (x * 100 for x in report["paired"]["interval"][metric])
        assert list(lines["95% interval"].get_xdata()) == pytest.approx([low, high])
        estimate = lines["paired estimate"].get_xdata()[0]
        assert low <= estimate <= high
        assert len(lines["each round"].get_xdata()) == report["paired"]["rounds"]
    # the latency CDF of both sides, and both sides' slices per window
    cdf, throughput, p99 = figure.axes
    assert {line.get_label() for line in cdf.get_lines()} == {"head", "base"}
    for axes in (throughput, p99):
        drawn = {line.get_label(): len(line.get_xdata()) for line in axes.get_lines()}
        assert drawn == {"base": report["paired"]["rounds"], "head": report["paired"]["rounds"]}
    # and a browser shows it: the head's red and the base's blue series, the badge
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no headless chromium here (.ci/run installs it)")
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                    "--window-size=1300,1600", (paired_run["out"] / "report.html").as_uri()],
                   capture_output=True, timeout=120, check=False)
    assert shot.exists()
    from PIL import Image

    colours = Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 20) or []
    red = sum(n for n, (r, g, b) in colours if r > 150 and g < 80 and b < 80)
    blue = sum(n for n, (r, g, b) in colours if b > 150 and r < 60 and g < 130)
    assert red > 500 and blue > 500

