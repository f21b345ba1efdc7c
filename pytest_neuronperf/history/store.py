"""The history store: every run's reports, in a SQLite file or a PostgreSQL database.

A plain path is a SQLite file (embedded, no server); ``postgresql://...`` is a shared PostgreSQL
database (psycopg 3). Both go through SQLAlchemy Core, so one schema and one set of queries
serve both.

Safety, and why it holds:

- A run is appended in one transaction (the run row and all its results), so a reader sees the
  whole run or none of it; a writer killed or failing mid-way (full disk, lost connection)
  leaves the store as it was (SQLite's rollback journal, PostgreSQL's transaction).
- SQLite: every write transaction starts with ``BEGIN IMMEDIATE``, which takes the write lock
  at once, so two writers queue on SQLite's busy timeout instead of one failing on a lock
  upgrade; PostgreSQL: inserts of concurrent runs do not conflict, and schema creation or
  migration holds a transaction-level advisory lock.
- Each run has a ``uid``; appending a uid already stored does nothing, so a rescued run can be
  imported again safely (see ``history.recording``).
- The schema is versioned (``meta.schema_version``): a store from an older pytest-neuronperf is
  migrated in place in one transaction; a newer one, a file that is not a SQLite database, or a
  database of another program is refused with one sentence and left untouched.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

SCHEMA_VERSION = 1
# Schema history (bump SCHEMA_VERSION and append a migration to MIGRATIONS on any change):
#
# 1. First version. meta(key, value); runs(id, uid, recorded_at, commit, commit_time, branch,
#    dirty, host, source, packages, interference); results(id, run_id, test, config, machine,
#    fingerprint, status, verdict, metrics, other_pct, report).

META_KEY = "schema_version"
PRODUCT_KEY = "product"
PRODUCT = "pytest-neuronperf history"
SQLITE_BUSY_S = 120.0
"""How long a SQLite writer waits for another writer's lock before giving up."""
CONNECT_TIMEOUT_S = 10
"""How long connecting to a PostgreSQL server may take before it counts as unreachable."""
ADVISORY_LOCK = 0x6E70_6869  # "nphi": the schema's transaction-level lock on PostgreSQL


class HistoryError(Exception):
    """The store cannot be used; the message is one sentence naming it and saying why."""


@dataclass(frozen=True)
class StoredResult:
    """One configuration of one stored run."""

    test: str
    config: str
    machine: str
    status: str
    verdict: str | None
    metrics: dict[str, float]
    other_pct: float | None
    fingerprint: dict[str, Any]
    report: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class StoredRun:
    """One stored run: where and when it ran, and its results."""

    id: int
    uid: str
    recorded_at: float
    commit: str | None
    commit_time: float | None
    branch: str | None
    dirty: bool | None
    host: str | None
    source: str
    packages: dict[str, str]
    interference: float | None
    results: list[StoredResult]

    def order_key(self) -> tuple[float, float, int]:
        """Commit order: the commit's time (the run's when unknown), then the run's."""
        when = self.commit_time if self.commit_time is not None else self.recorded_at
        return (when, self.recorded_at, self.id)


# --- Where the store is ------------------------------------------------------------------------


def store_url(location: str | os.PathLike[str]) -> str:
    """The SQLAlchemy URL of a store location: a path is a SQLite file, ``postgresql://`` uses
    psycopg 3; anything else raises ``HistoryError``."""
    text = os.fspath(location)
    scheme, sep, rest = text.partition("://")
    if not sep:
        return f"sqlite:///{Path(text).absolute()}"
    scheme = scheme.lower()
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        return f"postgresql+psycopg://{rest}"
    if scheme == "sqlite":
        return text
    raise HistoryError(
        f"history store {shown(text)}: only a file path (SQLite) or a postgresql:// URL is "
        f"supported, not {scheme}://")


