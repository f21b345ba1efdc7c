"""Reports as one self-contained HTML page: verdict tables and matplotlib figures embedded as
base64 PNG, so the file opens offline and can be attached to a CI run.

Per test: the verdict table (the figures the verdicts used, as in the terminal summary);
throughput vs batch size and throughput vs p99 across its configurations (with the Pareto
front), from the same figures; with paired reports, the paired table (head, base, change and
interval per metric, as in the terminal's paired section) and a forest plot of the paired
changes with their intervals and the change of every round; then per configuration the latency
CDF of this run (the head) and of the base side (from each side's ``latency_sketch``; the
stored baseline's p50 and p99 as lines), throughput and p99 per window (per slice in a paired
run) against the baseline's windows and the base side's slices (generate scenario: TTFT and
TPOT CDFs and output tokens/s per window), and its profile when it has one
(``profiling.html``). Numbers are written by ``formatting``, the rule every table uses.
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

from pytest_neuronperf.formatting import finite
from pytest_neuronperf.gating import paired as paired_gate
from pytest_neuronperf.metrics import METRICS
from pytest_neuronperf.profiling.html import profile_section
from pytest_neuronperf.reporting.files import atomic_write
from pytest_neuronperf.reporting.tables import (
    PAIRED_HEADER,
    paired_rows,
    paired_title,
    report_list,
    summary_rows,
    verdict_figures,
)
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
        parts += [f"<h3>{_e(paired_title(paired))}</h3>",
                  html_table(PAIRED_HEADER, paired_rows(paired), left=2)]
        figure = paired_figure(paired)
        if figure is not None:
            parts.append(_img(figure, "paired changes with their intervals"))
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
    """The figures the verdicts used per configuration (the terminal summary) as a table."""
    header, rows = summary_rows(reports)
    return html_table(header, rows)


def html_table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    """A table of text cells (the terminal's): the first ``left`` columns as labels, the last
    (a verdict) as a badge; a row shorter than the header (a test's heading) is left out, the
    section title says it, unless it is a note, which spans the middle columns."""
    cells = ["<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>"]
    for row in rows:
        if len(row) == 1:
            continue
        if len(row) != len(header):  # a note: label, text, verdict
            span = len(header) - 2
            cells.append(f"<tr><td class='label'>{_e(row[0].strip())}</td>"
                         f"<td class='label' colspan='{span}'>{_e(row[1])}</td>"
                         f"<td>{_badge(row[-1])}</td></tr>")
            continue
        tds = [f"<td class='label'>{_e(c.strip())}</td>" for c in row[:left]]
        tds += [f"<td>{_e(c)}</td>" for c in row[left:-1]]
        tds.append(f"<td>{_badge(row[-1]) if row[-1] else ''}</td>")
        cells.append("<tr>" + "".join(tds) + "</tr>")
    cells.append("</table>")
    return "\n".join(cells)


def configuration_figure(report: Mapping[str, Any]) -> Any:
    """Latency CDF of this run and of the base side, and throughput and p99 per window against
    the baseline's windows and the base side's slices."""
    import matplotlib.pyplot as plt

    figure, (cdf, thr, p99) = plt.subplots(1, 3, figsize=(13, 3.2), layout="constrained")
    part = report.get("paired")
    paired: Mapping[str, Any] = part if isinstance(part, Mapping) else {}
    head_name = "head" if paired else "this run"
    sketches = [(head_name, report.get("latency_sketch"), "#c62828"),
                ("base", (paired.get("base") or {}).get("latency_sketch"), "#1565c0")]
    drawn: list[float] = []
    for name, sketch, colour in sketches:
        ms, percent = _numbers((sketch or {}).get("ms")), _numbers((sketch or {}).get("percent"))
        if ms and len(ms) == len(percent):
            cdf.plot(ms, [p / 100 for p in percent], color=colour, label=name)
            drawn += ms
    baseline = report.get("baseline") or {}
    for key, style in (("latency_ms_p50", "--"), ("latency_ms_p99", ":")):
        value = finite(baseline.get(key))
        if value is not None:
            cdf.axvline(value, color="#888", linestyle=style,
                        label=f"baseline {key.removeprefix('latency_ms_')}")
    cdf.set(title="latency distribution (CDF)", xlabel="latency (ms)", ylabel="fraction of calls")
    if drawn and min(drawn) > 0 and max(drawn) / min(drawn) > 20:
        cdf.set_xscale("log")
    _legend(cdf, loc="lower right")
    windows = report.get("windows") or {}
    base_windows = report.get("baseline_windows") or {}
    base_slices = {metric: [v for launch in paired.get("launches") or []
                            for v in ((launch.get("values") or {}).get("base") or {}).get(metric)
                            or []]
                   for metric in ("throughput", "latency_ms_p99")}
    for axes, metric in ((thr, "throughput"), (p99, "latency_ms_p99")):
        series = [("baseline", base_windows.get(metric), "#888"),
                  ("base", base_slices.get(metric), "#1565c0"),
                  (head_name, windows.get(metric), "#c62828")]
        for name, values, colour in series:
            numbers = _numbers(values)
            if numbers:
                axes.plot(range(1, len(numbers) + 1), numbers, marker=".", color=colour,
                          label=name)
        unit = "slice" if paired else "window"
        axes.set(title=f"{METRICS[metric].label} per {unit}", xlabel=unit,
                 ylabel=METRICS[metric].label)
        axes.set_ylim(bottom=0)
        _legend(axes)
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
        value = finite(baseline.get(f"{name}_ms_p99"))
        if value is not None:
            axes.axvline(value, color="#888", linestyle=":", label="baseline p99")
        axes.set(title=f"{title} (CDF)", xlabel=f"{name.upper()} (ms)",
                 ylabel="fraction of requests")
        _legend(axes, "lower right")
    now = _numbers((report.get("windows") or {}).get("output_tokens_per_s"))
    base = _numbers((report.get("baseline_windows") or {}).get("output_tokens_per_s"))
    if base:
        tokens.plot(range(1, len(base) + 1), base, marker=".", color="#888", label="baseline")
    if now:
        tokens.plot(range(1, len(now) + 1), now, marker=".", color="#c62828", label="this run")
    tokens.set(title="output tokens/s per window", xlabel="window", ylabel="tokens/s")
    tokens.set_ylim(bottom=0)
    _legend(tokens)
    return figure


def _legend(axes: Any, loc: str = "best") -> None:
    """A legend when something labelled was drawn (none, and no warning, otherwise)."""
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=7, loc=loc)


def across_configurations(reports: Sequence[Mapping[str, Any]]) -> Any:
    """Throughput vs batch size (a line per n_models x workers) and throughput vs p99 with the
    Pareto front (no other configuration has both more throughput and a lower p99)."""
    import matplotlib.pyplot as plt

    figure, (by_batch, pareto) = plt.subplots(1, 2, figsize=(13, 3.6), layout="constrained")
    series: dict[str, list[tuple[int, float]]] = {}
    for r in reports:
        name = f"n={r.get('n_models')} w={r.get('workers_per_model')} p={r.get('pipeline_size')}"
        value = _figure(r, "throughput")
        if value is not None and isinstance(r.get("batch_size"), int):
            series.setdefault(name, []).append((r["batch_size"], value))
    for name, points in sorted(series.items()):
        points.sort()
        by_batch.plot([b for b, _ in points], [t for _, t in points], marker="o", label=name)
    by_batch.set_xticks(sorted({b for points in series.values() for b, _ in points}))
    by_batch.set(title="throughput vs batch size", xlabel="batch size",
                 ylabel="throughput (samples/s)")
    by_batch.set_ylim(bottom=0)
    _legend(by_batch)
    labelled: list[tuple[float, float, str]] = []
    for r in reports:
        p99, throughput = _figure(r, "latency_ms_p99"), _figure(r, "throughput")
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
        _legend(pareto)
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
    """A forest plot, one panel per metric (each with its own scale): per configuration the
    paired change (dot) with its interval (bar), and the change of every launch pair (ticks)."""
    import matplotlib.pyplot as plt

    panels: dict[str, list[tuple[str, float, float | None, float | None, list[float]]]] = {}
    for report in reports:
        paired = report["paired"]
        intervals = paired.get("interval") if isinstance(paired.get("interval"), dict) else {}
        for metric in METRICS:
            value = finite((paired.get("delta") or {}).get(metric))
            if value is None:
                continue
            low, high = intervals.get(metric) or (None, None)
            rounds = [math.expm1(r) for r in paired_gate.launch_values(paired, metric)
                      if math.isfinite(r)] if metric in paired_gate.PAIRED_TOLERANCE else []
            panels.setdefault(metric, []).append(
                (config_label(report), value, finite(low), finite(high), rounds))
    if not panels:
        return None
    labels = list(dict.fromkeys(label for rows in panels.values() for label, *_ in rows))
    figure, axes_list = plt.subplots(
        1, len(panels), figsize=(4.4 * len(panels) + 1.2, 0.45 * len(labels) + 1.5),
        layout="constrained", sharey=True, squeeze=False)
    for axes, (metric, rows) in zip(axes_list[0], panels.items(), strict=True):
        for label, value, low, high, rounds in rows:
            y = labels.index(label)
            if rounds:
                axes.plot([r * 100 for r in rounds], [y] * len(rounds), "|", color="#9e9e9e",
                          markersize=8, label="each launch pair")
            if low is not None and high is not None:
                axes.plot([low * 100, high * 100], [y, y], color="#1565c0", linewidth=3,
                          solid_capstyle="butt", label="95% interval")
            axes.plot([value * 100], [y], "o", color="#c62828", label="paired estimate")
        axes.axvline(0, color="#888", linewidth=1)
        axes.set(title=f"{METRICS[metric].label}: change of head vs base",
                 xlabel="change (%)")
    first = axes_list[0][0]
    first.set_yticks(range(len(labels)), labels, fontsize=8)
    first.set_ylim(len(labels) - 0.5, -0.5)
    handles, names = first.get_legend_handles_labels()
    unique = dict(zip(names, handles, strict=True))
    if unique:
        first.legend(unique.values(), unique.keys(), fontsize=7)
    return figure


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


def _figure(report: Mapping[str, Any], metric: str) -> float | None:
    """The figure the verdict used for ``metric`` (the table's), or None."""
    figures = verdict_figures(report, metric)
    return None if figures is None else figures.now


def _numbers(values: Any) -> list[float]:
    """The finite numbers of a list (a missing window is left out)."""
    if not isinstance(values, list):
        return []
    return [v for v in (finite(x) for x in values) if v is not None]


def _e(text: str) -> str:
    return html.escape(text, quote=True)
