"""``pytest-neuronperf`` (also ``python -m pytest_neuronperf``): gate two report files offline,
show one, or say which machine this is.

    pytest-neuronperf compare OLD.json NEW.json [--tolerance SPEC] [--html PATH] [--strict]
    pytest-neuronperf show FILE [--html PATH]
    pytest-neuronperf machine [--baseline PATH] [--device NAME]
    pytest-neuronperf history URL [--html PATH] [--since WHEN] [--test TEXT] [--branch NAME]
                                  [--import PATH ...]

``compare`` judges every configuration of NEW against the same test and configuration in OLD
with the plugin's own gate (``gating.verdicts.gate_report``, then ``plugin.outcome.decide``), prints
the summary table and each failing configuration's evidence, and exits

- 0: nothing failed (PASS, IMPROVED; NEW and INCONCLUSIVE unless ``--strict``);
- 1: a configuration failed (REGRESSED or ERROR; NEW and INCONCLUSIVE too with ``--strict``;
  report files carry no budgets);
- 2: bad input or nothing comparable, with one sentence on stderr naming the file: a file that
  is missing, not UTF-8, not JSON (or nested too deep), not a report file, a report whose
  metrics or windows are not numbers or that carries no gated metric at all ("lost every
  metric"), a new file with no reports, or two files with no configuration in common (nothing
  was compared).

``history`` prints the trend table of a history store (``--neuronperf-history``: a SQLite file
or a postgresql:// URL) with its change points, writes the trend page with ``--html``, and
first imports earlier report or baseline files (a file or a folder) with ``--import``.

``machine`` prints this machine's id (what a baseline file is keyed by) and, with ``--baseline``,
whether that file has results for it: exit 0 if it has, 1 if not (every configuration would be
NEW), 2 on a file it cannot read. ``pytest_neuronperf_fingerprint`` hooks of a conftest are not
applied here; a project that adds fingerprint fields gets another id under pytest.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_neuronperf.devices import get_backend
from pytest_neuronperf.gating import baseline as baseline_file
from pytest_neuronperf.gating.machine import describe, identify, mismatch_text
from pytest_neuronperf.gating.verdicts import entry_from_report, gate_report, parse_tolerance
from pytest_neuronperf.logs import printable
from pytest_neuronperf.metrics import METRICS
from pytest_neuronperf.plugin.options import RunOptions
from pytest_neuronperf.plugin.outcome import decide, failure_message
from pytest_neuronperf.plugin.session import duration_notes
from pytest_neuronperf.reporting.files import get_reports
from pytest_neuronperf.reporting.html import write_html
from pytest_neuronperf.reporting.tables import format_paired_summary, format_summary
from pytest_neuronperf.reports import Report, config_key, config_label

EXIT_OK, EXIT_REGRESSED, EXIT_BAD_INPUT = 0, 1, 2


class BadInput(Exception):
    """Input the command cannot use; its message is the one sentence shown."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "compare":
            return compare(args.old, args.new, args.tolerance, args.html, args.strict)
        if args.command == "machine":
            return machine(args.baseline, args.device)
        if args.command == "history":
            return history(args)
        return show(args.file, args.html)
    except BadInput as exc:
        print(f"pytest-neuronperf {args.command}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser (``compare`` and ``show``)."""
    parser = argparse.ArgumentParser(
        prog="pytest-neuronperf",
        description="Gate or show pytest-neuronperf report files (--neuronperf-json, "
                    "write_json).")
    commands = parser.add_subparsers(dest="command", required=True)
    comparing = commands.add_parser(
        "compare", help="judge NEW against OLD with the plugin's gate; exit 1 on a regression")
    comparing.add_argument("old", type=Path, help="the reference report file (the baseline)")
    comparing.add_argument("new", type=Path, help="the report file to judge")
    comparing.add_argument("--tolerance", default=None, metavar="SPEC",
                           help="relative tolerances, e.g. 'p99:10%%,throughput:5%%' "
                                "(default: the plugin's)")
    comparing.add_argument("--html", type=Path, default=None, metavar="PATH",
                           help="also write the HTML report of the comparison")
    comparing.add_argument("--strict", action="store_true",
                           help="NEW and INCONCLUSIVE configurations fail too")
    showing = commands.add_parser("show", help="print a report file's summary table")
    showing.add_argument("file", type=Path)
    showing.add_argument("--html", type=Path, default=None, metavar="PATH",
                         help="also write it as an HTML report")
    machine_id = commands.add_parser(
        "machine", help="this machine's id, which baseline files are keyed by; with --baseline, "
                        "whether the file has results for it (exit 1 if not)")
    machine_id.add_argument("--baseline", type=Path, default=None, metavar="PATH",
                            help="a baseline file to look this machine up in")
    machine_id.add_argument("--device", default="auto", metavar="NAME",
                            help="the device backend, as --neuronperf-device (default: auto)")
    tracing = commands.add_parser(
        "history", help="the trend table and change points of a history store")
    tracing.add_argument("store", help="a SQLite file or a postgresql:// URL "
                                       "(--neuronperf-history)")
    tracing.add_argument("--html", type=Path, default=None, metavar="PATH",
                         help="also write the trend page (one self-contained HTML file)")
    tracing.add_argument("--since", default=None, metavar="WHEN",
                         help="only runs since this date (2024-06-01) or this many days (30d)")
    tracing.add_argument("--test", default=None, metavar="TEXT",
                         help="only tests whose node id contains TEXT")
    tracing.add_argument("--branch", default=None, metavar="NAME", help="only runs of a branch")
    tracing.add_argument("--import", dest="imports", type=Path, action="append", default=[],
                         metavar="PATH", help="first add the runs of earlier report or "
                         "baseline files (a file or a folder of them; repeatable)")
    return parser


def read(path: Path) -> list[Report]:
    """The reports of a file, or BadInput naming it."""
    if not path.is_file():
        raise BadInput(f"{path} does not exist or is not a file")
    try:
        reports = get_reports(path)
    except (OSError, ValueError) as exc:
        raise BadInput(str(exc)) from None
    for position, report in enumerate(reports):
        if not isinstance(report, dict):
            raise BadInput(f"{path}: report {position} is not an object")
        if report.get("status", "ok") == "ok":
            missing = [k for k in ("batch_size", "n_models", "workers_per_model",
                                   "pipeline_size") if k not in report]
            if missing:
                raise BadInput(f"{path}: report {position} has no {', '.join(missing)}; it is "
                               f"not a pytest-neuronperf report")
            check_figures(path, position, report)
    return reports


def is_number(value: Any) -> bool:
    """True for a real number (a JSON int or float, not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_figures(path: Path, position: int, report: Mapping[str, Any]) -> None:
    """A measured report's gated metrics and windows are numbers (or null), and it has at
    least one gated metric; else BadInput naming the file, report and key."""
    where = f"{path}: report {position} ({report.get('test') or '?'} {config_label(report)})"
    present = [m.report_key for m in METRICS.values() if report.get(m.report_key) is not None]
    if not present:
        raise BadInput(f"{where} is measured (status ok) but carries none of the gated metrics "
                       f"({', '.join(m.report_key for m in METRICS.values())}): nothing to "
                       f"compare")
    for key in present:
        if not is_number(report[key]):
            raise BadInput(f"{where}: {key} is {report[key]!r}, not a number")
    windows = report.get("windows")
    if windows is None:
        return
    if not isinstance(windows, dict):
        raise BadInput(f"{where}: windows is a {type(windows).__name__}, not an object of "
                       f"per-window series")
    for name, series in windows.items():
        if not isinstance(series, list) or not all(v is None or is_number(v) for v in series):
            raise BadInput(f"{where}: windows[{name!r}] is not a list of numbers")


def identity(report: Mapping[str, Any]) -> tuple[str, str]:
    """(test, configuration key) that matches a report across files."""
    return (str(report.get("test") or report.get("model_name") or "?"), config_key(report))


def compare(old_path: Path, new_path: Path, tolerance: str | None, html: Path | None,
            strict: bool) -> int:
    """``compare``: the plugin's verdict for every configuration of NEW against OLD."""
    try:
        tolerances = parse_tolerance(tolerance) if tolerance else {}
    except ValueError as exc:
        raise BadInput(f"--tolerance: {exc}") from None
    old, new = read(old_path), read(new_path)
    reference = {identity(r): r for r in old if r.get("status", "ok") == "ok"}
    if not new:
        raise BadInput(f"{new_path} has no reports, so nothing was compared")
    if not any(identity(r) in reference for r in new):
        raise BadInput(f"no configuration of {new_path} is measured in {old_path} (other tests "
                       f"or configurations, or every old one failed), so nothing was compared: "
                       f"compare reports of the same tests")
    options = RunOptions(tolerance=tolerances, strict=strict)
    judged, outcomes = [], []
    for report in new:
        report = report.copy()
        base = reference.get(identity(report))
        entry = entry_from_report(base) if base is not None else None
        judgement = gate_report(report, entry, tolerances, {}, strict)
        outcome = decide(report, judgement, None, options)
        judged.append(report)
        outcomes.append((identity(report)[0], outcome))

    notes = [*unmatched_notes(old, new), *duration_notes(judged)]
    print_summary(judged, notes)
    if html is not None:
        write_page(judged, html, notes, f"{new_path.name} compared with {old_path.name}")
    if any(outcome.failing for _, outcome in outcomes):
        print()
        print(failure_message(outcomes))
        return EXIT_REGRESSED
    return EXIT_OK


def unmatched_notes(old: Sequence[Mapping[str, Any]],
                    new: Sequence[Mapping[str, Any]]) -> list[str]:
    """Configurations of OLD that NEW does not have."""
    measured = {identity(r) for r in new}
    gone = [f"{test} {config_label(r)}" for r in old
            if (test := identity(r)[0]) and identity(r) not in measured]
    if not gone:
        return []
    return [f"{len(gone)} configuration(s) of the old file are not in the new one: "
            + "; ".join(gone)]


def show(path: Path, html: Path | None) -> int:
    """``show``: a report file's summary table (the verdicts it was written with)."""
    reports = read(path)
    print_summary(reports, [])
    if html is not None:
        write_page(reports, html, [], path.name)
    return EXIT_OK


def since_time(text: str | None) -> float | None:
    """``--since``: ``2024-06-01`` (local midnight) or ``30d``, as a time stamp."""
    if text is None:
        return None
    if text.endswith("d") and text[:-1].isdigit():
        return time.time() - 86400 * int(text[:-1])
    try:
        return time.mktime(time.strptime(text, "%Y-%m-%d"))
    except ValueError:
        raise BadInput(f"--since {text!r}: give a date (2024-06-01) or days (30d)") from None


def history(args: argparse.Namespace) -> int:
    """``history``: import, then the trend table (and page) of a history store."""
    from pytest_neuronperf.history.importing import ImportRefused, import_path
    from pytest_neuronperf.history.store import HistoryError, Store
    from pytest_neuronperf.history.trend import page_title, table_lines, trends

    since = since_time(args.since)
    try:
        with Store(args.store) as store:
            for source in args.imports:
                print(import_path(store, source).text(source))
            runs = store.runs(test=args.test, branch=args.branch, since=since)
            name = store.name
    except (HistoryError, ImportRefused) as exc:
        raise BadInput(str(exc)) from None
    found = trends(runs)
    for line in table_lines(found, runs):
        print(line)
    if args.html is not None:
        if importlib.util.find_spec("matplotlib") is None:
            raise BadInput("--html needs matplotlib: pip install 'pytest-neuronperf[html]'")
        from pytest_neuronperf.history.trend import write_page

        try:
            print(f"page: {write_page(found, runs, args.html, page_title(name))}")
        except OSError as exc:
            raise BadInput(f"cannot write {args.html}: {exc}") from None
    return EXIT_OK


def print_summary(reports: Sequence[Mapping[str, Any]], notes: list[str]) -> None:
    """The plugin's summary table (and paired section), verdict counts and notes."""
    for line in [*format_summary(reports), *format_paired_summary(reports)]:
        print(line)
    counts: dict[str, int] = {}
    for report in reports:
        verdict = str(report.get("verdict", report.get("status", "?")))
        counts[verdict] = counts.get(verdict, 0) + 1
    print(", ".join(f"{n} {verdict}" for verdict, n in sorted(counts.items())) or "no reports")
    for note in notes:
        print(note)


def write_page(reports: Sequence[Mapping[str, Any]], path: Path, notes: list[str],
               title: str) -> None:
    """The HTML report, or BadInput when it cannot be written."""
    if importlib.util.find_spec("matplotlib") is None:
        raise BadInput("--html needs matplotlib: pip install 'pytest-neuronperf[html]'")

    try:
        print(f"report: {write_html(reports, path, notes, title)}")
    except OSError as exc:
        raise BadInput(f"cannot write {path}: {exc}") from None


def machine(baseline_path: Path | None, device: str) -> int:
    """``machine``: this machine's id, and whether ``baseline_path`` has results for it."""
    try:
        backend = get_backend(device)
    except ValueError as exc:
        raise BadInput(f"--device: {exc}") from None
    machine_id, fp = identify(backend)
    print(f"machine {machine_id} ({describe(fp)})")
    if baseline_path is None:
        return EXIT_OK
    try:
        stored = baseline_file.load_baseline(baseline_path)
    except baseline_file.BaselineError as exc:
        raise BadInput(printable(str(exc))) from None
    if stored is None:
        print(f"baseline {baseline_path} does not exist")
        return EXIT_REGRESSED
    if not stored.has_machine(machine_id):
        print(printable(mismatch_text(baseline_path, machine_id, stored.machines())))
        return EXIT_REGRESSED
    print(f"baseline {baseline_path} has results for this machine")
    return EXIT_OK
