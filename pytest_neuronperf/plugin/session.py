"""The plugin's per-run state (kept in ``config.stash``): options, the device and its cores,
the machine, the baseline; records and gates every benchmark; writes baseline, JSON and CSV
once, on the controller."""

from __future__ import annotations

import dataclasses
import functools
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest

from pytest_neuronperf.devices import DeviceBackend, format_cores, get_backend
from pytest_neuronperf.engine.interference import is_high
from pytest_neuronperf.gating import baseline as baseline_file
from pytest_neuronperf.gating import machine
from pytest_neuronperf.gating import paired as paired_gate
from pytest_neuronperf.gating.paired import PairedJudgement
from pytest_neuronperf.gating.verdicts import (
    Judgement,
    Verdict,
    entry_from_report,
    gate_report,
)
from pytest_neuronperf.history.runinfo import run_info
from pytest_neuronperf.logs import printable
from pytest_neuronperf.plugin.markers import PerfSettings
from pytest_neuronperf.plugin.options import RunOptions
from pytest_neuronperf.plugin.outcome import Outcome, decide, failure_message
from pytest_neuronperf.plugin.shares import CoreShare, this_host
from pytest_neuronperf.profiling import explain as profiling
from pytest_neuronperf.profiling.summary import stored
from pytest_neuronperf.reporting import files as reporting
from pytest_neuronperf.reporting.html import write_html
from pytest_neuronperf.reporting.markdown import append_step_summary
from pytest_neuronperf.reports import (
    Interference,
    Report,
    config_key,
    config_label,
    parse_config_key,
)

PROFILES_FOLDER = "neuronperf-profiles"
RESULTS_FORMAT_VERSION = 1
"""Version of the results a worker sends to the controller (``workeroutput``).

History: 1 -- first version: ``{"version", "results": [report, ...]}``; every report carries
``test``, ``verdict``, ``machine`` and ``fingerprint``.
"""