def shown(location: str | os.PathLike[str]) -> str:
    """A store location as it may be printed: a URL's password hidden."""
    text = os.fspath(location)
    if "://" not in text:
        return text
    try:
        return make_url(text).render_as_string(hide_password=True)
    except ArgumentError:
        return text.split("@")[-1]


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases or an in-memory one)."""
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///"):]
    return Path(path) if path and path != ":memory:" else None


# --- Schema ---------------------------------------------------------------------------------


def _tables() -> tuple[Any, Any, Any, Any]:
    """The schema (SQLAlchemy Core): metadata and the meta, runs and results tables."""
    metadata = sa.MetaData()
    meta = sa.Table("neuronperf_meta", metadata,
                    sa.Column("key", sa.String(64), primary_key=True),
                    sa.Column("value", sa.String(255), nullable=False))
    runs = sa.Table(
        "neuronperf_runs", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("uid", sa.String(64), nullable=False, unique=True),
        sa.Column("recorded_at", sa.Float, nullable=False),
        sa.Column("commit", sa.String(64)),
        sa.Column("commit_time", sa.Float),
        sa.Column("branch", sa.String(255)),
        sa.Column("dirty", sa.Boolean),
        sa.Column("host", sa.String(255)),
        sa.Column("source", sa.String(1024), nullable=False),
        sa.Column("packages", sa.JSON, nullable=False),
        sa.Column("interference", sa.Float))
    results = sa.Table(
        "neuronperf_results", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("neuronperf_runs.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("test", sa.String(1024), nullable=False),
        sa.Column("config", sa.String(255), nullable=False),
        sa.Column("machine", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("verdict", sa.String(16)),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("other_pct", sa.Float),
        sa.Column("report", sa.JSON, nullable=False),
        sa.Index("neuronperf_results_series", "test", "machine", "config"))
    return metadata, meta, runs, results


METADATA, META, RUNS, RESULTS = _tables()


def _create_v1(connection: Any) -> None:
    """Migration 0 -> 1: the first tables."""
    METADATA.create_all(connection)


MIGRATIONS: list[Callable[[Any], None]] = [_create_v1]
"""``MIGRATIONS[v]`` takes a store from schema version ``v`` to ``v + 1``."""
assert len(MIGRATIONS) == SCHEMA_VERSION


# --- Opening ----------------------------------------------------------------------------------


class Store:
    """An open history store (one SQLAlchemy engine); use as a context manager or ``close``."""

    def __init__(self, location: str | os.PathLike[str]) -> None:
        self.location = os.fspath(location)
        self.name = shown(location)
        self.url = store_url(location)
        self.sqlite = sqlite_path(self.url)
        self._engine = self._create_engine()

    def _create_engine(self) -> Any:
        if self.sqlite is None and self.url.startswith("sqlite"):
            raise HistoryError(f"history store {self.name}: give a file, not an in-memory "
                               "database (it would be gone when the run ends)")
        if self.sqlite is not None:
            engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool,
                                      connect_args={"timeout": SQLITE_BUSY_S})

            @event.listens_for(engine, "connect")
            def _no_implicit_transactions(dbapi_connection: Any, _: Any) -> None:
                dbapi_connection.isolation_level = None  # transactions begin as below

            @event.listens_for(engine, "begin")
            def _begin_immediate(connection: Any) -> None:
                connection.exec_driver_sql("BEGIN IMMEDIATE")

            return engine
        try:
            return sa.create_engine(self.url, poolclass=sa.pool.NullPool,
                                    connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
        except ImportError:
            raise HistoryError(
                f"history store {self.name}: PostgreSQL needs psycopg 3: pip install "
                "'pytest-neuronperf[postgresql]'") from None

    def close(self) -> None:
        """Release the engine's connections."""
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self, writing: bool) -> Iterator[Any]:
        """A transaction on a store of this schema (created or migrated first when writing);
        database errors become one ``HistoryError`` sentence."""
        if self.sqlite is not None:
            self._check_sqlite_file(writing)
        try:
            with self._engine.begin() as connection:
                if self.url.startswith("postgresql") and writing:
                    connection.execute(_advisory_lock())
                version = self._version(connection)
                if version < SCHEMA_VERSION:
                    if not writing and version == 0:
                        yield None  # an empty store: nothing to read
                        return
                    for step in MIGRATIONS[version:]:
                        step(connection)
                    self._set_version(connection, version == 0)
                yield connection
        except SQLAlchemyError as error:
            raise HistoryError(self._describe(error)) from None

    def _check_sqlite_file(self, writing: bool) -> None:
        """Refuse a SQLite location that is a folder or whose folder cannot be made."""
        assert self.sqlite is not None
        if self.sqlite.is_dir():
            raise HistoryError(f"history store {self.name} is a folder: give a file name "
                               "inside it (e.g. {self.name}/history.sqlite)")
        if writing:
            try:
                self.sqlite.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise HistoryError(f"history store {self.name}: cannot create its folder "
                                   f"({error.strerror})") from None

    def _version(self, connection: Any) -> int:
        """The store's schema version: 0 when empty; ``HistoryError`` when it is newer or
        belongs to another program."""
        tables = set(sa.inspect(connection).get_table_names())
        if META.name not in tables:
            ours = {t.name for t in METADATA.sorted_tables}
            if tables & ours:
                raise HistoryError(f"history store {self.name} has pytest-neuronperf tables "
                                   "but no schema version: it was left untouched; move it "
                                   "aside to start a new history")
            if tables and self.sqlite is not None:
                raise HistoryError(
                    f"history store {self.name} is a SQLite database of another program "
                    f"(tables {', '.join(sorted(tables)[:5])}): it was left untouched; give "
                    "another file")
            return 0
        rows = dict(connection.execute(sa.select(META.c.key, META.c.value)).all())
        try:
            version = int(rows.get(META_KEY, ""))
        except ValueError:
            raise HistoryError(f"history store {self.name} has an invalid schema version "
                               f"{rows.get(META_KEY)!r}: it was left untouched") from None
        if version > SCHEMA_VERSION:
            raise HistoryError(
                f"history store {self.name} was written by a newer pytest-neuronperf (schema "
                f"version {version}; this one reads up to {SCHEMA_VERSION}): it was left "
                "untouched; upgrade pytest-neuronperf")
        return version

    def _set_version(self, connection: Any, new: bool) -> None:
        if new:
            connection.execute(META.insert(), [{"key": META_KEY, "value": str(SCHEMA_VERSION)},
                                               {"key": PRODUCT_KEY, "value": PRODUCT}])
        else:
            connection.execute(sa.update(META).where(META.c.key == META_KEY)
                               .values(value=str(SCHEMA_VERSION)))

    def _describe(self, error: Exception) -> str:
        """One sentence for a database error."""
        text = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        lowered = text.lower()
        if "file is not a database" in lowered or "malformed" in lowered:
            return (f"history store {self.name} is not a SQLite database or is corrupt "
                    f"({text}): it was left untouched; move it aside to start a new history")
        if "disk is full" in lowered or "no space" in lowered:
            return f"history store {self.name}: the disk is full ({text}); nothing was stored"
        if "database is locked" in lowered:
            return (f"history store {self.name} stayed locked by another writer for "
                    f"{SQLITE_BUSY_S:.0f} s; nothing was stored")
        if "unable to open" in lowered or "readonly" in lowered or "read-only" in lowered:
            return f"history store {self.name} cannot be written ({text}); nothing was stored"
        if self.url.startswith("postgresql") and (
                "connection" in lowered or "connect" in lowered or "timeout" in lowered):
            return f"history database {self.name} is unreachable ({text}); nothing was stored"
        return f"history store {self.name}: {text}"

    # -- writing -------------------------------------------------------------------------------

    def ensure(self) -> int:
        """Create or migrate the store now (a check before a run); the schema version."""
        with self._transaction(writing=True):
            return SCHEMA_VERSION

    def append(self, run: Mapping[str, Any], results: Sequence[Mapping[str, Any]]) -> bool:
        """Store one run and its results in one transaction; False when its ``uid`` is
        already stored (nothing written)."""
        with self._transaction(writing=True) as connection:
            known = connection.execute(
                sa.select(RUNS.c.id).where(RUNS.c.uid == run["uid"])).first()
            if known is not None:
                return False
            run_id = connection.execute(RUNS.insert().values(**_json_ready(run))
                                        ).inserted_primary_key[0]
            if results:
                connection.execute(RESULTS.insert(), [
                    {**_json_ready(result), "run_id": run_id} for result in results])
        return True

    # -- reading -------------------------------------------------------------------------------

    def runs(
        self,
        test: str | None = None,
        machine: str | None = None,
        config: str | None = None,
        branch: str | None = None,
        since: float | None = None,
    ) -> list[StoredRun]:
        """Stored runs in commit order, each with its results that match the filters (``test``
        is a substring of the test key); runs with no matching result are left out."""
        query = sa.select(RUNS, *[c for c in RESULTS.c if c.name not in ("id", "run_id")],
                          RESULTS.c.id.label("result_id"))
        query = query.join(RESULTS, RESULTS.c.run_id == RUNS.c.id)
        if test is not None:
            query = query.where(RESULTS.c.test.contains(test, autoescape=True))
        if machine is not None:
            query = query.where(RESULTS.c.machine == machine)
        if config is not None:
            query = query.where(RESULTS.c.config == config)
        if branch is not None:
            query = query.where(RUNS.c.branch == branch)
        if since is not None:
            query = query.where(RUNS.c.recorded_at >= since)
        with self._transaction(writing=False) as connection:
            if connection is None:
                return []
            rows = connection.execute(query.order_by(RUNS.c.id, RESULTS.c.id)).mappings().all()
        return _group(rows)


