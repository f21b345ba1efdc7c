"""The HTML report, rendered by a real headless browser (Debian's chromium; skipped only where
no browser is installed: .ci/run installs it)."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_neuronperf.reporting.html import pareto_front, render, write_html

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no headless browser installed (apt-get install chromium)")


def chromium(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", *args, page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False)


def report(test: str, batch: int, n: int, throughput: float, verdict: str,
           seed: int, paired: bool = False) -> dict[str, Any]:
    """A report as the plugin writes it, with windows, a latency sketch and gate figures."""
    rng = np.random.default_rng(seed)
    p99 = 1000.0 * batch * n / throughput * 1.3
    windows = {"throughput": list(throughput * rng.normal(1, 0.03, 10)),
               "latency_ms_p50": list(p99 / 1.3 * rng.normal(1, 0.03, 10)),
               "latency_ms_p99": list(p99 * rng.normal(1, 0.05, 10))}
    base = {"throughput": list(throughput * 1.25 * rng.normal(1, 0.03, 10)),
            "latency_ms_p50": list(p99 / 1.3 / 1.25 * rng.normal(1, 0.03, 10)),
            "latency_ms_p99": list(p99 / 1.25 * rng.normal(1, 0.05, 10))}
    percent = [*range(0, 99), 99.0, 99.5, 99.9, 100.0]
    sketch = {"percent": [float(p) for p in percent],
              "ms": [float(p99 / 1.3 * (0.9 + 0.2 * (p / 100) ** 8)) for p in percent]}
    gate = {m: {"now": float(np.median(windows[m])), "baseline": float(np.median(base[m])),
                "delta": float(np.median(windows[m]) / np.median(base[m]) - 1),
                "verdict": verdict} for m in windows}
    result: dict[str, Any] = {
        "test": test, "model_name": "MLP", "batch_size": batch, "n_models": n,
        "workers_per_model": 1, "pipeline_size": 1, "status": "ok", "verdict": verdict,
        "throughput_avg": throughput, "latency_ms_p50": p99 / 1.3, "latency_ms_p99": p99,
        "windows": windows, "baseline_windows": base, "latency_sketch": sketch, "gate": gate,
        "baseline": {"latency_ms_p50": p99 / 1.3 / 1.25, "latency_ms_p99": p99 / 1.25},
    }
    if paired:
        result["paired"] = {"delta": {"throughput": -0.08, "latency_ms_p99": 0.05},
                            "interval": {"throughput": [-0.12, -0.04],
                                         "latency_ms_p99": [-0.01, 0.11]},
                            "rounds": 10}
    return result


REPORTS = [
    report("test_perf.py::test_mlp", 1, 1, 400.0, "REGRESSED", 1, paired=True),
    report("test_perf.py::test_mlp", 1, 2, 780.0, "PASS", 2, paired=True),
    report("test_perf.py::test_mlp", 8, 1, 1900.0, "PASS", 3),
    report("test_perf.py::test_mlp", 8, 2, 3500.0, "IMPROVED", 4),
    report("test_perf.py::test_resnet", 4, 1, 6.0, "NEW", 5),
    {"test": "test_perf.py::test_resnet", "batch_size": 4, "n_models": 2,
     "workers_per_model": 1, "pipeline_size": 1, "status": "error", "verdict": "ERROR",
     "error": "copy 1 died while measuring (killed by signal 9)"},
]


def test_page_is_self_contained_with_every_figure(tmp_path: Path) -> None:
    page = render(REPORTS, ["neuronperf: a note"], "perf")
    assert "<script" not in page and not re.search(r"(src|href)=['\"]https?:", page)
    # per test: across configurations (+ paired for test_mlp); per ok configuration: one
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(images) == 2 + 1 + 5
    assert all(base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n" for data in images)
    assert "copy 1 died while measuring" in page and "a note" in page


def test_browser_renders_the_report(tmp_path: Path) -> None:
    page = Path(write_html(REPORTS, tmp_path / "report.html", ["neuronperf: a note"]))
    shot = tmp_path / "shot.png"
    done = chromium(page, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,2000")
    assert shot.exists(), done.stderr[-2000:]
    from PIL import Image

    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 2000)
    colours = image.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 500  # figures, badges and text: not a blank or an error page
    red = sum(n for n, (r, g, b) in colours if r > 150 and g < 80 and b < 80)
    assert red > 200  # the REGRESSED badge and this run's series are drawn
    assert shot.stat().st_size > 50_000
    dom = chromium(page, tmp_path / "profile", "--dump-dom").stdout
    assert "test_perf.py::test_mlp" in dom and "test_perf.py::test_resnet" in dom
    assert "paired: head vs base" in dom and dom.count("<img") == 8


def test_pareto_front_keeps_points_no_other_beats() -> None:
    points = [(1.0, 100.0), (2.0, 90.0), (2.0, 300.0), (3.0, 250.0), (5.0, 400.0)]
    assert pareto_front(points) == [(1.0, 100.0), (2.0, 300.0), (5.0, 400.0)]