class PerfSession:
    """Everything the plugin knows during one pytest run (one per process)."""

    def __init__(
        self,
        options: RunOptions,
        devices: dict[str, DeviceBackend],
        adapters: dict[str, str],
        extra_fingerprint: dict[str, Any],
        share_for: Any,
        verdict_hook: Callable[..., Any] = lambda **_: None,
        host: Report | None = None,
        against: Any = None,
        rootdir: Path | None = None,
    ) -> None:
        self.options = options
        self.host = host or {}
        """Which host and xdist worker measure here (``{}`` outside xdist workers)."""
        self.devices = devices
        self.adapters = adapters
        self.extra_fingerprint = extra_fingerprint
        self._share_for = share_for
        self.results: list[Report] = []
        self.outcomes: dict[str, list[tuple[str, Outcome]]] = {}
        """Node id -> (result key, outcome) of every configuration it measured."""
        self._verdict_hook = verdict_hook
        self.interrupted: set[str] = set()
        """Node ids of tests interrupted (Ctrl-C, SIGTERM) while running: never saved."""
        self._backends: dict[str, DeviceBackend] = {}
        self._machines: dict[str, tuple[str, dict[str, Any]]] = {}
        self.baseline = self._load_baseline()
        self.against = against
        """The base tree of ``--neuronperf-against`` (``plugin.against.BaseTree``), or None."""
        self.rootdir = rootdir or Path.cwd()
        self._run_info: dict[str, Any] | None = None
        self.history_problem: str | None = None
        """Why the history store could not be used when the run started (shown, not fatal)."""
        self._history_runs: dict[str, list[Any]] = {}

    # -- set-up --------------------------------------------------------------------------------

    def _load_baseline(self) -> baseline_file.Baseline | None:
        if self.options.baseline is None:
            return None
        try:
            if self.options.save_baseline:  # refuse now, not after the whole run
                baseline_file.check_saveable(self.options.baseline)
            return baseline_file.load_baseline(self.options.baseline)
        except baseline_file.BaselineError as exc:
            raise pytest.UsageError(printable(str(exc))) from exc

    def run_info(self) -> dict[str, Any]:
        """This run for a history: commit, branch, dirty flag, time, host, package versions
        (taken once, when first asked: at the start of the run on the controller)."""
        if self._run_info is None:
            self._run_info = run_info(self.rootdir)
        return self._run_info

    def start_history(self) -> None:
        """On the controller: note the run's facts and check the history store now (created or
        upgraded when new or old); a store that cannot be used is said, not fatal: the run's
        reports are kept in a rescue file at the end."""
        if self.options.history is None and self.options.json_path is None:
            return
        self.run_info()
        if self.options.history is None:
            return
        from pytest_neuronperf.history.store import HistoryError, Store

        try:
            with Store(self.options.history) as store:
                store.ensure()
        except HistoryError as exc:
            self.history_problem = printable(str(exc))

    def history_runs(self, test: str) -> list[Any]:
        """The stored runs of ``test`` on this run's branch, in commit order (read once)."""
        if test not in self._history_runs:
            from pytest_neuronperf.history.store import Store

            assert self.options.history is not None
            with Store(self.options.history) as store:
                runs = store.runs(test=test, branch=self.run_info().get("branch"))
            self._history_runs[test] = [
                replace(run, results=[r for r in run.results if r.test == test]) for run in runs]
        return self._history_runs[test]

    def judge_history(self, report: Report, tolerance: dict[str, float]) -> Any:
        """The history gate's judgement of one gated report (None when the gate is off, the
        report failed, or the history cannot be read: then the report says why)."""
        if not self.options.history_gate or report.get("status") != "ok":
            return None
        from pytest_neuronperf.history.gate import judge_history
        from pytest_neuronperf.history.store import HistoryError

        try:
            stored = self.history_runs(str(report["test"]))
        except HistoryError as exc:
            report["history"] = {"verdict": None, "note": f"not judged: {exc}"}
            return None
        judgement = judge_history(stored, self.run_info(), report,
                                  {**self.options.tolerance, **tolerance})
        if judgement is not None:
            report["history"] = judgement.report_field()
        return judgement

    def backend(self, device: str) -> DeviceBackend:
        """The backend for a test's ``device`` (the command line's ``--neuronperf-device`` wins)."""
        name = self.options.device or device
        if name not in self._backends:
            self._backends[name] = get_backend(name, self.devices)
        return self._backends[name]

    def share(self, backend: DeviceBackend) -> CoreShare:
        """This process's cores of ``backend`` (a slice of them under xdist)."""
        share: CoreShare = self._share_for(backend.cores())
        return share

    def machine(self, backend: DeviceBackend) -> tuple[str, dict[str, Any]]:
        """(machine id, fingerprint) of this machine with ``backend`` as its device."""
        if backend.name not in self._machines:
            self._machines[backend.name] = machine.identify(backend, self.extra_fingerprint)
        return self._machines[backend.name]

    # -- recording and gating ------------------------------------------------------------------

    def gate(
        self,
        report: Report,
        test: str,
        backend: DeviceBackend,
        budgets: dict[str, float],
        tolerance: dict[str, float],
    ) -> Judgement:
        """Judge one report against the baseline and budgets; annotate the report."""
        machine_id, fp = self.machine(backend)
        entry = None
        if self.baseline is not None and report["status"] == "ok":
            entry = self.baseline.lookup(machine_id, test, config_key(report))
        report.update({"test": test, "machine": machine_id, "fingerprint": fp, **self.host})
        return gate_report(report, entry, {**self.options.tolerance, **tolerance}, budgets,
                           self.options.strict)

    def gate_paired(self, reports: Sequence[Report]) -> list[PairedJudgement | None]:
        """The paired verdicts of one call's reports, its configurations x metrics one family
        (None for a report without a paired part)."""
        return paired_gate.judge_family(reports, self.options.paired_tolerance)

    def settle(
        self,
        nodeid: str,
        key: str,
        reports: list[Report],
        judgements: list[Judgement],
        paired: list[PairedJudgement | None],
        tolerance: dict[str, float] | None = None,
    ) -> None:
        """Decide one benchmark call's outcomes from its judgements (``gate`` and
        ``gate_paired``; the verdict hook may override) and the history gate's (with the
        test's ``tolerance``): the merged verdict per report."""
        outcomes = self.outcomes.setdefault(nodeid, [])
        for report, judgement, paired_judgement in zip(reports, judgements, paired, strict=True):
            paired_gate.annotate(report, paired_judgement)
            history = self.judge_history(report, tolerance or {})
            override = self._verdict_hook(report=report, judgement=judgement)
            outcomes.append((key, decide(report, judgement, override, self.options,
                                         paired_judgement, history)))

    def explain(
        self,
        nodeid: str,
        key: str,
        reports: Sequence[Report],
        backend: DeviceBackend,
        settings: PerfSettings,
        run: Callable[[Report, float | None], dict[str, Any]],
    ) -> None:
        """Profile the configurations of one settled call that are REGRESSED or asked for
        (``profiling.explain``): each report gets ``profile``, and a failing outcome the lines
        saying what got slower. Verdicts are never touched."""
        outcomes = self.outcomes.get(nodeid, [])
        first = len(outcomes) - len(reports)
        for position, report in enumerate(reports):
            test, outcome = outcomes[first + position]
            outcomes[first + position] = (test, self.explain_one(report, outcome, key, backend,
                                                                  settings, run))

    def explain_one(
        self,
        report: Report,
        outcome: Outcome,
        key: str,
        backend: DeviceBackend,
        settings: PerfSettings,
        run: Callable[[Report, float | None], dict[str, Any]],
    ) -> Outcome:
        """One configuration of :meth:`explain`."""
        if report.get("status") != "ok" or not profiling.wanted(
                self.options.profile, settings.profile, outcome.verdict.value,
                self.options.save_baseline):
            return outcome
        paired = (report.get("paired") or {}).get("base_status") == "ok"
        budget_s, skip = profiling.budget(report, settings.timeout, 2 if paired else 1)
        if skip is not None:
            report["profile"] = profiling.skipped(skip)
        else:
            try:
                result = run(report, budget_s)
            except Exception as exc:  # noqa: BLE001 - a profile never takes the verdict down
                result = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
            report["profile"] = profiling.explanation(
                result, self.stored_profile(report, key, backend), paired_base_label(report))
        if not outcome.failing:
            return outcome
        details = "\n".join([outcome.details, *profiling.evidence(report["profile"])])
        return dataclasses.replace(outcome, details=details.strip("\n"))

    def profile_dir(self, rootdir: Path) -> Path:
        """Where profile traces go: a ``neuronperf-profiles`` folder beside the first report
        file this run writes (HTML, JSON, CSV), else in the rootdir's ``.neuronperf-cache``."""
        for path in (self.options.html_path, self.options.json_path, self.options.csv_path):
            if path is not None:
                return Path(path).absolute().parent / PROFILES_FOLDER
        return rootdir / ".neuronperf-cache" / "profiles"

    def stored_profile(self, report: Report, key: str, backend: DeviceBackend) -> Any:
        """The profile summary stored with this configuration's baseline entry, if any."""
        if self.baseline is None:
            return None
        machine_id, _ = self.machine(backend)
        entry = self.baseline.lookup(machine_id, key, config_key(report)) or {}
        return entry.get("profile")

    def record(self, reports: Sequence[Report]) -> None:
        """Keep measured reports for the run's outputs (whatever their verdicts)."""
        self.results.extend(reports)

    def failure(self, nodeid: str) -> str | None:
        """The message a test fails with, or None when none of its configurations fails
        (its outcomes are taken)."""
        outcomes = self.outcomes.pop(nodeid, [])
        if not any(outcome.failing for _, outcome in outcomes):
            return None
        return failure_message(outcomes)

    # -- xdist ---------------------------------------------------------------------------------

    def export(self) -> dict[str, Any]:
        """What a worker sends the controller."""
        return {"version": RESULTS_FORMAT_VERSION, "results": self.results}

    def merge(self, data: dict[str, Any] | None, node: str) -> None:
        """Take a worker's results (sent by :meth:`export`)."""
        if not data:
            return
        if data.get("version") != RESULTS_FORMAT_VERSION:
            raise RuntimeError(
                f"xdist worker {node} sent neuronperf results version {data.get('version')}, "
                f"expected {RESULTS_FORMAT_VERSION}: mixed pytest-neuronperf versions?"
            )
        self.results.extend(data["results"])

    # -- output --------------------------------------------------------------------------------

    def write_outputs(
        self, rescue_dir: Path, notify: Callable[[str], None] | None = None
    ) -> tuple[list[str], bool]:
        """Write the baseline (if saving), JSON and CSV; return (lines to show, any failed).

        ``notify`` gets a line at once when the baseline's lock makes the save wait.

        A file that cannot be written does not stop the others. If results would be lost (the
        baseline or JSON could not be written and no other JSON holds them), they go to a
        ``neuronperf-unsaved-*.json`` in ``rescue_dir`` instead.
        """
        ordered = sorted(self.results, key=lambda r: r.get("test", ""))
        lines: list[str] = []
        failed: list[str] = []

        def attempt(what: str, write: Callable[[], str | None]) -> bool:
            try:
                line = write()
            except (OSError, ValueError) as exc:
                failed.append(what)
                lines.append(printable(f"neuronperf: ERROR could not write {what}: {exc}"))
                return False
            if line:
                lines.append(line)
            return True

        baseline = self.options.baseline
        if self.options.save_baseline and baseline is not None:
            def save() -> str | None:
                saved = self.save_baseline(baseline, notify)
                if self.interrupted:
                    lines.append(f"baseline: not saved for the interrupted test(s) "
                                 f"{', '.join(sorted(self.interrupted))}: run them again to "
                                 f"record them")
                link = baseline_file.link_target(baseline)
                return (f"baseline: saved {saved} configuration(s) to {baseline}"
                        + (f" (a link to {link})" if link else "")) if saved else None

            attempt(f"the baseline {baseline} (--neuronperf-baseline)", save)
        json_path, csv_path = self.options.json_path, self.options.csv_path
        json_ok = json_path is not None and attempt(
            f"{json_path} (--neuronperf-json)",
            lambda: f"reports: {reporting.write_json(ordered, json_path, self.run_info())}")
        if csv_path is not None:
            attempt(f"{csv_path} (--neuronperf-csv)",
                    lambda: f"reports: {reporting.write_csv(ordered, csv_path)}")
        html_path = self.options.html_path
        if html_path is not None:
            attempt(f"{html_path} (--neuronperf-html)",
                    lambda: f"report: {write_html(ordered, html_path, self.notes())}")
        if ordered:
            attempt("the GitHub step summary ($GITHUB_STEP_SUMMARY)",
                    lambda: append_step_summary(ordered, self.notes()))
        history_failed = False
        if self.options.history is not None:
            history_line = self.save_history(rescue_dir)
            lines.append(history_line)
            history_failed = history_line.startswith("neuronperf: ERROR")
        if failed and ordered and not json_ok:
            name = f"neuronperf-unsaved-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.json"
            for directory in (rescue_dir, Path(tempfile.gettempdir())):
                if attempt(f"the rescue file {directory / name}",
                           functools.partial(rescued, ordered, directory / name)):
                    break
        return lines, bool(failed) or history_failed

    def save_history(self, rescue_dir: Path) -> str:
        """Append this run to the history (interrupted tests left out); the line that says
        what happened. A run that cannot be stored is kept in a rescue file (said)."""
        from pytest_neuronperf.history.recording import save_run
        from pytest_neuronperf.history.store import HistoryError

        kept = [r for r in self.results if not self.was_interrupted(r)]
        try:
            return printable(save_run(self.options.history or "", self.run_info(), kept,
                                      rescue_dir))
        except HistoryError as exc:
            return printable(f"neuronperf: ERROR history not saved: {exc}")

    def save_baseline(self, path: Path, notify: Callable[[str], None] | None = None) -> int:
        """Merge every successful configuration of this run into the baseline, per machine."""
        by_machine: dict[str, tuple[dict[str, Any], dict[str, dict[str, Any]]]] = {}
        count = 0
        for report in self.results:
            if report.get("status") != "ok" or self.was_interrupted(report):
                continue
            fp, tests = by_machine.setdefault(report["machine"], (report["fingerprint"], {}))
            entry = entry_from_report(report)
            profile = profiling.head_summary(report.get("profile"))
            if profile is not None:  # the base a later run's explanation is diffed against
                entry["profile"] = stored(profile)
            tests.setdefault(report["test"], {})[config_key(report)] = entry
            count += 1
        for machine_id, (fp, tests) in by_machine.items():
            baseline_file.save_results(path, machine_id, fp, tests, on_wait=(
                None if notify is None else lambda line: notify(printable(f"neuronperf: {line}"))))
        return count

    def was_interrupted(self, report: Mapping[str, Any]) -> bool:
        """The report comes from a test that was interrupted (``test`` is node id[::name])."""
        test = str(report.get("test", ""))
        return any(test == nodeid or test.startswith(f"{nodeid}::") for nodeid in self.interrupted)

    def header(self, backend: DeviceBackend) -> list[str]:
        """Report-header lines: device, cores, baseline and its machines (file text made safe)."""
        return [printable(line) for line in self._header(backend)]

    def _header(self, backend: DeviceBackend) -> list[str]:
        machine_id, fp = self.machine(backend)
        cores = self.share(backend).cores
        lines = [f"neuronperf: device {backend.name}, cores {format_cores(cores)} ({len(cores)}), "
                 f"machine {machine_id} ({fp.get('cpu')})"]
        if self.against is not None:
            lines.append(f"neuronperf: paired against {self.against.label}: base tree "
                         f"{self.against.tree}")
        lines += self.history_header()
        if self.options.baseline is None:
            if self.against is None and self.options.history is None:
                lines.append("neuronperf: no baseline (--neuronperf-baseline=PATH to gate)")
        elif self.baseline is None:
            link = baseline_file.link_target(self.options.baseline)
            lines.append(f"neuronperf: baseline {self.options.baseline} does not exist yet"
                         + (f" (a link to {link})" if link else "")
                         + (" (will be created)" if self.options.save_baseline else ""))
        elif self.baseline.has_machine(machine_id):
            changes = machine.version_changes(self.baseline.fingerprint(machine_id) or {}, fp)
            lines.append(f"neuronperf: baseline {self.options.baseline}, machine {machine_id}"
                         + (f"; changed since: {', '.join(changes)}" if changes else ""))
        else:
            lines.append(self.machine_mismatch(machine_id))
        return lines

    def history_header(self) -> list[str]:
        """The history's line: where runs go, the gate, or why the store cannot be used."""
        if self.options.history is None:
            return []
        from pytest_neuronperf.history.store import shown

        if self.history_problem:
            return [f"neuronperf: history: {self.history_problem}; this run's reports will be "
                    f"kept in a neuronperf-unsaved-*.json file"]
        info = self._run_info or {}
        return [f"neuronperf: history {shown(self.options.history)}"
                + (" (gate on)" if self.options.history_gate else "")
                + (f", commit {str(info['commit'])[:8]}" if info.get("commit") else "")
                + (" (dirty)" if info.get("dirty") else "")
                + (f" on {info['branch']}" if info.get("branch") else "")]

    def machine_mismatch(self, machine_id: str) -> str:
        """The note for a baseline with no entry for this machine."""
        assert self.baseline is not None
        return printable("neuronperf: " + machine.mismatch_text(
            self.options.baseline, machine_id, self.baseline.machines()))

    def version_notes(self) -> list[str]:
        """Library versions that changed since the baseline, per machine that was compared."""
        assert self.baseline is not None
        fingerprints = {r["machine"]: r.get("fingerprint") or {} for r in self.results
                        if "machine" in r}
        notes = []
        for machine_id, fp in sorted(fingerprints.items()):
            if self.baseline.has_machine(machine_id):
                changes = machine.version_changes(
                    self.baseline.fingerprint(machine_id) or {}, fp)
                if changes:
                    notes.append(printable(f"neuronperf: compared with a baseline from other "
                                           f"library versions: {', '.join(changes)}"))
        return notes

    def host_notes(self) -> list[str]:
        """Which host measured what, when xdist workers ran on more than one host or remotely."""
        by_host: dict[tuple[str, str], list[Report]] = {}
        for report in self.results:
            if "host_id" in report:
                by_host.setdefault((report["host"], report["host_id"]), []).append(report)
        if not by_host or (len(by_host) == 1 and this_host().key in {k for _, k in by_host}):
            return []
        return [host_note(name, key, reports) for (name, key), reports in sorted(by_host.items())]

    def verdict_counts(self) -> dict[str, int]:
        """How many configurations got each verdict."""
        counts: dict[str, int] = {}
        for report in self.results:
            verdict = report.get("verdict", Verdict.ERROR.value)
            counts[verdict] = counts.get(verdict, 0) + 1
        return counts

    def notes(self) -> list[str]:
        """Advice after the summary table: machine mismatches, NEW, IMPROVED, INCONCLUSIVE."""
        notes = []
        if self.baseline is not None:
            machines = {r["machine"] for r in self.results if "machine" in r}
            notes += [self.machine_mismatch(m) for m in sorted(machines)
                      if not self.baseline.has_machine(m)]
            notes += self.version_notes()
            notes += self.coverage_notes()
        notes += duration_notes(self.results)
        notes += self.host_notes()
        counts = self.verdict_counts()
        strict = self.options.strict
        notes += self.paired_notes()
        if counts.get(Verdict.NEW.value) and not self.options.save_baseline and (
                self.options.baseline is not None or (
                    self.against is None and self.options.history is None)):
            notes.append(f"neuronperf: {counts[Verdict.NEW.value]} configuration(s) NEW "
                         f"(no baseline entry){' -> failed (strict)' if strict else ''}: "
                         f"record them with --neuronperf-save-baseline --neuronperf-baseline=PATH")
        if counts.get(Verdict.INCONCLUSIVE.value):
            notes.append(f"neuronperf: {counts[Verdict.INCONCLUSIVE.value]} configuration(s) "
                         f"INCONCLUSIVE (too noisy to decide)"
                         f"{' -> failed (strict)' if strict else ''}: raise duration or quiet the "
                         f"machine")
        if counts.get(Verdict.IMPROVED.value):
            advice = ("consider re-saving the baseline" if self.options.baseline is not None
                      else "faster than the base revision")
            notes.append(f"neuronperf: {counts[Verdict.IMPROVED.value]} configuration(s) IMPROVED "
                         f"beyond tolerance: {advice}")
        return notes

    def paired_notes(self) -> list[str]:
        """Paired comparisons that could not be made, and measurements on a busy machine."""
        notes = []
        missing = [r for r in self.results
                   if (r.get("paired") or {}).get("base_status") not in (None, "ok")]
        if missing:
            notes.append(f"neuronperf: {len(missing)} configuration(s) not compared with their "
                         f"base: {missing[0]['paired'].get('note') or 'no base'}")
        busy = [r for r in self.results if is_high(r.get("interference"))]
        if busy:
            worst = max(cast(Interference, r["interference"])["other_pct"] for r in busy)
            notes.append(f"neuronperf: {len(busy)} configuration(s) measured on a busy machine "
                         f"(up to {worst:.0f}% of the measured cores' time went to other "
                         f"processes): their figures are less reliable"
                         + ("" if self.against else "; paired mode (--neuronperf-against) "
                            "cancels such drift"))
        return notes

    def coverage_notes(self) -> list[str]:
        """Baseline configurations of the tests that ran that this run did not measure, and
        why (too few cores, an xdist worker's share, or not in this run's grid)."""
        assert self.baseline is not None
        measured: dict[tuple[str, str], set[str]] = {}
        shares: dict[tuple[str, str], Mapping[str, Any]] = {}
        for report in self.results:
            if "machine" not in report or "test" not in report:
                continue
            where = (report["machine"], report["test"])
            measured.setdefault(where, set()).add(config_key(report))
            shares[where] = report.get("core_share") or {}
        notes = []
        for (machine_id, test), keys in sorted(measured.items()):
            stored = self.baseline.tests(machine_id).get(test, {})
            unmeasured = [k for k in stored if k not in keys]
            if unmeasured:
                why = [unmeasured_reason(k, shares[(machine_id, test)]) for k in unmeasured]
                notes.append(f"neuronperf: {test}: {len(unmeasured)} baseline configuration(s) "
                             f"not measured this run: {'; '.join(why)}")
        return notes