def _advisory_lock() -> Any:
    return sa.text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=ADVISORY_LOCK)


def _json_ready(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row whose JSON columns hold strict JSON (NaN and infinity as null)."""
    return {key: _strict(value) for key, value in row.items()}


def _strict(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return _strict(value.tolist())
    return value


def _group(rows: Sequence[Mapping[str, Any]]) -> list[StoredRun]:
    """Joined run x result rows as runs with their results, in commit order."""
    runs: dict[int, StoredRun] = {}
    for row in rows:
        run = runs.get(row["id"])
        if run is None:
            run = runs[row["id"]] = StoredRun(
                id=row["id"], uid=row["uid"], recorded_at=row["recorded_at"],
                commit=row["commit"], commit_time=row["commit_time"], branch=row["branch"],
                dirty=row["dirty"], host=row["host"], source=row["source"],
                packages=dict(_loaded(row["packages"]) or {}),
                interference=row["interference"], results=[])
        run.results.append(StoredResult(
            test=row["test"], config=row["config"], machine=row["machine"],
            status=row["status"], verdict=row["verdict"],
            metrics=dict(_loaded(row["metrics"]) or {}), other_pct=row["other_pct"],
            fingerprint=dict(_loaded(row["fingerprint"]) or {}),
            report=dict(_loaded(row["report"]) or {})))
    return sorted(runs.values(), key=StoredRun.order_key)


def _loaded(value: Any) -> Any:
    """A JSON column's value (some drivers hand back text)."""
    return json.loads(value) if isinstance(value, str) else value
