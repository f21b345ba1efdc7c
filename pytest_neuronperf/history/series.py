"""Stored runs as series (test x configuration x machine x metric, in commit order) and their
change points told with what changed: first run, commit range, package versions."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_neuronperf import formatting
from pytest_neuronperf.history.changes import Change, detect
from pytest_neuronperf.history.runinfo import package_changes
from pytest_neuronperf.history.store import StoredResult, StoredRun
from pytest_neuronperf.metrics import METRICS
from pytest_neuronperf.reports import config_label, parse_config_key


@dataclass(frozen=True, order=True)
class SeriesKey:
    """Which series: one metric of one configuration of one test on one machine."""

    test: str
    config: str
    machine: str
    metric: str

    @property
    def label(self) -> str:
        """``bs=1 n=1 w=1 p=1``: the configuration as people read it."""
        return config_label(parse_config_key(self.config)) or self.config


@dataclass(frozen=True)
class Point:
    """One run's value in a series."""

    run: StoredRun
    result: StoredResult
    value: float


@dataclass(frozen=True)
class FoundChange:
    """A change point with the runs around it."""

    key: SeriesKey
    change: Change
    before: Point
    """The last run before the change."""
    first: Point
    """The first run after it."""

    @property
    def worse(self) -> float:
        """The relative change with the sign that makes positive worse."""
        return -self.change.magnitude if METRICS[self.key.metric].higher_is_better else (
            self.change.magnitude)

    @property
    def versions(self) -> list[str]:
        """Package versions that differ between the last run before and the first after."""
        return package_changes(self.before.run.packages, self.first.run.packages)

    @property
    def commits(self) -> str:
        """``abc1234..def5678``: the commits between which it changed (``?`` when unknown)."""
        return f"{short(self.before.run.commit)}..{short(self.first.run.commit)}"

    def text(self, versions_shown: int = 4) -> str:
        """``throughput -12.3% from the run of 2024-06-11 10:02 (commits abc1234..def5678;
        torch 2.12.0 -> 2.13.0), confidence 99.9%, 3 run(s) since``."""
        return (f"{short_metric(self.key.metric)} {formatting.percent(self.change.magnitude)} "
                f"{self.evidence(versions_shown)}")

    def evidence(self, versions_shown: int = 4) -> str:
        """What the change is known by: ``from the run of 2024-06-11 10:02 (commits
        abc1234..def5678; torch 2.12.0 -> 2.13.0), confidence 99.9%, 3 run(s) since``."""
        versions = self.versions
        what = ", ".join(versions[:versions_shown]) + (
            f" and {len(versions) - versions_shown} more" if len(versions) > versions_shown
            else "")
        return (f"from the run of {when(self.first.run.recorded_at)} (commits {self.commits}"
                f"{'; ' + what if what else '; no package version changed'}), confidence "
                f"{confidence_text(self.change.confidence)}, {self.change.runs_after} run(s) since")


def short(commit: str | None) -> str:
    """A commit's first 8 characters, ``?`` when unknown."""
    return commit[:8] if commit else "?"


def short_metric(metric: str) -> str:
    """``throughput``, ``p50``, ``p99``."""
    return METRICS[metric].aliases[0] if metric in METRICS else metric


def when(timestamp: float) -> str:
    """``2024-06-11 10:02`` (local time)."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def confidence_text(confidence: float) -> str:
    """``99.9%`` (never ``100%``: a test is never that sure)."""
    return f"{min(confidence, 0.9999):.2%}" if confidence > 0.999 else f"{confidence:.1%}"


def series_of(runs: Iterable[StoredRun]) -> dict[SeriesKey, list[Point]]:
    """Every series in ``runs`` (already in commit order); failed results are left out."""
    series: dict[SeriesKey, list[Point]] = {}
    for run in runs:
        for result in run.results:
            if result.status != "ok":
                continue
            for metric, value in result.metrics.items():
                if metric in METRICS and value > 0:
                    key = SeriesKey(result.test, result.config, result.machine, metric)
                    series.setdefault(key, []).append(Point(run, result, value))
    return dict(sorted(series.items()))


def changes_in(key: SeriesKey, points: Sequence[Point], **parameters: Any) -> list[FoundChange]:
    """The change points of one series."""
    found = detect([p.value for p in points], **parameters)
    return [FoundChange(key, c, points[c.index - 1], points[c.index]) for c in found]


def current_point(run: Mapping[str, Any], report: Mapping[str, Any], metric: str,
                  result: StoredResult) -> Point:
    """This run's (not yet stored) value as the newest point of a series."""
    stored = StoredRun(
        id=-1, uid=str(run.get("uid", "")), recorded_at=float(run.get("recorded_at") or 0.0),
        commit=run.get("commit"), commit_time=run.get("commit_time"), branch=run.get("branch"),
        dirty=run.get("dirty"), host=run.get("host"), source="this run",
        packages=dict(run.get("packages") or {}), interference=result.other_pct,
        results=[result])
    return Point(stored, result, result.metrics[metric])