def paired_base_label(report: Report) -> str:
    """How an explanation names a paired base: ``the base at origin/main (3f2a...)``."""
    revision = (report.get("paired") or {}).get("revision")
    return f"the base at {revision}" if revision else "the base model (compare)"


def unmeasured_reason(key: str, share: Mapping[str, Any]) -> str:
    """``bs=1 n=2 w=1 p=1 (needs 2 cores; this pytest-xdist worker had 1 of the machine's 2)``."""
    config = parse_config_key(key)
    label = config_label(config) or key
    needed = config.get("n_models", 1) * config.get("pipeline_size", 1)
    used, every = share.get("used"), share.get("machine")
    if used is not None and needed > used:
        if every is not None and used < every:
            return (f"{label} (needs {needed} cores; this pytest-xdist worker had {used} of the "
                    f"machine's {every}: run with fewer workers to measure it)")
        return f"{label} (needs {needed} cores; this run had {used})"
    return f"{label} (not in this run's configurations: marker, overrides or a filter)"


def duration_notes(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """Tests measured for another duration than their baseline was: their windows differ."""
    mismatches: dict[str, tuple[float, float]] = {}
    for report in results:
        base = (report.get("baseline") or {}).get("duration")
        now = report.get("duration")
        if isinstance(base, int | float) and isinstance(now, int | float) and base != now:
            mismatches[report.get("test", "?")] = (float(now), float(base))
    return [f"neuronperf: {test} was measured for {now:g} s but its baseline for {base:g} s: "
            f"windows of another length are compared (p99 over fewer or more calls), so the "
            f"verdict may be off; use the baseline's duration or re-record the baseline"
            for test, (now, base) in sorted(mismatches.items())]



def host_note(name: str, key: str, reports: Sequence[Mapping[str, Any]], shown: int = 4) -> str:
    """One host's line: its workers, baseline machine(s) and the tests it measured."""
    workers = sorted({str(r.get("worker")) for r in reports})
    machines = sorted({str(r.get("machine")) for r in reports})
    tests = sorted({str(r.get("test")) for r in reports})
    listed = ", ".join(tests[:shown]) + (f" and {len(tests) - shown} more"
                                         if len(tests) > shown else "")
    return (f"neuronperf: host {name} [{key}] (workers {', '.join(workers)}; baseline machine "
            f"{', '.join(machines)}) measured {len(reports)} configuration(s) of {listed}")


def rescued(reports: Sequence[Mapping[str, Any]], path: Path) -> str:
    """Write reports that would otherwise be lost; the line that says where they went."""
    return f"neuronperf: this run's reports were saved to {reporting.write_json(reports, path)}"

