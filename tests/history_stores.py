"""History stores for the tests: a SQLite file, or a database on a real PostgreSQL server that
this module starts on 127.0.0.1 (initdb + pg_ctl from the PostgreSQL server package, which
.ci/run installs; as root the server runs as ``nobody``, since postgres refuses root)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PG_BINARIES = ("/usr/lib/postgresql/*/bin",)


def pg_bin() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl`` (newest version), or None."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    folders = sorted(glob.glob(PG_BINARIES[0]), key=lambda p: int(Path(p).parent.name)
                     if Path(p).parent.name.isdigit() else 0)
    return Path(folders[-1]) if folders else None


def free_port() -> int:
    """A TCP port nobody listens on now (the server binds it right after)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    """A throwaway PostgreSQL server: ``url(database)`` names a database on it."""

    def __init__(self, binaries: Path) -> None:
        self.binaries = binaries
        self.folder = Path(tempfile.mkdtemp(prefix="neuronperf-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.user: str | None = "nobody" if os.geteuid() == 0 else None
        if self.user is not None:
            os.chmod(self.folder, 0o755)
            entry = pwd.getpwnam(self.user)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.binaries / args[0]), *args[1:]], capture_output=True,
                              text=True, timeout=120, check=False, user=self.user,
                              cwd=self.folder)

    def start(self) -> None:
        done = self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                         "-E", "UTF8", "--no-sync")
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr[-1000:]}")
        done = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "log"), "-w",
                         "-o", f"-p {self.port} -k {self.folder} -h 127.0.0.1 -F", "start")
        if done.returncode != 0:
            log = (self.folder / "log").read_text() if (self.folder / "log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {done.stderr[-500:]} {log[-1000:]}")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database's URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url().replace("postgresql://", "postgresql://", 1),
                             autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return self.url(name)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the session (skipped, saying why, where none is installed)."""
    binaries = pg_bin()
    if binaries is None:
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql; "
                    ".ci/run installs it): the PostgreSQL history tests are skipped")
    server = PostgresServer(binaries)
    try:
        server.start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        server.stop()
        pytest.skip(f"could not start a PostgreSQL server here: {exc}")
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty history: a SQLite file, then a database on a real PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "history.sqlite")
    server: Any = request.getfixturevalue("postgres_server")
    return str(server.new_database())
