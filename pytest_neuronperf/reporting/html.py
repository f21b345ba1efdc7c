"""Reports as one self-contained HTML page: verdict tables and matplotlib figures embedded as
base64 PNG, so the file opens offline and can be attached to a CI run.

Per test: the verdict table (the gate's figures, as in the terminal summary); throughput vs
batch size and throughput vs p99 across its configurations (with the Pareto front); paired
deltas with their intervals when the reports carry ``paired``; then per configuration the
latency CDF (from the report's ``latency_sketch``) and the per-window throughput and p99 of this
run against the baseline's windows (generate scenario: TTFT and TPOT CDFs and output
tokens/s per window), and its profile when it has one (``profiling.html``).
matplotlib is imported only when a page is written.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_neuronperf.metrics import METRICS
from pytest_neuronperf.profiling.html import profile_section
from pytest_neuronperf.reporting.files import atomic_write
from pytest_neuronperf.reporting.tables import report_list, summary_rows
from pytest_neuronperf.reports import config_label

VERDICT_COLOURS = {
    "PASS": "#2e7d32", "IMPROVED": "#1565c0", "REGRESSED": "#c62828", "OVER_BUDGET": "#c62828",
    "ERROR": "#6a1b9a", "NEW": "#616161", "INCONCLUSIVE": "#ef6c00",
}
STYLE = """
body { font-family: sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ccc; }
h3 { font-size: 15px; margin-bottom: 4px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; } td.label { text-align: left; font-family: monospace; }
.verdict { color: #fff; font-weight: bold; padding: 1px 6px; border-radius: 3px; }
.note { color: #555; font-size: 13px; } img { max-width: 100%; }
"""


def write_html(
    reports: Sequence[Mapping[str, Any]],
    filename: str | os.PathLike[str],
    notes: Sequence[str] = (),
    title: str = "pytest-neuronperf report",
) -> str:
    """Write the page for ``reports`` (with the session's ``notes``); returns the path."""
    path = Path(filename)
    atomic_write(path, render(report_list(reports), notes, title))
    return str(path)


def render(reports: Sequence[Mapping[str, Any]], notes: Sequence[str], title: str) -> str:
    """The page as a string."""
    import matplotlib

    matplotlib.use("Agg")
    tests: dict[str, list[Mapping[str, Any]]] = {}
    for report in reports:
        tests.setdefault(str(report.get("test", report.get("model_name", "?"))), []).append(report)
    counts: dict[str, int] = {}
    for report in reports:
        verdict = str(report.get("verdict", report.get("status", "?")))
        counts[verdict] = counts.get(verdict, 0) + 1
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p class='note'>{time.strftime('%Y-%m-%d %H:%M:%S')}: {len(reports)} "
        f"configuration(s) in {len(tests)} test(s): "
        + ", ".join(f"{n} {_badge(v)}" for v, n in sorted(counts.items())) + "</p>",
    ]
    parts += [f"<p class='note'>{_e(note)}</p>" for note in notes]
    for test, group in tests.items():
        parts.append(test_section(test, group))
    parts.append("</body></html>")
    return "\n".join(parts)


def test_section(test: str, reports: Sequence[Mapping[str, Any]]) -> str:
    """One test: its table, its across-configuration figures, then each configuration."""
    parts = [f"<h2>{_e(test)}</h2>", verdict_table(reports)]
    ok = [r for r in reports if r.get("status", "ok") == "ok"]
    if ok:
        parts.append(_img(across_configurations(ok), f"{test}: across configurations"))
    paired = [r for r in reports if isinstance(r.get("paired"), dict)]
    if paired:
        figure = paired_figure(paired)
        if figure is not None:
            parts += ["<h3>paired comparison: head vs base</h3>", _img(figure, "paired deltas")]
    for report in reports:
        label = config_label(report)
        parts.append(f"<h3>{_e(label)} {_badge(str(report.get('verdict', '')))}</h3>")
        if report.get("status", "ok") != "ok":
            parts.append(f"<pre>{_e(str(report.get('error') or 'no reason given'))}</pre>")
            continue
        figure = (generate_figure(report) if report.get("scenario") == "generate"
                  else configuration_figure(report))
        parts.append(_img(figure, f"{test} {label}"))
        parts.append(profile_section(report))
    return "\n".join(parts)


def verdict_table(reports: Sequence[Mapping[str, Any]]) -> str:
    """The gate's figures per configuration (the terminal summary's columns) as an HTML table."""
    header, rows = summary_rows(reports)
    cells = ["<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>"]
    for row in rows:
        if len(row) != len(header):
            continue  # the test heading: the section title says it
        tds = [f"<td class='label'>{_e(row[0].strip())}</td>"]
        tds += [f"<td>{_e(c)}</td>" for c in row[1:-1]]
        tds.append(f"<td>{_badge(row[-1])}</td>")
        cells.append("<tr>" + "".join(tds) + "</tr>")
    cells.append("</table>")
    return "\n".join(cells)


def configuration_figure(report: Mapping[str, Any]) -> Any:
    """Latency CDF, and throughput and p99 per window against the baseline's windows."""
    import matplotlib.pyplot as plt

    figure, (cdf, thr, p99) = plt.subplots(1, 3, figsize=(13, 3.2), layout="constrained")
    sketch = report.get("latency_sketch") or {}
    ms, percent = _numbers(sketch.get("ms")), _numbers(sketch.get("percent"))
    if ms and len(ms) == len(percent):
        cdf.plot(ms, [p / 100 for p in percent], color="#1565c0", label="this run")
    baseline = report.get("baseline") or {}
    for key, style in (("latency_ms_p50", "--"), ("latency_ms_p99", ":")):
        value = baseline.get(key)
        if isinstance(value, int | float) and math.isfinite(value):
            cdf.axvline(value, color="#888", linestyle=style,
                        label=f"baseline {key.removeprefix('latency_ms_')}")
    cdf.set(title="latency distribution (CDF)", xlabel="latency (ms)", ylabel="fraction of calls")
    if ms and min(ms) > 0 and max(ms) / min(ms) > 20:
        cdf.set_xscale("log")
    cdf.legend(fontsize=7, loc="lower right")
    windows = report.get("windows") or {}
    base_windows = report.get("baseline_windows") or {}
    for axes, metric in ((thr, "throughput"), (p99, "latency_ms_p99")):
        now, base = _numbers(windows.get(metric)), _numbers(base_windows.get(metric))
        if base:
            axes.plot(range(1, len(base) + 1), base, marker=".", color="#888", label="baseline")
        if now:
            axes.plot(range(1, len(now) + 1), now, marker=".", color="#c62828", label="this run")
        axes.set(title=f"{METRICS[metric].label} per window", xlabel="window",
                 ylabel=METRICS[metric].label)
        axes.set_ylim(bottom=0)
        axes.legend(fontsize=7)
    return figure


def generate_figure(report: Mapping[str, Any]) -> Any:
    """The generate scenario's: TTFT and TPOT distributions (CDFs, the baseline's p99 marked)
    and output tokens/s per window against the baseline's windows."""
    import matplotlib.pyplot as plt

    figure, (ttft, tpot, tokens) = plt.subplots(1, 3, figsize=(13, 3.2), layout="constrained")
    baseline = report.get("baseline") or {}
    for axes, name, title in ((ttft, "ttft", "time to first token"),
                              (tpot, "tpot", "time per output token")):
        sketch = report.get(f"{name}_sketch") or {}
        ms, percent = _numbers(sketch.get("ms")), _numbers(sketch.get("percent"))
        if ms and len(ms) == len(percent):
            axes.plot(ms, [p / 100 for p in percent], color="#1565c0", label="this run")
        value = _number(baseline.get(f"{name}_ms_p99"))
        if value is not None:
            axes.axvline(value, color="#888", linestyle=":", label="baseline p99")
        axes.set(title=f"{title} (CDF)", xlabel=f"{name.upper()} (ms)",
                 ylabel="fraction of requests")
        axes.legend(fontsize=7, loc="lower right")
    now = _numbers((report.get("windows") or {}).get("output_tokens_per_s"))
    base = _numbers((report.get("baseline_windows") or {}).get("output_tokens_per_s"))
    if base:
        tokens.plot(range(1, len(base) + 1), base, marker=".", color="#888", label="baseline")
    if now:
        tokens.plot(range(1, len(now) + 1), now, marker=".", color="#c62828", label="this run")
    tokens.set(title="output tokens/s per window", xlabel="window", ylabel="tokens/s")
    tokens.set_ylim(bottom=0)
    tokens.legend(fontsize=7)
    return figure


def across_configurations(reports: Sequence[Mapping[str, Any]]) -> Any:
    """Throughput vs batch size (a line per n_models x workers) and throughput vs p99 with the
    Pareto front (no other configuration has both more throughput and a lower p99)."""
    import matplotlib.pyplot as plt

    figure, (by_batch, pareto) = plt.subplots(1, 2, figsize=(13, 3.6), layout="constrained")
    series: dict[str, list[tuple[int, float]]] = {}
    for r in reports:
        name = f"n={r.get('n_models')} w={r.get('workers_per_model')} p={r.get('pipeline_size')}"
        value = _number(r.get("throughput_avg"))
        if value is not None and isinstance(r.get("batch_size"), int):
            series.setdefault(name, []).append((r["batch_size"], value))
    for name, points in sorted(series.items()):
        points.sort()
        by_batch.plot([b for b, _ in points], [t for _, t in points], marker="o", label=name)
    by_batch.set_xticks(sorted({b for points in series.values() for b, _ in points}))
    by_batch.set(title="throughput vs batch size", xlabel="batch size",
                 ylabel="throughput (samples/s)")
    by_batch.set_ylim(bottom=0)
    by_batch.legend(fontsize=7)
    labelled: list[tuple[float, float, str]] = []
    for r in reports:
        p99, throughput = _number(r.get("latency_ms_p99")), _number(r.get("throughput_avg"))
        if p99 is not None and throughput is not None:
            labelled.append((p99, throughput, config_label(r)))
    front = pareto_front([(p, t) for p, t, _ in labelled])
    pareto.scatter([p for p, _, _ in labelled], [t for _, t, _ in labelled], color="#1565c0",
                   zorder=3)
    for p, t, label in labelled:
        pareto.annotate(label, (p, t), fontsize=7, xytext=(4, 4), textcoords="offset points")
    if front:
        pareto.step([p for p, _ in front], [t for _, t in front], where="post", color="#ef6c00",
                    label="Pareto front")
        pareto.legend(fontsize=7)
    pareto.set(title="throughput vs p99 latency", xlabel="p99 latency (ms)",
               ylabel="throughput (samples/s)")
    return figure


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (p99, throughput) points no other point beats on both (lower p99, more throughput),
    by increasing p99."""
    front: list[tuple[float, float]] = []
    for p99, throughput in sorted(points, key=lambda x: (x[0], -x[1])):
        if not front or throughput > front[-1][1]:
            front.append((p99, throughput))
    return front


def paired_figure(reports: Sequence[Mapping[str, Any]]) -> Any | None:
    """Each configuration's paired delta per metric with its interval (a forest plot)."""
    import matplotlib.pyplot as plt

    rows = []
    for report in reports:
        paired = report["paired"]
        deltas, intervals = paired.get("delta") or {}, paired.get("ci") or {}
        if not isinstance(deltas, dict):
            continue
        for metric, delta in deltas.items():
            value = _number(delta)
            if value is None:
                continue
            low, high = paired_interval(value, intervals.get(metric) if isinstance(
                intervals, dict) else None)
            rows.append((f"{config_label(report)} {metric}", value, low, high))
    if not rows:
        return None
    figure, axes = plt.subplots(figsize=(9, 0.35 * len(rows) + 1.2), layout="constrained")
    for y, (_, value, low, high) in enumerate(rows):
        if low is not None and high is not None:
            axes.plot([low * 100, high * 100], [y, y], color="#1565c0")
        axes.plot([value * 100], [y], "o", color="#c62828")
    axes.axvline(0, color="#888", linewidth=1)
    axes.set_yticks(range(len(rows)), [name for name, *_ in rows], fontsize=8)
    axes.invert_yaxis()
    axes.set(xlabel="change of head vs base (%) with its interval", title="paired deltas")
    return figure


def paired_interval(delta: float, interval: Any) -> tuple[float | None, float | None]:
    """The interval of a paired delta as relative changes; an interval given as a ratio (around
    1, as head/base) is shifted to a change."""
    if not isinstance(interval, list | tuple) or len(interval) != 2:
        return None, None
    low, high = _number(interval[0]), _number(interval[1])
    if low is None or high is None:
        return None, None
    if not low <= delta <= high and low - 1 <= delta <= high - 1:
        return low - 1, high - 1
    return low, high


def _img(figure: Any, alt: str) -> str:
    """A figure as an inline PNG (closed afterwards)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    plt.close(figure)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<img alt='{_e(alt)}' src='data:image/png;base64,{data}'>"


def _badge(verdict: str) -> str:
    colour = VERDICT_COLOURS.get(verdict, "#455a64")
    return f"<span class='verdict' style='background:{colour}'>{_e(verdict)}</span>"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _numbers(values: Any) -> list[float]:
    """The finite numbers of a list (a missing window is left out)."""
    if not isinstance(values, list):
        return []
    return [v for v in (_number(x) for x in values) if v is not None]


def _e(text: str) -> str:
    return html.escape(text, quote=True)
